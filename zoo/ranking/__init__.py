"""``zoo rank``: which backbone to fine-tune on these images, scored from frozen features before any fine-tune.

``zoo.ranking.rank`` runs it (candidates, the feature cache shared with the linear probe, the results files);
``zoo.ranking.scores`` holds the three scores (kNN, a cross-validated linear probe, LogME). The package is not
called ``zoo.rank`` because that name is the public function ``zoo.rank(...)``. It sits above ``zoo.bench`` in
the layers: it measures with ``zoo.bench.measure`` and writes with ``zoo.bench.results``.
"""
