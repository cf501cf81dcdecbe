"""The GPU check's CPU fallback (``--quick``): the script a GPU machine will run works end to end,
and its JSON holds every figure (generation, eval against lm-eval, one training step)."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_gpu_check_quick_runs_end_to_end_and_reports_every_figure(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check  # in this process: torch, transformers and lm-eval are imported once

    out = tmp_path / "gpu_check.json"
    gpu_check.main(["--quick", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["device"] == "cpu (fallback)" and report["dtype"] == "float32"
    gen, ev, step = report["generation"], report["eval"], report["train_step"]
    for side in ("raw_generate", "teacherlm_hf_engine"):
        assert gen[side]["tokens_per_s"] > 0 and len(gen[side]["runs_s"]) == 1
    # min_new_tokens: both sides decode the same tokens, so the ratio compares like with like
    assert gen["tokens"] == gen["requests"] * gen["new_tokens"] and gen["speed_ratio"] > 0
    assert ev["items"] == 24 and "note" not in ev  # lm-eval is installed here: its side ran
    assert ev["teacherlm_hf_engine"]["items_per_s"] > 0 and ev["lm_eval_hf"]["items_per_s"] > 0
    assert ev["speed_ratio"] > 0
    assert ev["same_predictions"] is True and ev["max_abs_loglikelihood_diff"] < 1e-4
    assert step["config"] == "student_tiny" and step["step_s"] > 0 and step["tokens_per_s"] > 0
    assert len(step["runs_s"]) == 2  # one warm-up step, one timed
    assert report["seconds"] > 0
