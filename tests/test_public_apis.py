"""zoo imports no private module of the libraries it builds on, and reads their private attributes only where
no public way exists, each listed here with the reason: a private name (``timm.models._hub``) can change in
any release inside the version range pyproject allows, and did. A new private use fails until it is listed."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ZOO = Path(__file__).resolve().parents[1] / "zoo"
LIBRARIES = ("timm", "transformers", "accelerate", "datasets", "huggingface_hub", "torchvision", "safetensors")


def private_imports(source: str) -> list[str]:
    """'module.name' of every import of a private module (a dotted part starting with '_') of LIBRARIES."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] in LIBRARIES and any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
                found.append(name)
    return found


def test_the_checker_finds_private_imports():
    assert private_imports("from timm.models._hub import save_config_for_hf\nimport timm") == ["timm.models._hub"]
    assert private_imports("from timm.models import _helpers") == ["timm.models._helpers"]
    assert private_imports("from timm.models import save_for_hf\nfrom zoo._x import y") == []


def test_zoo_imports_no_private_module_of_its_dependencies():
    offenders = {str(p.relative_to(ZOO.parent)): private_imports(p.read_text()) for p in ZOO.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


# private attributes of other libraries that zoo reads, and why there is no public way
KNOWN_PRIVATE_ATTRIBUTES = {
    "_reset_state": "accelerate keeps AcceleratorState/GradientState as process-wide singletons and has no public "
    "reset; a second recipe variant in the same process needs its own precision and accumulation",
    "_fingerprint": "datasets exposes no public accessor of a Dataset's fingerprint, the documented cache key "
    "that changes with every select or shuffle (the store and the feature cache key on it)",
    "_NormBase": "torch has no public base class of every BatchNorm/InstanceNorm layer (isinstance checks)",
    "_BatchNorm": "torch has no public base class of BatchNorm1d/2d/3d (isinstance check, side-by-side baseline)",
    "_SubParsersAction": "argparse's type of add_subparsers(), in type hints only (the standard library's)",
    "_C": "torch._C._storage_Use_Count: torch has no public use count of a storage, and without one a reused "
    "output buffer (zoo.data.batch_crops) could overwrite a batch that a view or an autograd graph still holds; "
    "read with getattr, a fresh buffer every batch when it is gone",
    "_cdata": "the storage handle that torch._C._storage_Use_Count takes (same use)",
}


def private_attributes(files: dict[Path, str]) -> dict[str, list[str]]:
    """Every ``x._name`` (single underscore) read in ``files`` whose name zoo does not define itself -> where."""
    trees = {p: ast.parse(text) for p, text in files.items()}
    defined = set()
    for tree in trees.values():
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(n.name)
            elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                defined.add(n.attr)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                defined.add(n.id)
            elif isinstance(n, ast.arg):
                defined.add(n.arg)
    found = defaultdict(list)
    for path, tree in trees.items():
        for n in ast.walk(tree):
            if (
                isinstance(n, ast.Attribute)
                and n.attr.startswith("_")
                and not n.attr.startswith("__")
                and n.attr not in defined
            ):
                found[n.attr].append(f"{path.name}:{n.lineno}")
    return dict(found)


def test_the_attribute_checker_finds_private_reads_of_other_libraries():
    src = "from accelerate.state import AcceleratorState\nAcceleratorState._reset_state()\nself._mine = 1\nx._mine\n"
    assert private_attributes({Path("a.py"): src}) == {"_reset_state": ["a.py:2"]}


def test_zoo_reads_only_the_listed_private_attributes():
    found = private_attributes({p: p.read_text() for p in ZOO.rglob("*.py")})
    unlisted = {k: v for k, v in found.items() if k not in KNOWN_PRIVATE_ATTRIBUTES}
    assert unlisted == {}, "a new private attribute of a dependency: use a public API, or list it with the reason"
    assert set(KNOWN_PRIVATE_ATTRIBUTES) == set(found), "a listed private use is gone: remove it from the list"
