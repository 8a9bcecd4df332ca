"""`zoo serve MODEL [--port 7860] [--host 127.0.0.1]`: a local prediction page and JSON API."""

from __future__ import annotations

import argparse

from zoo.cli.hub import MODEL_HELP


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web page that classifies dropped images (and a JSON API)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve MODEL on a local web page: drop or choose one or several images and see the top-k "
        "labels with their probabilities, beside the model card's facts. POST /api/predict answers "
        "with the same top-k as JSON. Preprocessing is zoo predict's (the model's own data config). "
        "Needs the serve extra: pip install 'zoo-transfer[serve]'.",
        epilog="examples:\n  zoo serve runs/quickstart-finetune/model\n"
        "  zoo serve user/digits-lite0 --port 8080 --host 0.0.0.0\n"
        "  curl -F image=@digit.png http://127.0.0.1:7860/api/predict",
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for the network)",
    )
    p.add_argument("--top-k", "-k", type=int, default=5, help="labels per image (default: 5)")
    p.add_argument("--revision", help="branch, tag or commit when MODEL is a Hub repo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zoo.serve import serve  # loads torch, Starlette and uvicorn: only when the command runs

    serve(args.model, host=args.host, port=args.port, top_k=args.top_k, revision=args.revision)
    return 0
