"""Terminal output shared by the commands: tables through rich (plain text when piped)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Wide enough that a piped table keeps its natural width: rich would otherwise fold cells at 80 columns.
_PIPED_WIDTH = 1000


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A table whose first column (a name users copy) is never folded; the other columns give way."""
    from rich.console import Console
    from rich.table import Table

    terminal = Console()
    console = Console(width=max(100, terminal.width) if terminal.is_terminal else _PIPED_WIDTH)
    if title:
        console.print(title, style="bold", highlight=False)
    cells = [[str(c) for c in row] for row in rows]
    name_width = max([len(columns[0]), *(len(row[0]) for row in cells)]) if columns else 0
    table = Table()
    for i, col in enumerate(columns):
        if i == 0:
            table.add_column(col, justify="left", no_wrap=True, min_width=name_width)
        else:
            table.add_column(col, justify="right", overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table)
