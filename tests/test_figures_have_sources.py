"""Every figure in the READMEs comes from the row and field of a results file that the text names.

The convention (written at the top of benchmarks/README.md): above each table of figures, an HTML comment

    <!-- figures: results/NAME.csv
    key: {table column: results field, ...}      # the cells that pick ONE results row
    where: {results field: regex, ...}           # optional: more conditions on that row
    columns: {table column: "{field} ({field_min}-{field_max})", ...}
    prose: [field, ...]                          # optional: more fields the section's prose may quote
    derived: {"68 s": {sum: field, where: {...}}}  # optional: a prose figure that is a sum of rows
    -->

Each body row is tied to the one results row whose key fields equal its key cells (a cell may add a
parenthesised note: ``partial (last stage)``), and each number of a cell, in order, to the template's
placeholders in order (so both ends of a range are read); ``{field@other=value}`` reads the row with the same
key but ``other`` = ``value``. A column with numbers that the comment does not map fails, as does a table of
figures without a comment. A figure matches its value rounded to the decimals shown (half-even or half-up).

Prose: in a section (heading to heading) with such a comment, every number that carries a unit (``x``, ``s``,
``%``, ``img/s``), both ends of a range included, must be a value of the mapped or ``prose`` fields of the
cited file (any row) or a ``derived`` entry; in a section without one it fails. A number after ``about``,
``within``, ``under``, ``over``, ``at least`` (a bound or a rough figure, not a measurement) is not checked.
The table's text must also cite the file and name the command (in backticks) that writes it.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
READMES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
SOURCE = re.compile(r"results/((?:[\w.\-]+/)?[\w.\-]+\.(?:csv|json|md))")  # a subfolder: results/gpu_<device>/
COMMAND = re.compile(r"`(?:[A-Z_]+=\w+ )*(?:zoo |python benchmarks/|bash benchmarks/)[^`]*`")  # env settings may lead
# a number: digits with thousands commas and decimals, a leading minus kept (not a range's dash: '0.90-1.08');
# never a piece of a word, a version or a file name
NUMBER = re.compile(r"(?<![\w.])-?\d(?:[\d,]*\d)?(?:\.\d+)?(?![\d.]|[A-Za-wyz_])")
NUMERIC_CELL = re.compile(
    r"^\(?[-+]?\d(?:[\d,]*\d)?(?:\.\d+)?\s*(?:x|%|s|img/s|MiB)?\)?"
    r"(?:\s*(?:±|-)\s*\d+(?:\.\d+)?\)?)?(?:\s*\(.*\))?$"
)
UNIT = re.compile(
    r"(?<![\w.])(\d(?:[\d,]*\d)?(?:\.\d+)?)(?:\s*(?:-|–| to )\s*(\d(?:[\d,]*\d)?(?:\.\d+)?))?"
    r"\s?(x|s|%|img/s)(?![\w/])"
)
QUALIFIER = re.compile(r"(?:about|around|within|under|over|below|above|nearly|roughly|at least|at most|up to|~)\s*$")
PLACEHOLDER = re.compile(r"\{([\w]+)(?:@([\w]+)=([^}]*))?\}")
COMMENT = re.compile(r"<!--\s*(figures:.*?)-->", re.S)


@dataclass
class Table:
    line: int  # 1-based line of the header row
    context: str  # text since the previous heading or table
    header: list[str]
    rows: list[list[str]]  # body rows, cells as written
    spec: dict[str, Any] | None = None
    section: int = 0


@dataclass
class Section:
    line: int
    prose: list[tuple[int, str]] = field(default_factory=list)  # (line, text) outside code, tables, comments
    specs: list[dict[str, Any]] = field(default_factory=list)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def parse(text: str) -> tuple[list[Table], list[Section]]:
    """The tables (with the figures comment above each) and the sections' prose of a Markdown text."""
    lines = text.splitlines()
    tables: list[Table] = []
    sections = [Section(1)]
    context: list[str] = []
    code = comment = False
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.lstrip().startswith("```"):
            code = not code
        elif code:  # a command shown is context; a comment shown (an example) is not a citation
            context.append(ln.replace("<!--", "<!- -"))
            i += 1
            continue
        elif comment or ln.lstrip().startswith("<!--"):
            comment = "-->" not in ln
            context.append(ln)
            i += 1
            continue
        elif ln.lstrip().startswith("|"):
            start = i
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                i += 1
            block = [_cells(x) for x in lines[start:i]]
            ctx = "\n".join(context)
            specs = [yaml.safe_load(m) for m in COMMENT.findall(ctx)]
            table = Table(start + 1, ctx, block[0], block[2:], specs[-1] if specs else None, len(sections) - 1)
            if table.spec:
                sections[-1].specs.append(table.spec)
            tables.append(table)
            context = []
            continue
        elif ln.startswith("#"):
            sections.append(Section(i + 1))
            context = []
        else:
            sections[-1].prose.append((i + 1, ln))
        context.append(ln)
        i += 1
    return tables, sections


