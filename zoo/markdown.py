"""The one Markdown-table writer: benchmark results, ``zoo rank``, a recipe's comparison.md and the scripts in
benchmarks/ all print their tables through it, so every table formats numbers the same way. The bottom layer:
it imports no other zoo module."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def format_value(value: Any, digits: int = 2) -> str:
    """A cell for humans: None -> '', floats with ``digits`` decimals (3 significant when small)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits + 1):
            return f"{value:.3g}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)


def markdown_table(
    rows: Sequence[Mapping[str, Any] | Sequence[Any]], columns: Sequence[str], digits: int = 2, align: str | None = None
) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the others right-aligned (numbers),
    unless ``align`` says otherwise, one letter per column ('lr', 'll').

    A row is a mapping (its values read by column name) or a sequence in column order."""
    head = "| " + " | ".join(columns) + " |"
    align = align or "l" + "r" * (len(columns) - 1)
    align = "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"
    body = []
    for row in rows:
        cells = [row.get(c) for c in columns] if isinstance(row, Mapping) else list(row)
        body.append("| " + " | ".join(format_value(v, digits).replace("|", "\\|") for v in cells) + " |")
    return "\n".join([head, align, *body])
