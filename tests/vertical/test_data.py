"""Each side's half: mapped columns, one-line errors naming file/column/row, synthetic halves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from federation.errors import DataError
from federation.synth import generate_vertical
from federation.vertical.data import held_out, load_mapping, load_party


def test_synthetic_halves_share_the_requested_merchants_and_split_the_columns(tmp_path: Path) -> None:
    s = generate_vertical(tmp_path, bank_merchants=400, platform_merchants=300, shared=0.5, seed=3)
    bank, platform = pd.read_csv(s.bank_file), pd.read_csv(s.platform_file)
    assert len(set(bank.merchant_id) & set(platform.merchant_id)) == s.shared == 200
    assert "default" in bank and "default" not in platform
    assert {"amount", "avg_rating"} <= set(platform) and not {"amount", "avg_rating"} & set(bank)
    again = generate_vertical(tmp_path / "again", bank_merchants=400, platform_merchants=300, shared=0.5, seed=3)
    assert pd.read_csv(again.bank_file).equals(bank)


def test_a_mapping_renames_the_id_and_label_and_drops_columns(tmp_path: Path) -> None:
    data = tmp_path / "bank.csv"
    pd.DataFrame({"shop": ["a", "b", "c"], "bad": ["Y", "N", "N"], "age": [1, 2, 3], "branch": ["x", "y", "z"]}).to_csv(
        data, index=False
    )
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        '[columns]\nmerchant_id = "shop"\ndefault = "bad"\n[default]\npositive = "Y"\n[features]\ndrop = ["branch"]\n'
    )
    table = load_party(data, load_mapping(mapping), labelled=True)
    assert table.ids == ["a", "b", "c"]
    assert list(table.frame.columns) == ["age"]
    assert table.y is not None and table.y.tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    ("rows", "labelled", "message"),
    [
        (
            {"merchant_id": ["a", "b", "a"], "x": [1, 2, 3]},
            False,
            "platform.csv, column 'merchant_id', row 3: merchant id 'a' appears twice",
        ),
        ({"merchant_id": ["a", None], "x": [1, 2]}, False, "column 'merchant_id', row 2: empty merchant id"),
        ({"merchant_id": ["a", "b", "c"], "x": [1, "oops", 3]}, False, "column 'x', row 2: expected a number"),
        ({"merchant_id": ["a", "b"], "x": [1.0, float("inf")]}, False, "column 'x', row 2: infinite value"),
        ({"merchant_id": ["a", "b"], "x": [1, 2], "default": [0, 1]}, False, "must not carry the label"),
        ({"merchant_id": ["a", "b"], "x": [1, 2]}, True, "needs the label column 'default'"),
        ({"id": ["a", "b"], "x": [1, 2]}, False, "no 'merchant_id' column"),
    ],
)
def test_bad_input_is_refused_with_file_column_and_row(
    tmp_path: Path, rows: dict, labelled: bool, message: str
) -> None:
    path = tmp_path / "platform.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load_party(path, labelled=labelled)


def test_an_unknown_mapping_target_is_refused(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text('[columns]\namount = "gmv"\n')
    with pytest.raises(DataError, match="only 'merchant_id' and 'default' are renamed"):
        load_mapping(mapping)


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    frame = pd.DataFrame({"merchant_id": ["a", "b"], "x": [1.5, 2.5], "kind": ["p", "q"]})
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    table = load_party(tmp_path / "p.parquet", labelled=False)
    assert table.ids == ["a", "b"] and table.frame["kind"].tolist() == ["p", "q"]


def test_the_held_out_share_is_deterministic_and_close_to_the_request() -> None:
    ids = [f"M{i}" for i in range(5000)]
    mask = held_out(ids, 0.2, seed=0)
    assert np.array_equal(mask, held_out(list(reversed(ids)), 0.2, seed=0)[::-1])
    assert 0.18 < mask.mean() < 0.22
