"""Benchmarks: the backbone table (``zoo.bench.backbones``: one measured process; ``zoo.bench.runs``: the
interleaved runs and their summary; ``zoo.bench.timm_anchor``: timm's own benchmark.py, hash-checked and
run unchanged), the side-by-side baselines, and the shared result writers (``zoo.bench.report``).

Nothing is imported here, so ``python -m zoo.bench.backbones --worker`` starts clean in each process.
"""
