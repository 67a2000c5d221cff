"""Reading platform files and mapping a platform's own column names onto yinqi's raw schema.

Every problem is reported as a `DataError` naming the file and, where it applies, the column
and the 1-based data row (the header is row 0), so a platform operator can fix the file.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from federation.errors import DataError

# The raw transaction schema a platform's export is mapped onto (one row per order/transaction).
RAW_COLUMNS: dict[str, str] = {
    "merchant_id": "merchant identifier (text)",
    "date": "transaction date (ISO, e.g. 2026-03-14)",
    "amount": "transaction amount (number >= 0)",
    "rating": "buyer rating of the order (number 1-5, may be empty)",
    "inventory_turnover": "merchant's inventory turnover reported that month (number >= 0)",
    "default": "merchant in default that month (0/1, or the --positive value)",
}
OPTIONAL_RAW_COLUMNS: dict[str, str] = {
    "category": "merchant category (text)",
}


def shown(value: object) -> str:
    """A cell value as a user reads it: `1e+300`, `inf`, `'ten'` (never `np.float64(inf)`)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def _header(path: Path) -> list[str]:
    """The CSV header as written (pandas renames a repeated name to `name.1` silently)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [name.strip() for name in next(csv.reader(fh), [])]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, refusing a missing, empty or unreadable one."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
            header = [str(c).strip() for c in frame.columns]
        elif suffix in {".csv", ".txt", ""}:
            frame = pd.read_csv(path, keep_default_na=True)
            header = _header(path)
        else:
            raise DataError(f"unsupported file type '{suffix}'; expected .csv or .parquet", file=str(path))
    except pd.errors.EmptyDataError:
        raise DataError("file is empty; expected a header row and data rows", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV", file=str(path)) from None
    except DataError:
        raise
    except (pd.errors.ParserError, csv.Error, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot be read: {first_line}", file=str(path)) from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(f"column name {repeated[0]!r} appears more than once in the header", file=str(path))
    if frame.empty:
        raise DataError("has a header but no data rows", file=str(path))
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


@dataclass(frozen=True)
class Mapping:
    """How a platform's export maps onto the raw schema.

    `columns` maps our column name -> the platform's column name; `positive` is the platform's
    value meaning "in default" when its default column is not already 0/1.
    """

    columns: dict[str, str] = field(default_factory=dict)
    positive: str | None = None
    source: str = "<default>"


def load_mapping(path: str | Path | None) -> Mapping:
    """Load `mapping.toml`:

    [columns]            # ours = "theirs"
    merchant_id = "shop_id"
    amount = "gmv"
    [default]
    positive = "Y"       # optional: their value meaning "in default"
    """
    if path is None:
        return Mapping()
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise DataError("mapping file not found", file=file)
    try:
        doc = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start}); save the mapping as UTF-8", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"not valid TOML: {exc}", file=file) from None
    unknown_tables = sorted(set(doc) - {"columns", "default"})
    if unknown_tables:
        raise DataError(f"unknown table [{unknown_tables[0]}]; a mapping has [columns] and [default]", file=file)
    columns = doc.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(v, str) and v.strip() for v in columns.values()):
        raise DataError("[columns] must map our column names to the platform's column names (strings)", file=file)
    known = set(RAW_COLUMNS) | set(OPTIONAL_RAW_COLUMNS)
    unknown = sorted(set(columns) - known)
    if unknown:
        raise DataError(
            f"[columns] has unknown target column(s) {unknown}; expected some of {sorted(known)}", file=file
        )
    theirs = list(columns.values())
    shared = sorted({t for t in theirs if theirs.count(t) > 1})
    if shared:
        ours = sorted(o for o, t in columns.items() if t == shared[0])
        raise DataError(f"[columns] maps {ours} all to {shared[0]!r}; each of our columns needs its own", file=file)
    default = doc.get("default", {})
    if not isinstance(default, dict):
        raise DataError(f"default must be a table ([default] positive = VALUE), not {shown(default)}", file=file)
    extra = sorted(set(default) - {"positive"})
    if extra:
        raise DataError(f"[default] has unknown key {extra[0]!r}; expected 'positive'", file=file)
    positive = default.get("positive")
    if positive is not None and not isinstance(positive, (str, int, float, bool)):
        raise DataError("[default] positive must be a text or number value", file=file)
    return Mapping(columns=dict(columns), positive=None if positive is None else str(positive), source=file)


def apply_mapping(frame: pd.DataFrame, mapping: Mapping, file: str) -> pd.DataFrame:
    """Rename the platform's columns to ours and check that every required column is there."""
    missing_sources = [theirs for ours, theirs in mapping.columns.items() if theirs not in frame.columns]
    if missing_sources:
        theirs = missing_sources[0]
        ours = next(o for o, t in mapping.columns.items() if t == theirs)
        raise DataError(
            f"mapped column not found (mapping {mapping.source} maps '{ours}' to it); "
            f"the file has {list(frame.columns)}",
            file=file,
            column=theirs,
        )
    renamed = frame.rename(columns={theirs: ours for ours, theirs in mapping.columns.items()})
    missing = [c for c in RAW_COLUMNS if c not in renamed.columns]
    if missing:
        raise DataError(
            f"required column missing ({RAW_COLUMNS[missing[0]]}); map it with --mapping",
            file=file,
            column=missing[0],
        )
    return renamed


