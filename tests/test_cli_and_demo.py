import json
import subprocess
import sys

import pytest

from teacherlm_core.evaluate import EvalReport


def cli(*args, timeout=600, **kw):
    return subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


@pytest.mark.parametrize(
    "command", [[], ["eval"], ["tiny-model"], ["demo"], ["data"], ["data", "build"], ["data", "import"]]
)
def test_every_command_explains_itself(command):
    res = cli(*command, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout and len(res.stdout.splitlines()) > 5


def test_version():
    from teacherlm_core import __version__

    assert cli("--version").stdout.strip() == f"teacherlm {__version__}"


def test_tiny_model_is_deterministic_and_loads(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from teacherlm_core.tiny import build_tiny_model

    a, b, c = (build_tiny_model(tmp_path / n, seed=s) for n, s in (("a", 0), ("b", 0), ("c", 1)))
    wa, wb, wc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert any((wa[k] != wc[k]).any() for k in wa)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert not list(a.glob("*.bin"))  # safetensors only
    tok = AutoTokenizer.from_pretrained(a)
    model = AutoModelForCausalLM.from_pretrained(a)
    assert model.config.vocab_size == len(tok)
    assert (
        tok.decode(tok("Q: caf\u00e9 (A) 42", add_special_tokens=False)["input_ids"]) == "Q: caf\u00e9 (A) 42"
    )


@pytest.mark.integration
def test_demo_runs_end_to_end_with_its_report(tmp_path):
    import mlflow

    res = cli("demo", "--workdir", str(tmp_path / "w"), "--per-task", "12", "--engine", "hf")
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (tmp_path / "w").glob("demo-*")
    summary = json.loads((run / "summary.json").read_text())
    assert (
        summary["records"]["in"]
        == summary["records"]["out"] + summary["records"]["quarantined"] + summary["records"]["duplicates"]
    )
    report = EvalReport.model_validate_json((run / "eval" / "teacher-base.json").read_text())
    assert report.overall.n == sum(a.n for a in report.tasks.values()) > 0
    assert (run / "report" / "accuracy.png").stat().st_size > 10_000
    assert "| **overall** |" in (run / "report" / "report.md").read_text()
    assert "zero-shot accuracy of teacher-base" in res.stderr
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}")
    parent = client.get_run(summary["mlflow_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == ["data", "eval", "tiny-model"]
