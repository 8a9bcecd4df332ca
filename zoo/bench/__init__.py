"""Benchmarks: the backbone table (``zoo.bench.backbones``) and the shared result writers
(``zoo.bench.report``: CSV, Markdown, scatter plot).

Nothing is imported here, so ``python -m zoo.bench.backbones --worker`` starts clean in each process.
"""
