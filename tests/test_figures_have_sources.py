"""Every figure in the READMEs' tables comes from a results file written by a command named beside it.

A table of figures is a Markdown table of README.md or benchmarks/README.md with at least one cell that
is a number (``5.28x``, ``4,862``, ``0.9778 ± 0.0039``, ``**1.03**``); tables of prose (column meanings,
strategies) are not. For each table of figures, the text between the previous heading (or table) and the
table must cite at least one file in benchmarks/results/ and name the command (in backticks) that writes it,
and every number anywhere in the table must be a value of those files, rounded to the decimals the table
shows. A number edited by hand, or a table without a source, fails.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
READMES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
SOURCE = re.compile(r"results/([\w.\-]+\.(?:csv|json|md))")
COMMAND = re.compile(r"`(?:zoo |python benchmarks/|bash benchmarks/)[^`]*`")
NUMBER = re.compile(r"(?<![\w.\-])[-+]?\d(?:[\d,]*\d)?(?:\.\d+)?(?![\w.])")
NUMERIC_CELL = re.compile(r"^[-+]?\d(?:[\d,]*\d)?(?:\.\d+)?\s*(?:x|%|s|img/s)?(?:\s*±\s*\d+(?:\.\d+)?)?$")


@dataclass
class Table:
    line: int  # 1-based line of the header row
    context: str  # text since the previous heading or table
    rows: list[list[str]]  # body rows, cells as written


def tables(text: str) -> list[Table]:
    lines = text.splitlines()
    out, context, i = [], [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|"):
            start = i
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                i += 1
            block = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines[start:i]]
            out.append(Table(start + 1, "\n".join(context), block[2:]))
            context = []
            continue
        if lines[i].startswith("#"):
            context = []
        context.append(lines[i])
        i += 1
    return out


def figures(cell: str) -> list[str]:
    """Number tokens of a cell, outside `code` and link targets."""
    cell = re.sub(r"`[^`]*`", " ", cell)
    cell = re.sub(r"\]\([^)]*\)", "]", cell)
    return NUMBER.findall(cell.replace("**", ""))


def is_figure_table(t: Table) -> bool:
    return any(NUMERIC_CELL.match(re.sub(r"\*\*", "", c).strip()) for row in t.rows for c in row)


def values_of(path: Path) -> list[float]:
    """Every number a results file holds (CSV cells, JSON-encoded lists in them, JSON leaves)."""
    found: list[float] = []

    def walk(v: object) -> None:
        if isinstance(v, bool) or v is None:
            return
        if isinstance(v, (int, float)):
            found.append(float(v))
        elif isinstance(v, str):
            try:
                walk(json.loads(v))
            except ValueError:
                found.extend(float(t.replace(",", "")) for t in NUMBER.findall(v))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    if path.suffix == ".json":
        walk(json.loads(path.read_text()))
    else:
        with path.open(newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    walk(cell)
    return found


def source_files(context: str, results: Path) -> list[Path]:
    """The CSV/JSON files a table cites (a cited .md stands for the CSV/JSON files of the same stem)."""
    files = []
    for name in SOURCE.findall(context):
        stem = Path(name).stem if name.endswith(".md") else None
        files += sorted(p for p in results.glob(f"{stem}.*") if p.suffix in (".csv", ".json")) if stem \
            else [results / name]
    return list(dict.fromkeys(files))


def matches(token: str, values: list[float]) -> bool:
    text = token.replace(",", "")
    decimals = len(text.split(".")[1]) if "." in text else 0
    target = float(text)
    return any(math.isclose(round(v, decimals), target, abs_tol=10 ** -(decimals + 3)) for v in values)


def problems(readme: Path, results: Path = RESULTS) -> list[str]:
    """Why the tables of ``readme`` are not all backed by results files (empty: all are)."""
    found = []
    for t in tables(readme.read_text()):
        tokens = [tok for row in t.rows for cell in row for tok in figures(cell)]
        if not tokens or not is_figure_table(t):
            continue
        where = f"{readme.name}:{t.line}"
        files = source_files(t.context, results)
        if not files:
            found.append(f"{where}: a table of figures cites no benchmarks/results/ file above it")
            continue
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            found.append(f"{where}: cites {missing}, which do not exist")
            continue
        if not COMMAND.search(t.context):
            found.append(f"{where}: names no command (`zoo ...`, `python benchmarks/...`) that writes its source")
        values = [v for f in files for v in values_of(f)]
        found += [f"{where}: {tok} is in none of {[f.name for f in files]}" for tok in tokens
                  if not matches(tok, values)]
    return found


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_figure_is_in_a_cited_results_file(readme):
    assert problems(readme) == []


def test_the_check_sees_figures_in_both_readmes():
    """Guards the guard: the parser finds the figure tables (a parser that saw none would pass anything)."""
    for readme in READMES:
        counted = [t for t in tables(readme.read_text()) if is_figure_table(t)]
        assert counted, f"no figure tables found in {readme}"


def test_a_hand_edited_number_fails(tmp_path):
    for readme in READMES:
        text = readme.read_text()
        t = next(t for t in tables(text) if is_figure_table(t))
        row = next(r for r in t.rows if any(figures(c) for c in r))
        cell = next(c for c in row if figures(c))
        token = figures(cell)[0]
        edited_cell = cell.replace(token, "987.654", 1)  # a value no results file holds
        edited = text.replace("| " + cell + " |", "| " + edited_cell + " |", 1)
        assert edited != text
        copy = tmp_path / readme.name
        copy.write_text(edited)
        assert any("987.654 is in none of" in p for p in problems(copy)), readme


def test_a_table_without_a_source_fails(tmp_path):
    md = tmp_path / "README.md"
    md.write_text("## Speed\n\nWe measured it.\n\n| model | img/s |\n|---|---:|\n| a | 123.4 |\n")
    assert problems(md) == ["README.md:5: a table of figures cites no benchmarks/results/ file above it"]
    md.write_text("| column | meaning |\n|---|---|\n| x | MACs x 1e9, lr 0 |\n")  # prose, not figures
    assert problems(md) == []


def test_rounding_rule():
    assert matches("5.28", [5.2791]) and matches("4,862", [4862.0]) and matches("0.924", [0.92361])
    assert not matches("5.31", [5.2791]) and not matches("10", [10.6])
