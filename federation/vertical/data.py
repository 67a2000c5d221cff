"""Each side's half of a vertical table: one row per merchant, read from CSV or Parquet.

The bank's file holds the merchant id, its own features and the label; a platform's file
holds the merchant id and its trade features. A `mapping.toml` renames a party's own column
names to ours, as for horizontal training, and can drop columns that are not features:

    [columns]              # ours = "theirs"
    merchant_id = "shop_id"
    default = "bad_loan"   # the bank's label (bank only)
    [default]
    positive = "Y"         # their value meaning "defaulted", when the label is not 0/1
    [features]
    drop = ["branch"]      # columns to ignore

Every other column is a feature: numbers are standardised, text is one-hot encoded
(`federation.preprocess.Encoder`, fitted on the party's own rows). Problems are `DataError`s
naming the file, the column and the 1-based row.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from federation.errors import DataError
from federation.preprocess import Encoder, compute_stats
from federation.schema import binary_label, first_bad_row, numeric_column, read_table

ID = "merchant_id"
LABEL = "default"


@dataclass(frozen=True)
class VerticalMapping:
    columns: dict[str, str] = field(default_factory=dict)  # ours -> theirs
    positive: str | None = None
    drop: tuple[str, ...] = ()
    source: str = "<default>"


def load_mapping(path: str | Path | None) -> VerticalMapping:
    if path is None:
        return VerticalMapping()
    path = Path(path)
    if not path.is_file():
        raise DataError("mapping file not found", file=str(path))
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid TOML: {exc}", file=str(path)) from None
    columns = doc.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(v, str) and v for v in columns.values()):
        raise DataError("[columns] must map our column names to the party's column names (text)", file=str(path))
    unknown = sorted(set(columns) - {ID, LABEL})
    if unknown:
        raise DataError(
            f"[columns] renames {unknown}; only '{ID}' and '{LABEL}' are renamed (other columns are features)",
            file=str(path),
        )
    drop = doc.get("features", {}).get("drop", [])
    if not isinstance(drop, list) or not all(isinstance(c, str) for c in drop):
        raise DataError("[features] drop must be a list of column names", file=str(path))
    positive = doc.get("default", {}).get("positive")
    return VerticalMapping(dict(columns), None if positive is None else str(positive), tuple(drop), str(path))


@dataclass
class PartyTable:
    """One side's rows: merchant ids, feature frame and (at the bank) 0/1 labels."""

    ids: list[str]
    frame: pd.DataFrame
    y: np.ndarray | None
    source: str

    def index(self) -> dict[str, int]:
        return {m: i for i, m in enumerate(self.ids)}

    def subset(self, rows: np.ndarray) -> PartyTable:
        return PartyTable(
            [self.ids[int(i)] for i in rows],
            self.frame.iloc[rows].reset_index(drop=True),
            None if self.y is None else self.y[rows],
            self.source,
        )


def _ids(frame: pd.DataFrame, file: str) -> list[str]:
    series = frame[ID]
    text = series.astype(str).str.strip()
    blank = series.isna() | (text == "") | (text.str.lower() == "nan")
    if blank.any():
        raise DataError("empty merchant id", file=file, column=ID, row=first_bad_row(blank))
    repeated = text.duplicated()
    if repeated.any():
        row = first_bad_row(repeated)
        raise DataError(
            f"merchant id '{text.iloc[row - 1]}' appears twice; one row per merchant", file=file, column=ID, row=row
        )
    return [str(v) for v in text.tolist()]


def load_party(
    path: str | Path,
    mapping: VerticalMapping | None = None,
    *,
    labelled: bool,
    positive: object | None = None,
    ignore_label: bool = False,
) -> PartyTable:
    """Read one side's file: the bank's with `labelled=True`, a platform's without a label
    (`ignore_label`: the bank's file read for scoring, its label column set aside)."""
    file = str(path)
    mapping = mapping or VerticalMapping()
    frame = read_table(path)
    missing = [theirs for theirs in mapping.columns.values() if theirs not in frame.columns]
    if missing:
        raise DataError(
            f"mapped column not found (mapping {mapping.source}); the file has {list(frame.columns)}",
            file=file,
            column=missing[0],
        )
    frame = frame.rename(columns={theirs: ours for ours, theirs in mapping.columns.items()})
    frame = frame.drop(columns=[c for c in mapping.drop if c in frame.columns])
    if ID not in frame.columns:
        raise DataError(
            f"no '{ID}' column; map yours with [columns] {ID} = \"...\" in a mapping file", file=file, column=ID
        )
    ids = _ids(frame, file)
    y = None
    if labelled:
        if LABEL not in frame.columns:
            raise DataError(
                f"the bank's file needs the label column '{LABEL}' (map yours with [columns])", file=file, column=LABEL
            )
        y = binary_label(frame[LABEL], positive if positive is not None else mapping.positive, file, LABEL)
    elif LABEL in frame.columns and not ignore_label:
        raise DataError(
            f"a platform's file must not carry the label '{LABEL}' (labels stay at the bank)", file=file, column=LABEL
        )
    features = frame.drop(columns=[c for c in (ID, LABEL) if c in frame.columns])
    if features.shape[1] == 0:
        raise DataError("no feature columns besides the id and label", file=file)
    checked = {}
    for column in features.columns:
        series = features[column]
        # A text column whose values are mostly numbers is a numeric column with a typo in it.
        mostly_numbers = pd.to_numeric(series, errors="coerce").notna().mean() > 0.5
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series) or mostly_numbers:
            checked[column] = numeric_column(features, column, file)
        else:
            if series.isna().any():
                raise DataError(
                    "empty value; expected text", file=file, column=column, row=first_bad_row(series.isna())
                )
            checked[column] = series.astype(str).str.strip()
    return PartyTable(ids, pd.DataFrame(checked), y, file)


def fit_encoder(table: PartyTable, max_categories: int = 50) -> Encoder:
    """Standardisation and one-hot vocabularies from the party's own rows (nothing shared)."""
    return Encoder.from_stats(compute_stats(table.frame, table.source), max_categories)


def held_out(ids: list[str], share: float, seed: int) -> np.ndarray:
    """A deterministic boolean mask choosing about `share` of `ids` for evaluation (by hash)."""
    import hashlib

    if not 0.0 <= share < 1.0:
        raise DataError(f"test share {share}: expected 0 <= share < 1")
    cut = int(share * 2**32)
    return np.array(
        [int.from_bytes(hashlib.sha256(f"{seed}:{m}".encode()).digest()[:4], "big") < cut for m in ids], dtype=bool
    )
