"""A platform's private training data: loaded and validated locally, only aggregates leave.

The file is read through `federation.preprocess` (label mapping, NaN/inf/type checks with
file/column/row in the error). Loaded tables are cached per (path, mtime, label, positive) so a
long-lived ClientApp does not re-read its file every round.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from federation.errors import DataError
from federation.preprocess import Encoder, LabeledTable, LocalStats, compute_stats, load_labeled
from federation.units import DEFAULT_UNIT_COLUMN


def parse_positive(value: object | None) -> object | None:
    """`positive` as it travels in Flower configs ("" means: the label is already 0/1)."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    return value


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime: float, label: str, positive: object | None, unit_column: str) -> LabeledTable:
    return load_labeled(path, label=label, positive=positive, unit_column=unit_column)


def load_platform_table(
    path: str | Path,
    label: str = "default",
    positive: object | None = None,
    consent_db: str | None = None,
    unit_column: str = DEFAULT_UNIT_COLUMN,
) -> LabeledTable:
    """The platform's labeled feature table (DataError naming file/column/row when unusable).

    With `consent_db`, merchants without consent in force are left out. The filter runs after
    the cache, so a consent change takes effect in the next round.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DataError("file not found", file=path)
    table = _load_cached(path, os.path.getmtime(path), label, parse_positive(positive), unit_column)
    if consent_db:
        from clients.consent import consented_table

        table = consented_table(table, consent_db)
    return table


def local_stats(table: LabeledTable) -> LocalStats:
    """The aggregates this platform contributes to the federated preprocessing agreement."""
    return compute_stats(table.frame, source=Path(table.source).name, units=table.privacy_units())


def encode(table: LabeledTable, encoder: Encoder) -> tuple[np.ndarray, np.ndarray]:
    """Encoded features (float32) and labels (float32) of the platform's own rows."""
    x = encoder.transform(table.frame, file=table.source)
    return x, table.y.astype(np.float32)
