#!/usr/bin/env python3
"""Fetch timm's own benchmark.py (not shipped in the timm pip package) for `zoo bench backbones --timm-compare`.

It is downloaded at a pinned upstream commit and written unchanged below a header that records its
origin and licence (Apache-2.0). zoo's runner adds the `--device` option this revision lacks from the
outside (zoo.bench.backbones.run_timm_script), so the file itself is never patched.

    python benchmarks/third_party/fetch_timm_benchmark.py            # -> benchmarks/third_party/timm_benchmark.py
    python benchmarks/third_party/fetch_timm_benchmark.py --commit main
"""
from __future__ import annotations

import argparse
import sys
import urllib.request
from pathlib import Path

REPO = "huggingface/pytorch-image-models"
COMMIT = "066e490605ba1d3666861096163246c885603469"  # the revision zoo's comparison was checked against
HEADER = """\
# ----------------------------------------------------------------------------------------------------
# timm's own benchmark script, kept UNCHANGED below this header.
#   source : https://github.com/{repo}/blob/{commit}/benchmark.py
#   author : Ross Wightman and the timm contributors
#   licence: Apache-2.0 (https://github.com/{repo}/blob/main/LICENSE)
# It is not part of the timm pip package. This revision has no --device option (it always builds on
# 'cuda'); zoo.bench.backbones.run_timm_script adds that option to its parser from outside
# instead of patching this file. It runs against timm 1.0.31 as is.
# Fetch it with: python benchmarks/third_party/fetch_timm_benchmark.py
# ----------------------------------------------------------------------------------------------------
"""


def with_header(source: str, commit: str) -> str:
    """The upstream text with the provenance header after its shebang line."""
    header = HEADER.format(repo=REPO, commit=commit)
    if source.startswith("#!"):
        first, rest = source.split("\n", 1)
        return f"{first}\n{header}{rest}"
    return header + source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default=COMMIT, help="upstream commit or branch (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("timm_benchmark.py"),
                        help="where to write it (default: %(default)s)")
    args = parser.parse_args(argv)
    url = f"https://raw.githubusercontent.com/{REPO}/{args.commit}/benchmark.py"
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - fixed https URL
            source = resp.read().decode("utf-8")
    except OSError as exc:
        print(f"could not download {url}: {exc}. Fix: run this on a machine with network access, or copy "
              f"benchmark.py from a pytorch-image-models checkout to {args.out}.", file=sys.stderr)
        return 1
    args.out.write_text(with_header(source, args.commit))
    print(f"wrote {args.out} ({len(source):,} characters from {url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
