"""Preprocessing agreed from aggregates, and loading of ready feature tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.errors import DataError
from federation.preprocess import OTHER, Encoder, LocalStats, compute_stats, load_labeled, merge_stats


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


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "x": st.floats(-1e6, 1e6, allow_nan=False),
                "y": st.integers(-1000, 1000),
                "c": st.sampled_from(["u", "v", "w", "never-seen", "1.0"]),
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_encoding_dict_records_equals_encoding_their_frame(rows):
    """The score path encodes rows as dicts, training encodes frames: the same matrix."""
    encoder = Encoder(
        numeric={"x": (2.0, 4.0), "y": (-3.0, 0.5)},
        categorical={"c": ["u", "v", OTHER]},
        columns=["c", "x", "y"],
        bounds={"x": (-100.0, 5e5)},
    )
    frame = encoder.transform(pd.DataFrame(rows, columns=encoder.columns))
    assert np.array_equal(encoder.transform_records(rows), frame)


def test_encoding_records_names_the_row_and_column_that_does_not_fit():
    encoder = Encoder(numeric={"x": (0.0, 1.0)}, categorical={}, columns=["x"])
    with pytest.raises(DataError, match=r"row 2.*column 'x'|column 'x'.*row 2"):
        encoder.transform_records([{"x": 1.0}, {"y": 2.0}], file="<request>")
    with pytest.raises(DataError, match="expected a number"):
        encoder.transform_records([{"x": "ten"}])


def test_vocabulary_keeps_most_frequent_categories():
    stats = compute_stats(pd.DataFrame({"c": ["a"] * 3 + ["b"] * 2 + ["z"]}))
    assert Encoder.from_stats(stats, max_categories=2).categorical["c"] == ["a", "b", OTHER]


def test_platforms_with_different_schemas_are_refused_by_name():
    a = compute_stats(pd.DataFrame({"x": [1.0]}), "a.csv")
    b = compute_stats(pd.DataFrame({"x": ["text"]}), "b.csv")
    with pytest.raises(DataError, match=r"b\.csv has columns numeric=\[\] categorical=\['x'\]"):
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
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        load_labeled(empty)
    frame = pd.DataFrame({"x": [1.5, 2.5], "default": [0, 1]})
    frame.to_parquet(tmp_path / "t.parquet")
    assert load_labeled(tmp_path / "t.parquet").y.tolist() == [0, 1]


def test_one_extreme_value_from_one_platform_does_not_stretch_the_agreed_scale():
    """Issue 11: with mean/std agreed from raw sums, one amount far out gave every other row the
    same standardised value. Clipped at agreed quantiles, the typical rows keep their spread."""
    rng = np.random.default_rng(0)
    typical = [pd.DataFrame({"amount": rng.gamma(2.0, 500.0, 1000)}) for _ in range(3)]
    careless = typical[2].copy()
    careless.loc[7, "amount"] = 1e14  # plausible as a number, wrong as a merchant-month
    clean = Encoder.from_stats(merge_stats([compute_stats(t) for t in typical]))
    dirty = Encoder.from_stats(
        merge_stats([compute_stats(typical[0]), compute_stats(typical[1]), compute_stats(careless)])
    )

    encoded = dirty.transform(typical[0])[:, 0]
    assert encoded.std() == pytest.approx(clean.transform(typical[0])[:, 0].std(), rel=0.05)
    assert 0.8 < encoded.std() < 1.2
    high = dirty.bounds["amount"][1]
    assert high < 1e5 and dirty.transform(careless)[7, 0] == pytest.approx(
        (high - dirty.numeric["amount"][0]) / dirty.numeric["amount"][1]
    )


def test_clipped_moments_are_exact_for_the_clipped_column():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(100.0, 20.0, 4000), [-5e6, 9e6, 1e7]])
    encoder = Encoder.from_stats(compute_stats(pd.DataFrame({"x": values})))
    low, high = encoder.bounds["x"]
    clipped = np.clip(values, low, high)
    assert encoder.numeric["x"] == pytest.approx((clipped.mean(), clipped.std()), rel=1e-9)
    # only values in bins beyond the agreed quantiles' bins move
    assert (values < low).sum() + (values > high).sum() <= 0.01 * len(values) + 3


def test_old_encoders_without_bounds_still_load_and_do_not_clip():
    encoder = Encoder.from_dict({"numeric": {"x": [0.0, 1.0]}, "categorical": {}, "columns": ["x"]})
    assert encoder.bounds == {} and encoder.transform(pd.DataFrame({"x": [1e9]})).tolist() == [[1e9]]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda d: d.update(rows=5), "sent 1000 values for column 'x' but 5 rows"),
        (lambda d: d["numeric"]["x"].update({"0": [1.0, float("nan"), 0.0]}), "non-finite statistics"),
        (lambda d: d["numeric"]["x"].update({"8": [1.0, 9e99, 0.0]}), "inconsistent statistics for column 'x' (bin 8)"),
        (lambda d: d.update(numeric="lots"), "malformed statistics"),
        (lambda d: d["categorical"].update(c={"a": -3}), "value counts for column 'c'"),
    ],
    ids=["rows-do-not-add-up", "nan-sum", "mean-outside-its-bin", "not-a-table", "negative-count"],
)
def test_statistics_that_cannot_come_from_a_table_are_refused(tamper, message):
    """A careless or hostile platform's aggregates are refused with a reason, never merged."""
    frame = pd.DataFrame({"x": np.linspace(1.0, 50.0, 1000), "c": ["a"] * 1000})
    data = compute_stats(frame, "p.csv").to_dict()
    LocalStats.from_dict(data, who="p")  # the real thing passes
    tamper(data)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LocalStats.from_dict(data, who="p")


def test_a_repeated_merchant_month_is_refused_naming_both_rows(tmp_path):
    """Issue 11: duplicate merchant-month rows were accepted and counted twice."""
    path = write(
        tmp_path,
        "merchant_id,month,amount,default\nA,2026-01,10,0\nB,2026-01,20,1\nA,2026-02,30,0\nB,2026-01,20,1\n",
    )
    with pytest.raises(DataError) as info:
        load_labeled(path)
    assert str(info.value) == (
        f"{path}, column 'merchant_id', row 4: rows 2 and 4 are the same merchant-month ('B', '2026-01'); a "
        "training file has one row per merchant and month, a repeated one would count twice: remove or merge it"
    )


def test_an_implausible_feature_value_is_refused_with_its_row(tmp_path):
    path = write(tmp_path, "x,default\n1,0\n1e300,1\n")
    with pytest.raises(DataError, match=r"column 'x', row 2: implausible value 1e\+300"):
        load_labeled(path)
