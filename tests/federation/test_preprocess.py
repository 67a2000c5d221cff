"""Preprocessing agreed from aggregates, and loading of ready feature tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from federation.errors import DataError
from federation.preprocess import OTHER, Encoder, compute_stats, load_labeled, merge_stats


def test_merged_stats_give_pooled_mean_and_std():
    a = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["u", "v", "u"]})
    b = pd.DataFrame({"x": [10.0], "c": ["w"]})
    merged = merge_stats([compute_stats(a, "a.csv"), compute_stats(b, "b.csv")])
    encoder = Encoder.from_stats(merged)
    pooled = np.array([1.0, 2.0, 3.0, 10.0])
    assert encoder.numeric["x"] == pytest.approx((pooled.mean(), pooled.std()))
    assert encoder.categorical["c"] == ["u", "v", "w", OTHER]
    assert merged.rows == 4 and merged.sources == ["a.csv", "b.csv"]


def test_encoder_standardises_and_one_hots_with_other_slot():
    encoder = Encoder(numeric={"x": (2.0, 4.0)}, categorical={"c": ["u", "v", OTHER]}, columns=["x", "c"])
    out = encoder.transform(pd.DataFrame({"x": [6.0, 2.0], "c": ["v", "never-seen"]}))
    assert out.tolist() == [[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    assert encoder.feature_names == ["x", "c=u", "c=v", f"c={OTHER}"]
    assert Encoder.from_dict(encoder.to_dict()) == encoder


def test_vocabulary_keeps_most_frequent_categories():
    stats = compute_stats(pd.DataFrame({"c": ["a"] * 3 + ["b"] * 2 + ["z"]}))
    assert Encoder.from_stats(stats, max_categories=2).categorical["c"] == ["a", "b", OTHER]


def test_platforms_with_different_schemas_are_refused_by_name():
    a = compute_stats(pd.DataFrame({"x": [1.0]}), "a.csv")
    b = compute_stats(pd.DataFrame({"x": ["text"]}), "b.csv")
    with pytest.raises(DataError, match="b.csv has columns numeric=\\[\\] categorical=\\['x'\\]"):
        merge_stats([a, b])


def write(tmp_path, text: str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_text_label_with_positive_value_and_categorical_columns(tmp_path):
    path = write(tmp_path, "id,age,job,status\n1,30,clerk,good\n2,41,chef,bad\n3,25,clerk,good\n")
    table = load_labeled(path, label="status", positive="bad")
    assert table.y.tolist() == [0, 1, 0]
    assert table.ids.tolist() == ["1", "2", "3"]
    assert list(table.frame.columns) == ["age", "job"]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,b\n1,0\n", {"label": "status"}, "column 'status': label column not found"),
        ("x,default\n1,0\n2,0\n", {}, "column 'default': every row is negative"),
        ("x,default\n1,0\n,1\n", {}, "column 'x', row 2: empty value"),
        ("x,default\n1,0\ninf,1\n", {}, "column 'x', row 2: infinite value"),
        (
            "x,status\n1,ok\n2,bad\n",
            {"label": "status", "positive": "defaulted"},
            "no row has the positive value 'defaulted'",
        ),
        ("x,default\n", {}, "has a header but no data rows"),
    ],
)
def test_bad_training_files_get_one_line_errors(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_labeled(path, **kwargs)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_empty_file_and_parquet(tmp_path):
    empty = write(tmp_path, "", "empty.csv")
    with pytest.raises(DataError, match="empty.csv: file is empty"):
        load_labeled(empty)
    frame = pd.DataFrame({"x": [1.5, 2.5], "default": [0, 1]})
    frame.to_parquet(tmp_path / "t.parquet")
    assert load_labeled(tmp_path / "t.parquet").y.tolist() == [0, 1]
