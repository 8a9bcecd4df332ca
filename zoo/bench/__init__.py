"""Benchmarks. The backbone table: ``measure`` (settings and the measurement of one model in one process),
``worker`` (that process, started fresh per run), ``runs`` (the interleaved zoo/timm runs and their summary),
``timm_anchor`` (timm's own benchmark.py, hash-checked and run unchanged) and ``results`` (CSV, Markdown and
plot files, shared by every benchmark). Also the transfer table (``transfer``) and the side-by-side baselines
(``side_by_side``, ``baselines``). Where a result ran (cores, device, versions, memory) is ``zoo.env``.

Nothing is imported here, so ``python -m zoo.bench.worker`` starts clean in each process.
"""
