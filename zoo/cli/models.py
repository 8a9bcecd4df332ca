"""`zoo models` and `zoo info`: browse the registry and look inside one model."""

from __future__ import annotations

import argparse
import json
from typing import Any

from zoo.cli.errors import non_negative_int
from zoo.cli.output import print_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list backbones from every source",
        description="List backbones. PATTERN is an fnmatch pattern over model ids ('resnet5*', '*vit*'), "
        "optionally with a source prefix ('tv:resnet*').",
    )
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'resnet5*' or 'hf:*vit*'")
    p.add_argument("--source", "-s", help="only this source: timm, hf, tv, pypi or a plugin's")
    p.add_argument("--pretrained", action="store_true", help="only models with pretrained weights")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_models)

    q = sub.add_parser(
        "info",
        help="features, preprocessing and layer groups of one model",
        description="Build NAME (random weights, nothing is downloaded) and show num_features, the data "
        "config its preprocessing comes from, and the layer groups freezing and "
        "layer-wise learning rates work on.",
    )
    q.add_argument("name", help="model name, e.g. timm:resnet18, tv:resnet18, hf:google/vit-base-patch16-224")
    q.add_argument(
        "--num-classes", type=non_negative_int, default=None, help="size of the head (default: the source's)"
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of text")
    q.set_defaults(func=run_info)


def run_models(args: argparse.Namespace) -> int:
    from zoo.registry import list_models

    rows = list_models(args.pattern, source=args.source, pretrained=args.pretrained)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    print_table(
        ["name", "params (M)", "resolution", "pretrained tag", "license"],
        [[r.name, _fmt(r.param_count), _fmt(r.resolution), r.pretrained_tag or "-", r.license or "-"] for r in rows],
        title=f"{len(rows)} models",
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from zoo.registry import create_model

    info = create_model(args.name, num_classes=args.num_classes, pretrained=False).describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['name']}  ({info['source']})")
    print(f"  params        {info['param_count'] / 1e6:.2f} M")
    print(f"  num_features  {info['num_features']}")
    print(f"  num_classes   {info['num_classes']}")
    for key, value in info["data_config"].items():
        print(f"  {key:<13} {value}")
    print_table(
        ["group", "params"],
        [[g["name"], f"{g['num_params']:,}"] for g in info["layer_groups"]],
        title="layer groups (stem -> stages -> head)",
    )
    return 0


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)
