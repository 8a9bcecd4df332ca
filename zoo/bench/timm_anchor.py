"""timm's own ``benchmark.py``, run as it is, as the anchor for zoo's backbone timings.

The file is not in the timm wheel. The project keeps timm's file byte for byte in
``../shared/third_party/timm_benchmark.py`` (beside the checkout; that folder's README gives the upstream
commit and the sha256 below). Nothing here edits, wraps or re-implements it: it is started as
``python timm_benchmark.py --bench both ...`` in a fresh process, after its sha256 is checked, and its
``--result`` JSON is read. Any other file is refused, so a result can never come from a rewritten copy.

Both sides get the same settings, derived from one ``BenchConfig``; :func:`settings_differences` compares
what each side reports having used, and a comparison whose settings differ is refused, not printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError

TIMM_SCRIPT_SHA256 = "c2257b70ef9cd6e1dbc19a86cc5d0daea0505649a82352add58013d0382ed1ba"
TIMM_SCRIPT_ENV = "ZOO_TIMM_BENCHMARK"  # overrides where the file is looked for (the hash is still checked)
TIMM_RESULT_MARKER = "--result\n"  # timm's benchmark.py prints this line, then the JSON results
# zoo's precision -> timm's --precision: both are autocast around an fp32 model ('amp' is fp16 autocast).
TIMM_PRECISION = {"fp32": "float32", "bf16": "amp_bfloat16", "fp16": "amp"}
# timm options that change what is measured; given through --timm-args they must match zoo's settings.
_TIMM_VALUE_OPTS = {
    "--precision",
    "--batch-size",
    "-b",
    "--img-size",
    "--num-warm-iter",
    "--num-bench-iter",
    "--torchcompile",
    "--device",
    "--model",
    "-m",
    "--bench",
    "--amp-dtype",
}
_TIMM_FLAG_OPTS = {
    "--channels-last",
    "--amp",
    "--torchscript",
    "--aot-autograd",
    "--grad-checkpointing",
    "--reparam",
    "--fast-norm",
}


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find_timm_script() -> Path:
    """``$ZOO_TIMM_BENCHMARK``, else ``../shared/third_party/timm_benchmark.py`` next to the checkout
    that holds this package (or next to the current folder)."""
    if os.environ.get(TIMM_SCRIPT_ENV):
        return Path(os.environ[TIMM_SCRIPT_ENV])
    rel = Path("..") / "shared" / "third_party" / "timm_benchmark.py"
    candidates = [Path(__file__).resolve().parents[2] / rel, Path.cwd() / rel]
    return next((c.resolve() for c in candidates if c.is_file()), candidates[0].resolve())


def require_timm_script(script: str | Path | None = None, expected: str | None = None) -> tuple[Path, str]:
    """(path, sha256) of timm's benchmark.py, or a ConfigError: missing file, or a file that is not
    timm's exactly (any edit changes the hash)."""
    path = Path(script) if script else find_timm_script()
    expected = expected or TIMM_SCRIPT_SHA256
    if not path.is_file():
        raise ConfigError(
            f"timm's benchmark.py was not found at {path}. It is not in the timm pip package; the project keeps "
            f"it in ../shared/third_party/timm_benchmark.py beside the checkout. Fix: put timm's benchmark.py "
            f"(sha256 {expected}) there, or point --timm-script / ${TIMM_SCRIPT_ENV} at it."
        )
    digest = sha256_of(path)
    if digest != expected:
        raise ConfigError(
            f"{path} is not timm's benchmark.py as pinned: sha256 {digest}, expected {expected}. Refusing to "
            f"compare against a modified or different script. Fix: use the unmodified file from "
            f"../shared/third_party/ (see its README for the upstream commit)."
        )
    return path, digest


def timm_argv(model: str, batch_size: int, img_size: int, cfg: Any, bench: str = "both") -> list[str]:
    """timm's options for zoo's settings: same model, batch, input size, precision, memory format,
    compile, warm-up and timed steps (``--img-size`` always: timm otherwise uses the model's test size)."""
    argv = [
        "--model",
        model,
        "--bench",
        bench,
        "--batch-size",
        str(batch_size),
        "--img-size",
        str(img_size),
        "--precision",
        TIMM_PRECISION[cfg.precision],
        "--num-warm-iter",
        str(cfg.warmup),
        "--num-bench-iter",
        str(cfg.iters),
        "--device",
        cfg.device,
    ]
    if cfg.channels_last:
        argv.append("--channels-last")
    if cfg.compile:
        argv += ["--torchcompile", "inductor"]
    return argv + list(cfg.timm_args)


