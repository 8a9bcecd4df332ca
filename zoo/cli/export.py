"""`zoo export MODEL --format onnx`: a deployable file, checked against PyTorch before it is written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  zoo export runs/quickstart-finetune/model --format onnx           writes runs/quickstart-finetune/model/model.onnx
  zoo export runs/quickstart-finetune/model --fixed-batch --opset 18   batch fixed at 1
  zoo export timm:resnet50.a1_in1k --out resnet50.onnx
  zoo predict runs/quickstart-finetune/model/model.onnx digit.png   run it with onnxruntime, same preprocessing

The file holds the label names and the preprocessing (input_size, mean, std, interpolation, crop_pct) in its
metadata. Before it is written, onnxruntime and PyTorch classify the same real photos (scikit-learn's sample
images and crops of them): a max abs logit difference above 1e-4 or another top-1 and nothing is written.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write an ONNX file that onnxruntime runs at parity with PyTorch",
        description="Export MODEL to ONNX with its label names and preprocessing, and check it "
        "against PyTorch with onnxruntime before writing it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="an artifact folder, a Hub repo id, or a registry name")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="only onnx (default: %(default)s)")
    p.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX opset (default: %(default)s)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument(
        "--fixed-batch",
        dest="dynamic_batch",
        action="store_false",
        help="fix the batch at 1 (default: any batch size, checked at batch 1 and a larger one)",
    )
    batch.add_argument(
        "--dynamic-batch",
        dest="dynamic_batch",
        action="store_true",
        help="any batch size (the default; kept for older scripts)",
    )
    p.set_defaults(dynamic_batch=True)
    p.add_argument("--out", type=Path, help="output file (default: MODEL/model.onnx for an artifact folder)")
    p.add_argument(
        "--images",
        nargs="+",
        metavar="IMAGE",
        help="photos for the parity check (default: scikit-learn's sample photos)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zoo.export import ExportError, export_onnx

    if not 7 <= args.opset <= 23:
        print(f"zoo: error: --opset {args.opset} is outside what torch.onnx writes (7-23); try 17", file=sys.stderr)
        return 2
    try:
        path, report = export_onnx(
            args.model,
            out=args.out,
            opset=args.opset,
            dynamic_batch=args.dynamic_batch,
            images=[Path(p) for p in args.images] if args.images else None,
        )
    except ExportError as exc:
        print(f"zoo: export failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {report['exporter']}, opset {report['opset']}): "
        f"batch {'dynamic' if args.dynamic_batch else 'fixed at 1'}; onnxruntime vs PyTorch on {report['images']} "
        f"real images at batch {' and '.join(map(str, report['batch_sizes']))}, max abs logit difference "
        f"{report['max_abs_diff']:.2e}, same top-1: {report['same_top1']}"
    )
    return 0