def tables(text: str) -> list[Table]:
    return parse(text)[0]


def clean(cell: str) -> str:
    """A cell without emphasis, `code` and link targets."""
    cell = re.sub(r"`[^`]*`", " ", cell)
    cell = re.sub(r"\]\([^)]*\)", "]", cell)
    return cell.replace("**", "").replace("\\|", "|").strip()


def figures(cell: str) -> list[str]:
    """The number tokens of a cell, in order (a range '0.90-1.08' gives both ends)."""
    return NUMBER.findall(clean(cell))


def is_figure_table(t: Table) -> bool:
    return t.spec is not None or any(NUMERIC_CELL.match(clean(c)) for row in t.rows for c in row)


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as fh:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _num(text: str) -> Any:
    if text in ("", None):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def matches(token: str, value: Any) -> bool:
    """``token`` as written ('4,862', '0.98') is ``value`` rounded to the token's decimals."""
    if not isinstance(value, float) or math.isnan(value):
        return False
    text = token.replace(",", "")
    decimals = len(text.split(".")[1]) if "." in text else 0
    target = float(text)
    if math.isclose(round(value, decimals), target, abs_tol=10 ** -(decimals + 3)):
        return True
    try:  # half-up, as a person rounds 2.65 to 2.7 (the float 2.65 is 2.6499...)
        up = Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return False
    return math.isclose(float(up), target, abs_tol=10 ** -(decimals + 3))


def _key_matches(cell: str, value: Any) -> bool:
    cell = clean(cell)
    text = value if isinstance(value, str) else ("" if value is None else f"{value:g}")
    return cell == text or cell.startswith(text + " (")


def _where(row: dict[str, Any], where: dict[str, str]) -> bool:
    return all(
        re.fullmatch(str(rx), "" if row.get(k) is None else str(row.get(k)).removesuffix(".0"))
        for k, rx in where.items()
    )


def source_path(spec: dict[str, Any], results: Path) -> Path:
    m = SOURCE.search(str(spec["figures"]))
    return results / (m.group(1) if m else str(spec["figures"]))


def table_problems(t: Table, where: str, results: Path) -> list[str]:
    """Why the rows and columns of one table are not the cited row's fields."""
    spec = t.spec or {}
    path = source_path(spec, results)
    if not path.is_file():
        return [f"{where}: cites {path.name}, which does not exist"]
    data = read_rows(path)
    keys: dict[str, str] = spec.get("key") or {}
    cond: dict[str, str] = spec.get("where") or {}
    columns: dict[str, str] = spec.get("columns") or {}
    found = []
    for name in [*keys, *columns]:
        if name not in t.header:
            found.append(f"{where}: the figures comment maps column {name!r}, which the table lacks")
    for r, cells in enumerate(t.rows, start=1):
        cell = dict(zip(t.header, cells))
        key = {f: cell.get(h, "") for h, f in keys.items()}
        hits = [d for d in data if _where(d, cond) and all(_key_matches(c, d.get(f)) for f, c in key.items())]
        hits = list({repr(sorted(d.items())): d for d in hits}.values())  # rows equal in every field: one record
        if len(hits) != 1:
            found.append(f"{where}: row {r} ({', '.join(key.values())}) matches {len(hits)} rows of {path.name}")
            continue
        row = hits[0]
        for h, text in cell.items():
            tokens = figures(text)
            if h in keys:
                continue
            if h not in columns:
                if tokens:
                    found.append(f"{where}: row {r}, column {h!r} holds {tokens} but the comment maps no field")
                continue
            slots = PLACEHOLDER.findall(str(columns[h]))
            values = []
            for fld, other, val in slots:
                src = row
                if other:
                    alt = [
                        d
                        for d in data
                        if _where(d, {**cond, other: re.escape(val)})
                        and all(_key_matches(c, d.get(f)) for f, c in key.items())
                    ]
                    src = alt[0] if len(alt) == 1 else {}
                values.append((fld, src.get(fld)))
            if not tokens and all(v is None for _, v in values):
                continue
            if len(tokens) != len(values):
                found.append(
                    f"{where}: row {r}, column {h!r}: {len(tokens)} figures {tokens} for the "
                    f"{len(values)} fields of {columns[h]!r}"
                )
                continue
            found += [
                f"{where}: row {r}, column {h!r}: {tok} is not {fld} = {v!r} of {path.name}"
                for tok, (fld, v) in zip(tokens, values)
                if not matches(tok, v)
            ]
    return found


