"""The README's main job: the offline quickstart shows transfer working (real weights, real digits)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.cli.train import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_transfer_beats_scratch(tmp_path, capsys):
    assert main([str(ROOT / "recipes" / "quickstart.yaml"), f"output.dir={tmp_path}"]) == 0
    runs = {s["strategy"]: s for s in json.loads((tmp_path / "quickstart-comparison.json").read_text())}
    assert set(runs) == {"linear_probe", "finetune", "scratch"}
    assert all(s["eval_split"] == "test" for s in runs.values())
    assert runs["linear_probe"]["final_top1"] > runs["scratch"]["final_top1"]
    assert runs["finetune"]["final_top1"] > runs["scratch"]["final_top1"]
    assert runs["finetune"]["final_top1"] > 0.9
    out = capsys.readouterr().out
    assert "quickstart: pypi:efficientnet_lite0 on sklearn:digits" in out and "test top-1" in out
    assert (tmp_path / "quickstart-comparison.md").is_file()
    for run in runs.values():  # each run says how it started and where its model is
        assert f"[{run['name']}] starting fresh in" in out and f"model: {run['model_dir']}" in out
        assert (Path(run["run_dir"]) / "report.html").is_file()
    assert (tmp_path / "quickstart-comparison.html").is_file()
