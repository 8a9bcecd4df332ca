"""zoo calls only the public APIs of the libraries it builds on: a private module (``timm.models._hub``) can
change its signature in any release inside the version range pyproject allows, and did."""
from __future__ import annotations

import ast
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
