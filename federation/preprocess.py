"""Preprocessing agreed federatedly: each platform shares aggregates, never rows.

A platform computes `LocalStats` of its own feature table: the row count; per numeric column a
sketch (a histogram on fixed asinh-scale bins, with the count, sum and sum of squares of the
values in each bin); per categorical column the value counts. The bank merges them
(`merge_stats`) and builds one `Encoder` that every platform then applies to its own rows:
numeric columns clipped at agreed quantiles of the pooled distribution (never at the max, so one
extreme value from one platform cannot stretch the scale), then standardised with the exact
moments of the clipped column; text columns one-hot over the agreed vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from federation.errors import DataError
from federation.features import FEATURE_LABEL, ID_COLUMNS
from federation.schema import binary_label, first_bad_row, read_table, refuse_implausible, shown
from federation.units import DEFAULT_UNIT_COLUMN, ROW_UNIT, PrivacyUnits

OTHER = "__other__"


@dataclass
class LabeledTable:
    """One platform's training table: feature columns, 0/1 labels, the optional id column, and
    the values of the privacy-unit column (`merchant_id` unless configured) when present."""

    frame: pd.DataFrame
    y: np.ndarray
    ids: pd.Series | None
    source: str
    unit_ids: pd.Series | None = None
    unit_column: str = DEFAULT_UNIT_COLUMN

    def privacy_units(self) -> PrivacyUnits:
        """Which unit each row belongs to (each row its own unit when the column is absent or
        the run opted into row-level DP)."""
        return PrivacyUnits.of(self.unit_ids, len(self.y), self.unit_column)


def _split_ids(frame: pd.DataFrame, id_columns: tuple[str, ...]) -> tuple[pd.DataFrame, pd.Series | None]:
    present = [c for c in id_columns if c in frame.columns]
    ids = frame[present[0]].astype(str) if present else None
    return frame.drop(columns=present), ids


def _check_feature_values(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """Numbers stay numbers, text stays text; NaN and infinity are refused with file/column/row."""
    if frame.shape[1] == 0:
        raise DataError("no feature columns left after removing the label and id columns", file=file)
    checked = {}
    for column in frame.columns:
        series = frame[column]
        if series.isna().any():
            raise DataError(
                "empty value (NaN); expected a value in every row",
                file=file,
                column=column,
                row=first_bad_row(series.isna()),
            )
        if pd.api.types.is_bool_dtype(series):
            checked[column] = series.astype("float64")
        elif pd.api.types.is_numeric_dtype(series):
            values = series.astype("float64")
            refuse_implausible(values, series, file, column)
            checked[column] = values
        else:
            checked[column] = series.astype(str).str.strip()
    return pd.DataFrame(checked, index=frame.index)


def load_features(
    path: str | Path, id_columns: tuple[str, ...] = ID_COLUMNS, drop: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.Series | None]:
    """A feature table to score: (feature frame, ids or None). `drop` removes e.g. a label."""
    return features_of(read_table(path), str(path), id_columns, drop)


def features_of(
    frame: pd.DataFrame, file: str, id_columns: tuple[str, ...] = ID_COLUMNS, drop: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.Series | None]:
    """`load_features` on a table already read (`file` names it in errors)."""
    frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    features, ids = _split_ids(frame, id_columns)
    return _check_feature_values(features, file), ids


def load_labeled(
    path: str | Path,
    label: str = FEATURE_LABEL,
    positive: object | None = None,
    id_columns: tuple[str, ...] = ID_COLUMNS,
    *,
    require_both_classes: bool = True,
    unit_column: str = DEFAULT_UNIT_COLUMN,
) -> LabeledTable:
    """A training table: checks the label, maps it to 0/1 and validates every feature value.

    The privacy-unit column (`unit_column`) is an id, never a feature; its values are kept in
    `unit_ids` (an empty one is refused with its row: it would make an unnamed unit)."""
    file = str(path)
    frame = read_table(path)
    if label not in frame.columns:
        raise DataError(f"label column not found; the file has {list(frame.columns)}", file=file, column=label)
    y = binary_label(frame[label], positive, file, label)
    if require_both_classes and len(np.unique(y)) < 2:
        only = "positive" if y[0] == 1 else "negative"
        raise DataError(f"every row is {only}; a training file needs both classes", file=file, column=label)
    _refuse_repeated_merchant_months(frame, file)
    unit_ids = None
    if unit_column != ROW_UNIT and unit_column in frame.columns and unit_column != label:
        unit_ids = _unit_values(frame[unit_column], file, unit_column)
    drop = tuple(c for c in (*id_columns, unit_column) if c != label)
    features, ids = _split_ids(frame.drop(columns=[label]), drop)
    return LabeledTable(
        frame=_check_feature_values(features, file),
        y=y,
        ids=ids,
        source=file,
        unit_ids=unit_ids,
        unit_column=unit_column,
    )


def _unit_values(series: pd.Series, file: str, column: str) -> pd.Series:
    """The unit ids as text; an empty one would be a unit without a name."""
    blank = series.isna() | (series.astype(str).str.strip() == "")
    if blank.any():
        raise DataError(
            "empty privacy-unit id; every row must name its unit (or train with each row as its own unit)",
            file=file,
            column=column,
            row=first_bad_row(blank),
        )
    return series.astype(str).str.strip()


def _refuse_repeated_merchant_months(frame: pd.DataFrame, file: str) -> None:
    """A training table has one row per merchant and month: a repeated one would count twice."""
    if not {"merchant_id", "month"} <= set(frame.columns):
        return
    keys = frame["merchant_id"].astype(str) + "\x00" + frame["month"].astype(str)
    repeated = keys.duplicated(keep=False).to_numpy()
    if repeated.any():
        rows = np.flatnonzero(repeated)
        first = rows[0]
        twin = next(r for r in rows[1:] if keys.iat[r] == keys.iat[first])
        raise DataError(
            f"rows {first + 1} and {twin + 1} are the same merchant-month "
            f"({shown(frame['merchant_id'].iat[first])}, {shown(frame['month'].iat[first])}); a training file "
            f"has one row per merchant and month, a repeated one would count twice: remove or merge it",
            file=file,
            column="merchant_id",
            row=int(twin + 1),
        )


# Numeric sketches: fixed bins on the asinh scale, the same for every platform, so histograms add
# up without agreeing on a range first (one extreme value cannot stretch the bins). 8 bins per
# unit of asinh(x): neighbouring edges differ by about 13 % for large |x|, 0.125 near 0.
BINS_PER_UNIT = 8
# Numeric columns are clipped at these agreed quantiles of the pooled distribution (to the outer
# edges of the bins holding them, so only values in bins beyond are changed).
CLIP_QUANTILES = (0.005, 0.995)


def bin_of(values: np.ndarray) -> np.ndarray:
    """The sketch bin of each value (integer; negative for negative values)."""
    bins: np.ndarray = np.floor(np.arcsinh(values) * BINS_PER_UNIT).astype(np.int64)
    return bins


def bin_edges(index: int) -> tuple[float, float]:
    """[low, high) of sketch bin `index`."""
    return math.sinh(index / BINS_PER_UNIT), math.sinh((index + 1) / BINS_PER_UNIT)


@dataclass
class LocalStats:
    """Aggregates of one (or, merged, several) platforms' feature tables.

    `numeric`: column -> {sketch bin: [count, sum, sum of squares]} of the values in that bin,
    from which the bank finds agreed quantiles and the exact moments of the clipped column.
    `units` is how many privacy units (merchants) the rows belong to and `unit` what a unit is
    (`merchant_id`, or `row`): shared like the row count, so the bank can state the unit, size
    SecAgg+'s weights and show each platform's plan.
    """

    rows: int = 0
    units: int = 0
    unit: str = ROW_UNIT
    numeric: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    categorical: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> value -> count
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "units": self.units,
            "unit": self.unit,
            "numeric": {c: {str(b): m for b, m in bins.items()} for c, bins in self.numeric.items()},
            "categorical": self.categorical,
            "sources": self.sources,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], who: str = "a platform") -> LocalStats:
        """Parse (and check) statistics a platform sent: a DataError says what is malformed."""
        try:
            stats = cls(
                rows=int(data["rows"]),
                units=int(data.get("units", data["rows"])),
                unit=str(data.get("unit", ROW_UNIT)),
                numeric={
                    str(c): {int(b): [float(x) for x in m] for b, m in bins.items()}
                    for c, bins in data["numeric"].items()
                },
                categorical={str(k): {str(a): int(b) for a, b in v.items()} for k, v in data["categorical"].items()},
                sources=[str(s) for s in data.get("sources", [])],
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise DataError(f"{who} sent malformed statistics ({type(exc).__name__}: {exc})") from None
        stats.check(who)
        return stats

    def check(self, who: str) -> None:
        """Refuse statistics that cannot come from a real table: counts that do not add up to the
        rows, non-finite sums, a bin whose mean lies outside the bin."""
        if self.rows <= 0:
            raise DataError(f"{who} sent statistics of {self.rows} rows")
        for column, bins in self.numeric.items():
            total = 0.0
            for index, moments in bins.items():
                if len(moments) != 3 or not all(math.isfinite(x) for x in moments):
                    raise DataError(f"{who} sent non-finite statistics for column '{column}'")
                count, total_in_bin, _ = moments
                low, high = bin_edges(index)
                if (
                    count < 1
                    or count != int(count)
                    or not low - 1e-9 * abs(low) - 1e-12 <= total_in_bin / count <= high + 1e-9 * abs(high)
                ):
                    raise DataError(f"{who} sent inconsistent statistics for column '{column}' (bin {index})")
                total += count
            if total != self.rows:
                raise DataError(f"{who} sent {total:g} values for column '{column}' but {self.rows} rows")
        for column, counts in self.categorical.items():
            if any(c < 1 for c in counts.values()) or sum(counts.values()) != self.rows:
                raise DataError(f"{who} sent value counts for column '{column}' that do not add up to its rows")
        if not 1 <= self.units <= self.rows:
            raise DataError(f"{who} sent {self.units} privacy units for {self.rows} rows (expected 1 to {self.rows})")


def compute_stats(frame: pd.DataFrame, source: str = "", units: PrivacyUnits | None = None) -> LocalStats:
    """The aggregates one platform shares for the preprocessing agreement."""
    units = units or PrivacyUnits.per_row(len(frame))
    stats = LocalStats(rows=len(frame), units=units.count, unit=units.name, sources=[source] if source else [])
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype="float64")
            bins = bin_of(values)
            sketch: dict[int, list[float]] = {}
            for index in np.unique(bins):
                inside = values[bins == index]
                sketch[int(index)] = [float(len(inside)), float(inside.sum()), float(np.square(inside).sum())]
            stats.numeric[column] = sketch
        else:
            stats.categorical[column] = {str(k): int(v) for k, v in series.value_counts().items()}
    return stats


def merge_stats(parts: list[LocalStats]) -> LocalStats:
    """Sum the platforms' aggregates; they must agree on the columns and their kinds."""
    if not parts:
        raise DataError("no platform statistics to merge")
    reference = parts[0]
    merged = LocalStats()
    for part in parts:
        who = ", ".join(part.sources) or "a platform"
        if set(part.numeric) != set(reference.numeric) or set(part.categorical) != set(reference.categorical):
            raise DataError(
                f"{who} has columns numeric={sorted(part.numeric)} categorical={sorted(part.categorical)}, "
                f"but {', '.join(reference.sources) or 'the first platform'} has numeric={sorted(reference.numeric)} "
                f"categorical={sorted(reference.categorical)}; all platforms must share one schema"
            )
        merged.rows += part.rows
        merged.units += part.units
        merged.unit = part.unit if merged.unit in (ROW_UNIT, part.unit) else "mixed"
        merged.sources.extend(part.sources)
        for column, bins in part.numeric.items():
            acc = merged.numeric.setdefault(column, {})
            for index, moments in bins.items():
                slot = acc.setdefault(index, [0.0, 0.0, 0.0])
                for i in range(3):
                    slot[i] += moments[i]
        for column, counts in part.categorical.items():
            acc_counts = merged.categorical.setdefault(column, {})
            for value, count in counts.items():
                acc_counts[value] = acc_counts.get(value, 0) + count
    return merged


