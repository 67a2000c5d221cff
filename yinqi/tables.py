"""Plain-text tables for the shell: cells are never read as markup, never cut ("partici…") on a
narrow or piped console."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text


class PlainTable(Table):
    """A table whose cells are plain text: data (a merchant id, a category, a reason) is never
    read as rich markup or an emoji code ("calibration:A:" stays as it is)."""

    def add_row(self, *renderables: Any, **options: Any) -> None:
        super().add_row(*(Text(r) if isinstance(r, str) else r for r in renderables), **options)


def readable_table(title: str | None = None, columns: tuple[str, ...] = (), **options: Any) -> Table:
    """A plain-text table whose cells wrap instead of being cut ("partici…") on a narrow or
    piped console."""
    table = PlainTable(title=Text(title) if title else None, **options)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def print_wide(out: Console, title: str, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    """A table with a key column and many value columns: when it is wider than the console, it
    is printed as several tables, each with the key column and as many whole columns as fit, so
    no number is folded or cut on a narrow or piped console."""

    def width(index: int) -> int:
        cells = [*columns[index].split("\n"), *(row[index] for row in rows)]
        return max(cell_len(c) for c in cells) + 3  # padding and border

    parts: list[list[int]] = [[]]
    used = width(0) + 1
    for index in range(1, len(columns)):
        need = width(index)
        if parts[-1] and used + need > out.width:
            parts.append([])
            used = width(0) + 1
        parts[-1].append(index)
        used += need
    for number, part in enumerate(parts, start=1):
        suffix = f" ({number}/{len(parts)})" if len(parts) > 1 else ""
        table = PlainTable(title=Text(title + suffix))
        for index in (0, *part):
            table.add_column(columns[index], overflow="fold", no_wrap=index != 0)
        for row in rows:
            table.add_row(*(row[i] for i in (0, *part)))
        out.print(table)
