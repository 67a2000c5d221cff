"""The unit of privacy: whose data one DP guarantee protects.

A platform promises its *merchants* that a merchant's data cannot be told from the model. A
training table has one row per merchant and month, so differential privacy over rows would
protect one month of one merchant (a merchant with 12 months is protected at about 12x that ε,
by group privacy). Here the unit is the entity named by an id column, `merchant_id` by
default: DP-SGD samples and clips whole merchants (all of their rows together), and the
accountant composes over merchant sampling. A table without that column (one row per borrower)
takes each row as its own unit; `row` as the unit column is the explicit opt-in to row-level
DP on a table that has the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from federation.errors import ConfigError

DEFAULT_UNIT_COLUMN = "merchant_id"
ROW_UNIT = "row"  # the explicit opt-in: every row its own unit


def unit_description(column: str, grouped: bool) -> str:
    """How a report names the unit: `merchant_id` (all rows of one id together) or `row`."""
    return column if grouped else ROW_UNIT


def check_unit_column(column: str) -> str:
    """A unit column must be a plain column name (or `row`)."""
    name = str(column).strip()
    if not name or any(ch in name for ch in "|\n\r\x00"):
        raise ConfigError(f"privacy unit column {column!r}: expected a column name such as merchant_id, or 'row'")
    return name


@dataclass(frozen=True)
class PrivacyUnits:
    """Which unit each row belongs to.

    `index[r]` is the unit (0..count-1) of row r; `rows[u]` how many rows unit u has. `column`
    is the id column the units come from, or `row` when every row is its own unit (`grouped`
    False): the table had no such column, or the run opted into row-level DP.
    """

    column: str
    grouped: bool
    index: np.ndarray  # int64, one per row
    rows: np.ndarray  # int64, one per unit

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def name(self) -> str:
        """The unit as reports state it."""
        return unit_description(self.column, self.grouped)

    @property
    def max_rows(self) -> int:
        return int(self.rows.max()) if len(self.rows) else 0

    @classmethod
    def per_row(cls, n_rows: int) -> PrivacyUnits:
        return cls(ROW_UNIT, False, np.arange(n_rows, dtype=np.int64), np.ones(n_rows, dtype=np.int64))

    @classmethod
    def of(cls, ids: pd.Series | None, n_rows: int, column: str = DEFAULT_UNIT_COLUMN) -> PrivacyUnits:
        """Units from an id column's values (`ids`, one per row) or, when there are none or the
        unit is `row`, one unit per row."""
        if column == ROW_UNIT or ids is None:
            return cls.per_row(n_rows)
        if len(ids) != n_rows:
            raise ValueError(f"{len(ids)} unit ids for {n_rows} rows")
        codes, uniques = pd.factorize(ids.astype(str), sort=True)
        index = codes.astype(np.int64)
        rows = np.bincount(index, minlength=len(uniques)).astype(np.int64)
        return cls(column, True, index, rows)
