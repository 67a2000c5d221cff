"""The error type every yinqi package raises for a user's mistake.

The CLI turns a `YinqiError` into one line (what, where, what was expected) and a non-zero
exit; anything else is a bug and keeps its traceback. Each package subclasses it once.
"""

from __future__ import annotations


class YinqiError(Exception):
    """A problem the user can fix: bad input, a missing file, a refused operation."""

    exit_code: int = 2


class DataError(YinqiError):
    """Input data that does not fit the schema.

    The message names the file and, where they apply, the column and the 1-based data row.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.file, self.column, self.row = file, column, row
        where = []
        if file is not None:
            where.append(str(file))
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            where.append(f"row {row}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(YinqiError):
    """A configuration file or setting that cannot be used."""


class ProcessError(YinqiError):
    """A supervised process that could not start, died, or did not become ready."""