def _derived(spec: dict[str, Any], data: list[dict[str, Any]]) -> dict[str, float]:
    out = {}
    for text, how in (spec.get("derived") or {}).items():
        rows = [d for d in data if _where(d, how.get("where") or {})]
        out[str(text)] = sum(float(d[how["sum"]]) for d in rows)
    return out


def prose_problems(section: Section, name: str, results: Path) -> list[str]:
    """Unit-carrying figures in a section's prose: each a value of the section's cited fields."""
    values: list[float] = []
    derived: dict[str, float] = {}
    for spec in section.specs:
        path = source_path(spec, results)
        if not path.is_file():
            continue
        data = read_rows(path)
        fields = {m[0] for t in (spec.get("columns") or {}).values() for m in PLACEHOLDER.findall(str(t))}
        fields |= set(spec.get("prose") or [])
        values += [d[f] for d in data for f in fields if isinstance(d.get(f), float)]
        derived |= _derived(spec, data)
    found = []
    for line, text in section.prose:
        plain = re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), re.sub(r"\]\([^)]*\)", "]", text))
        for m in UNIT.finditer(plain):
            if (
                QUALIFIER.search(plain[: m.start()])
                or m.group(0).strip() in derived
                and matches(m.group(1), derived[m.group(0).strip()])
            ):
                continue
            for tok in filter(None, (m.group(1), m.group(2))):
                if not section.specs:
                    found.append(
                        f"{name}:{line}: {m.group(0)!r} in prose, but the section cites no results "
                        f"file in a figures comment"
                    )
                elif not any(matches(tok, v) for v in values):
                    found.append(f"{name}:{line}: {tok} (in {m.group(0)!r}) is no value of the section's cited fields")
    return found


def problems(readme: Path, results: Path = RESULTS) -> list[str]:
    """Why the figures of ``readme`` are not all backed by results files (empty: all are)."""
    tabs, sections = parse(readme.read_text())
    found = []
    for t in tabs:
        if not is_figure_table(t):
            continue
        where = f"{readme.name}:{t.line}"
        if t.spec is None:
            found.append(f"{where}: a table of figures has no <!-- figures: results/... --> comment above it")
            continue
        if not SOURCE.search(re.sub(r"<!--.*?-->", "", t.context, flags=re.S)):
            found.append(f"{where}: the text above the table does not cite its results file")
        if not COMMAND.search(t.context):
            found.append(f"{where}: names no command (`zoo ...`, `python benchmarks/...`) that writes its source")
        found += table_problems(t, where, results)
    for s in sections:
        found += prose_problems(s, readme.name, results)
    return found


# ---- the READMEs as committed --------------------------------------------------------------------------
@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_figure_is_its_results_row_and_field(readme):
    assert problems(readme) == []


def test_the_check_sees_figures_in_both_readmes():
    """Guards the guard: the parser finds the figure tables (a parser that saw none would pass anything)."""
    for readme in READMES:
        counted = [t for t in tables(readme.read_text()) if t.spec is not None]
        assert counted, f"no figure tables found in {readme}"
        assert all(t.rows for t in counted)


# ---- mutations the check must see ----------------------------------------------------------------------
def _backbones_table() -> tuple[str, Table]:
    text = (ROOT / "benchmarks" / "README.md").read_text()
    return text, next(t for t in tables(text) if t.spec and "backbones" in str(t.spec["figures"]))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "README.md"
    path.write_text(text)
    return path


def test_swapping_two_figures_and_editing_a_range_end_fail(tmp_path):
    """The old check passed all three: each edited number is some value of the cited file, and it never read
    the upper end of a range."""
    text, t = _backbones_table()
    assert problems(_write(tmp_path, text)) == []
    first, second = t.rows[0], t.rows[1]
    a, b = clean(first[1]), clean(second[1])  # infer zoo img/s of two models: swap them
    swapped = text.replace(f"| {first[0]} | {a} |", f"| {first[0]} | @@ |", 1)
    swapped = swapped.replace(f"| {second[0]} | {b} |", f"| {second[0]} | {a} |", 1).replace("@@", b, 1)
    assert swapped != text
    found = problems(_write(tmp_path, swapped))
    assert any(f"{a} is not infer_samples_per_sec" in p for p in found), found
    assert any(f"{b} is not infer_samples_per_sec" in p for p in found), found

    rng = next(c for c in first if re.search(r"\d-\d", c))  # '**0.98** (0.90-1.08)': the upper end
    upper = figures(rng)[-1]
    other = next(v for v in ("1.09", "9.99") if v != upper)
    edited = text.replace(rng, rng[: rng.rindex(upper)] + other + rng[rng.rindex(upper) + len(upper) :], 1)
    found = problems(_write(tmp_path, edited))
    assert any(f"{other} is not" in p and "_max" in p for p in found), found