def clipped_moments(
    bins: dict[int, list[float]], quantiles: tuple[float, float] = CLIP_QUANTILES
) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of a column clipped to [low, high], the outer edges of the bins
    holding its `quantiles`; exact, because every value beyond is moved to an edge."""
    order = sorted(bins)
    counts = np.array([bins[i][0] for i in order])
    n = float(counts.sum())
    cumulative = np.cumsum(counts)
    low_rank = max(1.0, math.ceil(quantiles[0] * n))
    high_rank = max(1.0, math.ceil(quantiles[1] * n))
    low_bin = order[int(np.searchsorted(cumulative, low_rank))]
    high_bin = order[int(np.searchsorted(cumulative, high_rank))]
    low, high = bin_edges(low_bin)[0], bin_edges(high_bin)[1]
    total = squares = 0.0
    for index in order:
        count, total_in_bin, squares_in_bin = bins[index]
        if index < low_bin:
            total, squares = total + count * low, squares + count * low * low
        elif index > high_bin:
            total, squares = total + count * high, squares + count * high * high
        else:
            total, squares = total + total_in_bin, squares + squares_in_bin
    mean = total / n
    std = math.sqrt(max(squares / n - mean * mean, 0.0))
    return mean, std, low, high


@dataclass
class Encoder:
    """Clip and standardise numeric columns, one-hot encode categorical ones, as agreed.

    `bounds`: column -> (low, high) every value is clipped to before standardising (the agreed
    quantiles); a column without bounds (models from before clipping) is not clipped.
    """

    numeric: dict[str, tuple[float, float]]  # column -> (mean, std) of the clipped column
    categorical: dict[str, list[str]]  # column -> vocabulary (OTHER slot appended)
    columns: list[str]  # expected input columns, in order
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_stats(
        cls, stats: LocalStats, max_categories: int = 50, quantiles: tuple[float, float] = CLIP_QUANTILES
    ) -> Encoder:
        numeric, bounds = {}, {}
        for column, bins in stats.numeric.items():
            mean, std, low, high = clipped_moments(bins, quantiles)
            numeric[column] = (mean, std if std > 1e-12 else 1.0)
            bounds[column] = (low, high)
        categorical = {}
        for column, counts in stats.categorical.items():
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]
            categorical[column] = [*sorted(value for value, _ in ranked), OTHER]
        columns = sorted(numeric) + sorted(categorical)
        return cls(numeric=numeric, categorical=categorical, columns=columns, bounds=bounds)

    def outside(self, frame: pd.DataFrame) -> dict[str, tuple[int, int]]:
        """Per numeric column with values beyond the agreed bounds: (how many, first 1-based row)."""
        found = {}
        for column, (low, high) in sorted(self.bounds.items()):
            if column not in frame.columns or not pd.api.types.is_numeric_dtype(frame[column]):
                continue
            values = frame[column].to_numpy(dtype="float64")
            beyond = (values < low) | (values > high)
            if beyond.any():
                found[column] = (int(beyond.sum()), first_bad_row(beyond))
        return found

    @property
    def feature_names(self) -> list[str]:
        names = list(sorted(self.numeric))
        for column in sorted(self.categorical):
            names.extend(f"{column}={value}" for value in self.categorical[column])
        return names

    @property
    def n_features(self) -> int:
        return len(self.numeric) + sum(len(v) for v in self.categorical.values())

    def transform(self, frame: pd.DataFrame, file: str = "<data>") -> np.ndarray:
        """Encode `frame` (columns as agreed; extra columns are refused, not ignored)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(f"column missing; the model expects {self.columns}", file=file, column=missing[0])
        extra = [c for c in frame.columns if c not in self.columns]
        if extra:
            raise DataError(f"column not known to the model; it expects {self.columns}", file=file, column=extra[0])
        numbers = {}
        for column in sorted(self.numeric):
            if not pd.api.types.is_numeric_dtype(frame[column]):
                raise DataError(
                    "expected a number (the model was trained on a numeric column)", file=file, column=column
                )
            numbers[column] = frame[column].to_numpy(dtype="float64")
        codes = {}
        for column, vocabulary in self.categorical.items():
            index = {value: i for i, value in enumerate(vocabulary)}
            codes[column] = frame[column].astype(str).map(index).fillna(len(vocabulary) - 1).to_numpy(dtype="int64")
        return self._encode(len(frame), numbers, codes)

    def transform_records(self, records: Sequence[Mapping[str, Any]], file: str = "<data>") -> np.ndarray:
        """`transform` for rows given as dicts (a score request): the same matrix without
        building a DataFrame, which cost more than the model itself for one merchant."""
        for number, record in enumerate(records, start=1):
            missing = [c for c in self.columns if c not in record]
            if missing:
                raise DataError(
                    f"column missing; the model expects {self.columns}", file=file, row=number, column=missing[0]
                )
        numbers = {}
        for column in sorted(self.numeric):
            values = [record[column] for record in records]
            if not all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
                raise DataError(
                    "expected a number (the model was trained on a numeric column)", file=file, column=column
                )
            numbers[column] = np.array(values, dtype=np.float64)
        codes = {}
        for column, vocabulary in self.categorical.items():
            other = len(vocabulary) - 1
            index = {value: i for i, value in enumerate(vocabulary)}
            codes[column] = np.array([index.get(str(r[column]), other) for r in records], dtype=np.int64)
        return self._encode(len(records), numbers, codes)

    def _encode(self, n: int, numbers: dict[str, np.ndarray], codes: dict[str, np.ndarray]) -> np.ndarray:
        """Clipped, standardised numbers then one-hot categories, in `feature_names` order."""
        blocks = []
        for column in sorted(self.numeric):
            mean, std = self.numeric[column]
            values = numbers[column]
            if column in self.bounds:
                values = np.clip(values, *self.bounds[column])
            blocks.append(((values - mean) / std)[:, None])
        for column in sorted(self.categorical):
            one_hot = np.zeros((n, len(self.categorical[column])))
            one_hot[np.arange(n), codes[column]] = 1.0
            blocks.append(one_hot)
        return np.hstack(blocks).astype(np.float32) if blocks else np.zeros((n, 0), np.float32)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "numeric": {k: list(v) for k, v in self.numeric.items()},
            "categorical": self.categorical,
            "columns": self.columns,
        }
        if self.bounds:
            out["bounds"] = {k: list(v) for k, v in self.bounds.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Encoder:
        return cls(
            numeric={k: (float(v[0]), float(v[1])) for k, v in data["numeric"].items()},
            categorical={k: list(v) for k, v in data["categorical"].items()},
            columns=list(data["columns"]),
            bounds={k: (float(v[0]), float(v[1])) for k, v in data.get("bounds", {}).items()},
        )
