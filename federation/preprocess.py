"""Preprocessing agreed federatedly: each platform shares aggregates, never rows.

A platform computes `LocalStats` of its own feature table (row count; per numeric column the
count, sum and sum of squares; per categorical column the value counts). The bank merges them
(`merge_stats`) and builds one `Encoder` (standardisation + one-hot over the agreed vocabulary)
that every platform then applies to its own rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from federation.errors import DataError
from federation.features import FEATURE_LABEL, ID_COLUMNS
from federation.schema import binary_label, first_bad_row, read_table

OTHER = "__other__"


@dataclass
class LabeledTable:
    """One platform's training table: feature columns, 0/1 labels and the optional id column."""

    frame: pd.DataFrame
    y: np.ndarray
    ids: pd.Series | None
    source: str


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
            infinite = np.isinf(values.to_numpy())
            if infinite.any():
                raise DataError(
                    "infinite value; expected a finite number", file=file, column=column, row=first_bad_row(infinite)
                )
            checked[column] = values
        else:
            checked[column] = series.astype(str).str.strip()
    return pd.DataFrame(checked, index=frame.index)


def load_features(
    path: str | Path, id_columns: tuple[str, ...] = ID_COLUMNS, drop: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.Series | None]:
    """A feature table to score: (feature frame, ids or None). `drop` removes e.g. a label."""
    file = str(path)
    frame = read_table(path)
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
) -> LabeledTable:
    """A training table: checks the label, maps it to 0/1 and validates every feature value."""
    file = str(path)
    frame = read_table(path)
    if label not in frame.columns:
        raise DataError(f"label column not found; the file has {list(frame.columns)}", file=file, column=label)
    y = binary_label(frame[label], positive, file, label)
    if require_both_classes and len(np.unique(y)) < 2:
        only = "positive" if y[0] == 1 else "negative"
        raise DataError(f"every row is {only}; a training file needs both classes", file=file, column=label)
    features, ids = _split_ids(frame.drop(columns=[label]), tuple(c for c in id_columns if c != label))
    return LabeledTable(frame=_check_feature_values(features, file), y=y, ids=ids, source=file)


@dataclass
class LocalStats:
    """Aggregates of one (or, merged, several) platforms' feature tables."""

    rows: int = 0
    numeric: dict[str, list[float]] = field(default_factory=dict)  # column -> [count, sum, sumsq]
    categorical: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> value -> count
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "numeric": self.numeric, "categorical": self.categorical, "sources": self.sources}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalStats:
        return cls(
            rows=int(data["rows"]),
            numeric={k: [float(x) for x in v] for k, v in data["numeric"].items()},
            categorical={k: {str(a): int(b) for a, b in v.items()} for k, v in data["categorical"].items()},
            sources=list(data.get("sources", [])),
        )


def compute_stats(frame: pd.DataFrame, source: str = "") -> LocalStats:
    """The aggregates one platform shares for the preprocessing agreement."""
    stats = LocalStats(rows=len(frame), sources=[source] if source else [])
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype="float64")
            stats.numeric[column] = [float(len(values)), float(values.sum()), float(np.square(values).sum())]
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
        merged.sources.extend(part.sources)
        for column, (count, total, squares) in part.numeric.items():
            acc = merged.numeric.setdefault(column, [0.0, 0.0, 0.0])
            acc[0] += count
            acc[1] += total
            acc[2] += squares
        for column, counts in part.categorical.items():
            acc_counts = merged.categorical.setdefault(column, {})
            for value, count in counts.items():
                acc_counts[value] = acc_counts.get(value, 0) + count
    return merged


@dataclass
class Encoder:
    """Standardise numeric columns and one-hot encode categorical ones, as agreed by the federation."""

    numeric: dict[str, tuple[float, float]]  # column -> (mean, std)
    categorical: dict[str, list[str]]  # column -> vocabulary (OTHER slot appended)
    columns: list[str]  # expected input columns, in order

    @classmethod
    def from_stats(cls, stats: LocalStats, max_categories: int = 50) -> Encoder:
        numeric = {}
        for column, (count, total, squares) in stats.numeric.items():
            mean = total / count if count else 0.0
            variance = max(squares / count - mean * mean, 0.0) if count else 0.0
            std = math.sqrt(variance)
            numeric[column] = (mean, std if std > 1e-12 else 1.0)
        categorical = {}
        for column, counts in stats.categorical.items():
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]
            categorical[column] = sorted(value for value, _ in ranked) + [OTHER]
        columns = sorted(numeric) + sorted(categorical)
        return cls(numeric=numeric, categorical=categorical, columns=columns)

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
        blocks = []
        for column in sorted(self.numeric):
            series = frame[column]
            if not pd.api.types.is_numeric_dtype(series):
                raise DataError(
                    "expected a number (the model was trained on a numeric column)", file=file, column=column
                )
            mean, std = self.numeric[column]
            blocks.append(((series.to_numpy(dtype="float64") - mean) / std)[:, None])
        for column in sorted(self.categorical):
            vocabulary = self.categorical[column]
            index = {value: i for i, value in enumerate(vocabulary)}
            codes = frame[column].astype(str).map(index).fillna(len(vocabulary) - 1).to_numpy(dtype="int64")
            one_hot = np.zeros((len(frame), len(vocabulary)))
            one_hot[np.arange(len(frame)), codes] = 1.0
            blocks.append(one_hot)
        return np.hstack(blocks).astype(np.float32) if blocks else np.zeros((len(frame), 0), np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": {k: list(v) for k, v in self.numeric.items()},
            "categorical": self.categorical,
            "columns": self.columns,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Encoder:
        return cls(
            numeric={k: (float(v[0]), float(v[1])) for k, v in data["numeric"].items()},
            categorical={k: list(v) for k, v in data["categorical"].items()},
            columns=list(data["columns"]),
        )
