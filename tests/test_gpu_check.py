"""The GPU check's CPU fallback: the script a GPU machine will run works end to end, every figure present."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_gpu_check_runs_end_to_end_on_the_cpu_fallback(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check  # in this process: torch, transformers and lm-eval are imported once

    out = tmp_path / "gpu_check.json"
    gpu_check.main(["--cpu-fallback", "--repeats", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["device"] == "cpu (fallback)"
    gen, ev, step = report["generation"], report["eval"], report["train_step"]
    assert gen["raw_generate"]["tokens_per_s"] > 0 and gen["teacherlm_hf_engine"]["tokens_per_s"] > 0
    assert ev["teacherlm_hf_engine"]["items_per_s"] > 0
    assert ev["same_predictions"] and ev["max_abs_loglikelihood_diff"] < 1e-4  # lm-eval is installed here
    assert step["step_s"] > 0 and len(step["runs_s"]) == 3
