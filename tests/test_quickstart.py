"""The README's main job: the offline quickstart shows transfer working (real weights, real digits)."""
from __future__ import annotations

from pathlib import Path

import pytest

from zoo.train.run import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_transfer_beats_scratch(tmp_path, capsys):
    runs = {s.strategy: s for s in train(ROOT / "recipes" / "quickstart.yaml", [f"output.dir={tmp_path}"])}
    assert set(runs) == {"linear_probe", "finetune", "scratch"}
    assert all(s.eval_split == "test" for s in runs.values())
    assert runs["linear_probe"].final_top1 > runs["scratch"].final_top1
    assert runs["finetune"].final_top1 > runs["scratch"].final_top1
    assert runs["finetune"].final_top1 > 0.9
    out = capsys.readouterr().out
    assert "quickstart: pypi:efficientnet_lite0 on sklearn:digits" in out and "test top-1" in out
    assert (tmp_path / "quickstart-comparison.md").is_file()
