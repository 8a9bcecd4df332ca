"""Terminal output shared by the commands: tables through rich (plain text when piped)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width))
    if title:
        console.print(title, style="bold", highlight=False)
    table = Table()
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console.print(table)
