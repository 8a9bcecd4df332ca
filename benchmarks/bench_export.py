"""onnxruntime vs PyTorch eager on the CPU: latency at batch 1 and images/s at batch 32, for the quickstart model
and ResNet-50, each exported with `zoo.export.export_onnx` (parity-checked) and timed side by side.

    python benchmarks/bench_export.py                  # -> benchmarks/results/export_onnx_cpu-<N>core.csv and .md

Models: the quickstart's EfficientNet-Lite0 (real ImageNet weights from the pip package, a fresh 10-class head,
64 px as recipes/quickstart.yaml) and timm's resnet50 from random initialisation at 224 px (the speed does not
depend on the weights). Both runtimes get the same number of threads (the machine's cores); each figure is the
median of --runs timed runs after warm-up, the two runtimes alternating run by run so that a change in machine
load hits both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--iters", type=int, default=5, help="batch-1 forwards per timed run (default: 5)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both runtimes (default: the machine's cores); on a shared, oversubscribed "
        "machine 1 avoids OpenMP barrier spinning that hits PyTorch harder than onnxruntime",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    import zoo
    from zoo.bench.results import write_csv, write_markdown
    from zoo.env import cpu_cores, device_name, load_average, run_metadata
    from zoo.export import _session, export_onnx

    threads = args.threads or cpu_cores()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    quick = zoo.create_model("pypi:efficientnet_lite0")
    quick.reset_classifier(10, label_names=[str(i) for i in range(10)])
    quick.data_config["input_size"] = (3, 64, 64)
    r50 = zoo.create_model("timm:resnet50", pretrained=False)
    load_before = load_average(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in (
            ("quickstart (pypi:efficientnet_lite0, 64 px, 10 classes)", quick),
            ("timm:resnet50 (random init, 224 px)", r50),
        ):
            model.eval()
            path, report = export_onnx(model, out=Path(tmp) / "m.onnx", dynamic_batch=True)
            session = _session(path, threads=threads)
            size = model.data_config["input_size"]
            x1, x32 = torch.randn(1, *size), torch.randn(32, *size)

            def run_torch(x: torch.Tensor, n: int, model=model) -> float:
                with torch.no_grad():
                    start = time.perf_counter()
                    for _ in range(n):
                        model(x)
                    return time.perf_counter() - start

            def run_ort(x: torch.Tensor, n: int, session=session) -> float:
                a = x.numpy()
                start = time.perf_counter()
                for _ in range(n):
                    session.run(["logits"], {"pixel_values": a})
                return time.perf_counter() - start

            timings: dict[str, list[float]] = {k: [] for k in ("pt1", "ort1", "pt32", "ort32")}
            for fn, x in ((run_torch, x1), (run_ort, x1), (run_torch, x32), (run_ort, x32)):
                fn(x, 2)  # warm-up
            for _ in range(args.runs):
                timings["pt1"].append(run_torch(x1, args.iters) / args.iters)
                timings["ort1"].append(run_ort(x1, args.iters) / args.iters)
                timings["pt32"].append(run_torch(x32, 1))
                timings["ort32"].append(run_ort(x32, 1))
            med = {k: statistics.median(v) for k, v in timings.items()}
            row = {
                "model": label,
                "params_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 2),
                "input_size": size[-1],
                "pytorch_b1_ms": round(med["pt1"] * 1e3, 2),
                "onnxruntime_b1_ms": round(med["ort1"] * 1e3, 2),
                "pytorch_b32_images_per_sec": round(32 / med["pt32"], 1),
                "onnxruntime_b32_images_per_sec": round(32 / med["ort32"], 1),
                "b1_speedup": round(med["pt1"] / med["ort1"], 2),
                "b32_speedup": round(med["pt32"] / med["ort32"], 2),
                "parity_max_abs_diff": float(f"{report['max_abs_diff']:.2e}"),
                "exporter": report["exporter"],
                "opset": report["opset"],
            }
            print(row, flush=True)
            rows.append(row)
            del session
    out = args.out or ROOT / "benchmarks" / "results" / f"export_onnx_cpu-{cpu_cores()}core_{threads}thread.csv"
    write_csv(rows, out)
    import onnxruntime

    meta = run_metadata(
        device=device_name("cpu"),
        threads=threads,
        onnxruntime=onnxruntime.__version__,
        command="python benchmarks/bench_export.py " + " ".join(argv or sys.argv[1:]),
        runs=args.runs,
        load_average_before=load_before,
        load_average_after=load_average(1),
    )
    write_markdown(
        rows,
        out.with_suffix(".md"),
        title="onnxruntime vs PyTorch eager, CPU",
        meta=meta,
        notes=[
            "medians of interleaved runs; CPU figures from a shared 2-core machine are for the ratio only",
            "speedup = PyTorch time / onnxruntime time (above 1: onnxruntime is faster)",
        ],
    )
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