def first_bad_row(mask: np.ndarray | pd.Series) -> int:
    """1-based data row of the first True in `mask` (the header is row 0)."""
    return int(np.flatnonzero(np.asarray(mask))[0]) + 1


# The largest magnitude a number may have where data enters yinqi. Money is in the source's
# unit (yuan or fen): 1e15 is a thousand trillion, beyond any merchant's month; a larger value is
# a corrupt export, and its square would overflow the sums the federation agrees on.
PLAUSIBLE_MAX = 1e15


def refuse_implausible(values: pd.Series, series: pd.Series, file: str, column: str) -> None:
    """DataError for the first infinite value, or finite one beyond +-PLAUSIBLE_MAX."""
    numbers = values.to_numpy(dtype="float64", na_value=0.0)
    infinite = np.isinf(numbers)
    if infinite.any():
        row = first_bad_row(infinite)
        raise DataError(
            f"infinite value {shown(series.iloc[row - 1])}; expected a finite number", file=file, column=column, row=row
        )
    huge = np.abs(numbers) > PLAUSIBLE_MAX
    if huge.any():
        row = first_bad_row(huge)
        raise DataError(
            f"implausible value {shown(series.iloc[row - 1])}; expected a number within +-{PLAUSIBLE_MAX:g}",
            file=file,
            column=column,
            row=row,
        )


def numeric_column(frame: pd.DataFrame, column: str, file: str, *, allow_missing: bool = False) -> pd.Series:
    """The column as float64, with a clear error for text, NaN (unless allowed), infinity or an
    implausibly large number."""
    series = frame[column]
    values = pd.to_numeric(series, errors="coerce")
    not_numeric = values.isna() & series.notna()
    if not_numeric.any():
        row = first_bad_row(not_numeric)
        raise DataError(f"expected a number, found {shown(series.iloc[row - 1])}", file=file, column=column, row=row)
    values = values.astype("float64")
    if not allow_missing and values.isna().any():
        raise DataError(
            "empty value (NaN); expected a number", file=file, column=column, row=first_bad_row(values.isna())
        )
    refuse_implausible(values, series, file, column)
    return values


def binary_label(series: pd.Series, positive: object | None, file: str, column: str) -> np.ndarray:
    """Map a label column to 0/1: `positive` marks 1; without it the column must be 0/1."""
    if series.isna().any():
        raise DataError("empty label; every row needs one", file=file, column=column, row=first_bad_row(series.isna()))
    if positive is not None:
        as_text = series.astype(str).str.strip()
        wanted = str(positive).strip()
        if not (as_text == wanted).any():
            # also accept a numeric positive written differently ("1" vs 1.0)
            numeric = pd.to_numeric(series, errors="coerce")
            try:
                wanted_number = float(wanted)
            except ValueError:
                wanted_number = None
            if wanted_number is not None and (numeric == wanted_number).any():
                return np.asarray(numeric == wanted_number, dtype=np.int8)
            seen = sorted(map(str, series.unique()))[:10]
            raise DataError(f"no row has the positive value {wanted!r}; values seen: {seen}", file=file, column=column)
        return np.asarray(as_text == wanted, dtype=np.int8)
    numeric = pd.to_numeric(series, errors="coerce")
    bad = ~numeric.isin([0, 1])
    if bad.any():
        row = first_bad_row(bad)
        raise DataError(
            f"label must be 0/1, found {shown(series.iloc[row - 1])}; pass --positive VALUE for a text label",
            file=file,
            column=column,
            row=row,
        )
    return np.asarray(numeric, dtype=np.int8)