def argv_settings(argv: Sequence[str]) -> dict[str, Any]:
    """The measurement settings that a timm command line asks for (the last value of an option wins,
    as in argparse). Used to refuse ``--timm-args`` that would make the two sides differ."""
    opts: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        key, _, inline = a.partition("=")
        if key in _TIMM_VALUE_OPTS:
            if inline:
                opts[key] = inline
            elif key == "--torchcompile" and (i + 1 >= len(argv) or argv[i + 1].startswith("-")):
                opts[key] = "inductor"  # nargs='?' with const='inductor'
            else:
                i += 1
                opts[key] = argv[i] if i < len(argv) else ""
        elif a in _TIMM_FLAG_OPTS:
            opts[a] = True
        i += 1
    precision = opts.get("--precision", "float32")
    if opts.get("--amp"):  # timm: --amp overrides --precision
        dtype = opts.get("--amp-dtype", "float16")
        precision = "amp" if dtype == "float16" else f"amp_{dtype}"
    return {
        "batch_size": int(opts.get("--batch-size", opts.get("-b", 256))),
        "img_size": int(opts["--img-size"]) if "--img-size" in opts else None,
        "precision": precision,
        "channels_last": bool(opts.get("--channels-last")),
        "compile": opts.get("--torchcompile"),
        "warmup": int(opts.get("--num-warm-iter", 10)),
        "iters": int(opts.get("--num-bench-iter", 40)),
        "device": opts.get("--device", "cuda"),
        "other": sorted(
            k
            for k in ("--torchscript", "--aot-autograd", "--grad-checkpointing", "--reparam", "--fast-norm")
            if opts.get(k)
        ),
    }


def expected_settings(batch_size: int, img_size: int, cfg: Any) -> dict[str, Any]:
    """What :func:`argv_settings` must read for a like-for-like run."""
    return {
        "batch_size": batch_size,
        "img_size": img_size,
        "precision": TIMM_PRECISION[cfg.precision],
        "channels_last": cfg.channels_last,
        "compile": "inductor" if cfg.compile else None,
        "warmup": cfg.warmup,
        "iters": cfg.iters,
        "device": cfg.device,
        "other": [],
    }


def settings_differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """'name: zoo X, timm Y' for every setting in ``ours`` that ``theirs`` holds differently."""
    return [f"{k}: zoo {ours[k]!r}, timm {theirs.get(k)!r}" for k in ours if theirs.get(k) != ours[k]]


def check_comparable(argv: Sequence[str], batch_size: int, img_size: int, cfg: Any) -> None:
    """Refuse (ConfigError) a timm command line whose settings differ from zoo's."""
    diffs = settings_differences(expected_settings(batch_size, img_size, cfg), argv_settings(argv))
    if diffs:
        raise ConfigError(
            "refusing to compare with timm's benchmark.py: the settings differ ("
            + "; ".join(diffs)
            + "). Fix: give zoo the same setting (e.g. --compile for "
            "--torchcompile) or drop it from --timm-args."
        )


def reported_differences(zoo_row: dict[str, Any], timm_result: dict[str, Any], phases: Sequence[str]) -> list[str]:
    """Batch and input size as each side reports having used them (either may have halved the batch
    after an out-of-memory): a run pair that differs here is not compared."""
    diffs = []
    for phase in phases:
        for what in ("batch_size", "img_size"):
            ours, theirs = zoo_row.get(f"{phase}_{what}"), timm_result.get(f"{phase}_{what}")
            if ours != theirs:
                diffs.append(f"{phase}_{what}: zoo {ours}, timm {theirs}")
    return diffs


def parse_timm_output(stdout: str, stderr: str = "") -> dict[str, Any]:
    """The JSON that timm's benchmark.py prints after its ``--result`` line (with ``error`` if none)."""
    if TIMM_RESULT_MARKER not in stdout:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        return {"error": f"timm benchmark.py printed no result: {tail}"}
    result = json.loads(stdout.split(TIMM_RESULT_MARKER, 1)[1])
    return result if isinstance(result, dict) else {"error": f"unexpected timm result {result!r}"}


def run_timm_once(
    script: Path, digest: str, argv: Sequence[str], env: dict[str, str], timeout_s: float, expected: str | None = None
) -> dict[str, Any]:
    """One fresh process of timm's script, unchanged: ``python SCRIPT ARGV``. The hash is checked again
    right before the start, so the file that ran is the file recorded."""
    if sha256_of(script) != digest or digest != (expected or TIMM_SCRIPT_SHA256):
        raise ConfigError(f"{script} changed during the benchmark (sha256 no longer {digest}); refusing it.")
    try:
        proc = subprocess.run(
            [sys.executable, str(script), *argv], capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timm benchmark.py timed out after {timeout_s:.0f} s"}
    return parse_timm_output(proc.stdout, proc.stderr)
