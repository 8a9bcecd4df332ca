"""The map matches the territory: README's Layout names every module under zoo/, the import-linter contract
places every top-level package and module in a layer, and "all argparse lives in cli/" stays true."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo"


def layout_entries(readme: str) -> dict[str, str]:
    """README's Layout code block as {head: text}: a head is the line's first column ('zoo/train/',
    'zoo/errors.py, fsutil.py'), the text is the rest of its lines (continuations are indented)."""
    section = readme[readme.index("## Layout") :]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    entries: dict[str, str] = {}
    head = ""
    for line in block.splitlines():
        if line.startswith("zoo/"):
            head, rest = (re.split(r"\s{2,}", line.rstrip(), maxsplit=1) + [""])[:2]
            entries[head] = rest
        elif head:
            entries[head] += " " + line.strip()
    return entries


def missing_from_layout(readme: str, root: Path = ZOO) -> list[str]:
    """Modules under ``root`` that the Layout does not name (a package's modules in its own entry)."""
    entries = layout_entries(readme)
    heads = " ".join(entries)
    missing = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        if path.name == "__init__.py" or "templates" in rel.parts:
            continue
        if len(rel.parts) == 2:  # zoo/x.py: named in a head ('zoo/errors.py, fsutil.py')
            if not re.search(rf"(?<![\w.]){re.escape(path.name)}\b", heads):
                missing.append(str(rel))
            continue
        package = f"zoo/{rel.parts[1]}/"
        text = next((t for h, t in entries.items() if package in h), None)
        if text is None:
            missing.append(f"{package} (the package)")
        elif not re.search(rf"(?<![\w.]){re.escape(path.name)}\b", text):
            missing.append(str(rel))
    return missing


def top_level(root: Path = ZOO) -> set[str]:
    """zoo.x for every module zoo/x.py and package zoo/x/ (without __init__ and __main__)."""
    out = {f"zoo.{p.stem}" for p in root.glob("*.py") if not p.name.startswith("__")}
    out |= {f"zoo.{p.name}" for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    return out


def layered() -> set[str]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    return {name.strip() for layer in layers for name in layer.split("|")}


def test_every_module_is_in_the_readme_layout():
    assert missing_from_layout((ROOT / "README.md").read_text()) == []


def test_every_top_level_package_and_module_is_in_a_layer():
    assert top_level() - layered() == set()
    assert layered() - top_level() == set(), "the contract names a package that does not exist"


def test_argparse_lives_only_in_cli():
    users = [
        str(p.relative_to(ROOT))
        for p in ZOO.rglob("*.py")
        if "cli" not in p.relative_to(ZOO).parts[:1]
        and any(
            isinstance(n, (ast.Import, ast.ImportFrom)) and "argparse" in ast.unparse(n)
            for n in ast.walk(ast.parse(p.read_text()))
        )
    ]
    assert users == []


def test_the_checks_see_a_missing_module(tmp_path):
    """Guards the guards: a module added without a Layout line, or a package without a layer, is reported."""
    (tmp_path / "zoo" / "newpkg").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "newtop.py", "newpkg/__init__.py", "newpkg/thing.py"):
        (tmp_path / "zoo" / name).write_text("")
    readme = "## Layout\n\n```\nzoo/errors.py      errors\nzoo/newpkg/        other.py\n```\n"
    assert missing_from_layout(readme, tmp_path / "zoo") == ["zoo/newpkg/thing.py", "zoo/newtop.py"]
    assert top_level(tmp_path / "zoo") - layered() == {"zoo.newpkg", "zoo.newtop"}