def test_swapping_figures_within_a_row_fails(tmp_path):
    text, t = _backbones_table()
    row = t.rows[0]
    zoo_rate, timm_rate = clean(row[1]), clean(row[2])
    edited = text.replace(f"| {zoo_rate} | {timm_rate} |", f"| {timm_rate} | {zoo_rate} |", 1)
    assert edited != text
    assert len(problems(_write(tmp_path, edited))) == 2


def test_a_prose_figure_with_a_unit_is_checked(tmp_path):
    text = (ROOT / "benchmarks" / "README.md").read_text()
    anchor = "(0.65x and"  # the data path's first-epoch ratio on photos, quoted in prose
    assert anchor in text
    found = problems(_write(tmp_path, text.replace(anchor, "(9.99x and", 1)))
    assert any("9.99 (in '9.99x')" in p for p in found), found
    found = problems(_write(tmp_path, text.replace(anchor, "(about 9.99x and", 1)))
    assert found == []  # a rough figure is not a measurement


def test_a_table_without_a_figures_comment_fails(tmp_path):
    md = _write(tmp_path, "## Speed\n\nWe measured it.\n\n| model | img/s |\n|---|---:|\n| a | 123.4 |\n")
    assert problems(md) == ["README.md:5: a table of figures has no <!-- figures: results/... --> comment above it"]
    md.write_text("| column | meaning |\n|---|---|\n| x | MACs x 1e9, lr 0 |\n")  # prose, not figures
    assert problems(md) == []


def test_a_row_must_match_one_results_row_and_a_column_must_be_mapped(tmp_path):
    (tmp_path / "r.csv").write_text("model,rate,note\na,1.5,3\nb,2.5,4\n")
    head = (
        "`zoo bench x` wrote results/r.csv.\n\n<!-- figures: results/r.csv\nkey: {model: model}\n"
        "columns: {rate: '{rate}'}\n-->\n\n| model | rate | note |\n|---|---:|---:|\n"
    )
    md = _write(tmp_path, head + "| a | 1.5 | |\n| b | 2.5 | |\n")
    assert problems(md, tmp_path) == []
    md.write_text(head + "| c | 1.5 | |\n| b | 2.5 | 4 |\n")
    found = problems(md, tmp_path)
    assert any("row 1 (c) matches 0 rows" in p for p in found), found
    assert any("'note' holds ['4'] but the comment maps no field" in p for p in found), found


def test_a_negative_figure_and_rows_equal_in_every_field(tmp_path):
    """A figure keeps its sign ('-0.0439' was read as 0.0439); a file that holds one row twice, every field
    equal, ties a table row to that record; rows that differ in any field still do not."""
    head = (
        "`zoo bench x` wrote results/r.csv.\n\n<!-- figures: results/r.csv\nkey: {model: model}\n"
        "columns: {rate: '{rate}'}\n-->\n\n| model | rate |\n|---|---:|\n"
    )
    (tmp_path / "r.csv").write_text("model,rate,note\na,-0.5,nan\na,-0.5,nan\nb,0.25,\n")
    md = _write(tmp_path, head + "| a | -0.5 |\n| b | 0.25 |\n")
    assert problems(md, tmp_path) == []
    md.write_text(head + "| a | 0.5 |\n")
    assert any("0.5 is not rate = -0.5" in p for p in problems(md, tmp_path))
    (tmp_path / "r.csv").write_text("model,rate\na,-0.5\na,-0.6\n")
    md.write_text(head + "| a | -0.5 |\n")
    assert any("row 1 (a) matches 2 rows" in p for p in problems(md, tmp_path))


def test_rounding_rule():
    assert matches("5.28", 5.2791) and matches("4,862", 4862.0) and matches("0.924", 0.92361)
    assert matches("2.7", 2.65) and matches("2.6", 2.65)  # half-up and half-even both
    assert not matches("5.31", 5.2791) and not matches("10", 10.6) and not matches("1", None)
