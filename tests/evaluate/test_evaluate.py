import json
import random
import shutil
import subprocess
import sys

import pytest

from teacherlm_core.engines.hf import HFEngine
from teacherlm_core.evaluate import EvalReport, evaluate, load_eval_samples
from teacherlm_core.prompts import rank_candidates, rank_context
from teacherlm_core.records import write_jsonl

WORDS = ["apple", "river", "stone", "cloud", "seven", "green", "teacher", "train", "winter", "bread"]


def make_mc(path, n=24, seed=0):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = 2 + i % 4  # 2..5 choices
        choices = rng.sample(WORDS, k)
        rows.append(
            {
                "id": f"q{i}",
                "task": f"task{i % 3}",
                "question": f"Which word is {rng.choice(WORDS)}?",
                "choices": choices,
                "answer": rng.choice(choices),
            }
        )
    write_jsonl(path, rows)
    return path


def lm_eval_loglikelihoods(model_path, samples, batch_size=8):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model_path, batch_size=batch_size, device="cpu", dtype="float32")
    reqs = [
        Instance(request_type="loglikelihood", doc={}, arguments=(rank_context(s), c), idx=i)
        for s in samples
        for i, c in enumerate(rank_candidates(s))
    ]
    return [ll for ll, _ in lm.loglikelihood(reqs, disable_tqdm=True)]


@pytest.mark.integration
def test_matches_lm_evaluation_harness(tiny_model, tmp_path):
    data = make_mc(tmp_path / "mc.jsonl")
    samples = load_eval_samples(str(data))
    report = evaluate(HFEngine(tiny_model, batch_size=5), samples, str(tmp_path / "r.json"))
    ref = lm_eval_loglikelihoods(tiny_model, samples)
    ours = [x for s in report.samples for x in s.choice_loglikelihoods]
    assert ours == pytest.approx(ref, abs=1e-4)
    pos = 0
    for s, scored in zip(samples, report.samples, strict=True):
        lls = ref[pos : pos + len(s.choices)]
        pos += len(s.choices)
        assert scored.prediction == max(range(len(lls)), key=lambda i: (lls[i], -i))
        assert scored.correct == (scored.prediction == s.answer_index)
    written = EvalReport.model_validate_json((tmp_path / "r.json").read_text())
    assert written.overall.n == 24 and set(written.tasks) == {"task0", "task1", "task2"}
    assert written.overall.accuracy == pytest.approx(sum(s.correct for s in report.samples) / 24)


def tokenizer_variant(tiny_model, out, kind):
    """A copy of the tiny model whose tokenizer adds a BOS (as Llama-2's does), or has ``(A`` as
    one token (the letter merges with the context's last token), or lacks pad and EOS tokens."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(tiny_model, out)
    spec = json.loads((out / "tokenizer.json").read_text())
    if kind == "bos":
        bos = {"SpecialToken": {"id": "<s>", "type_id": 0}}
        spec["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {
                "<s>": {"id": "<s>", "ids": [spec["model"]["vocab"]["<s>"]], "tokens": ["<s>"]}
            },
        }
    elif kind == "merged-letter":
        new_id = len(spec["model"]["vocab"])
        spec["added_tokens"].append({"id": new_id, "content": " (A", "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": False})  # fmt: skip
        model = AutoModelForCausalLM.from_pretrained(out)
        model.resize_token_embeddings(new_id + 1, mean_resizing=False)
        model.save_pretrained(out)
    else:
        config = json.loads((out / "tokenizer_config.json").read_text())
        config.update(eos_token=None, pad_token=None)
        (out / "tokenizer_config.json").write_text(json.dumps(config))
    (out / "tokenizer.json").write_text(json.dumps(spec))
    return str(out)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["bos", "merged-letter"])
def test_matches_lm_evaluation_harness_on_bos_and_merging_tokenizers(tiny_model, tmp_path, kind):
    model = tokenizer_variant(tiny_model, tmp_path / kind, kind)
    samples = load_eval_samples(str(make_mc(tmp_path / "mc.jsonl", n=12)))
    report = evaluate(HFEngine(model, batch_size=5), samples)
    ref = lm_eval_loglikelihoods(model, samples)
    assert [x for s in report.samples for x in s.choice_loglikelihoods] == pytest.approx(ref, abs=1e-4)


def test_long_context_is_cut_before_tokenising_and_scores_as_the_whole(tiny_model):
    from transformers import AutoTokenizer

    from teacherlm_core.engines import encode_pair

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    seen = []
    real = type(tokenizer).__call__

    class Recording(type(tokenizer)):
        def __call__(self, text, **kwargs):
            seen.append(len(text))
            return real(self, text, **kwargs)

    tokenizer.__class__ = Recording
    rng = random.Random(0)
    context = (
        "Q: " + " ".join(rng.choice(WORDS) for _ in range(10_000)) + " (A) apple (B) river A: The answer is ("
    )
    full = encode_pair(tokenizer, context, "B")  # as lm-eval: the whole text, then the window's tail
    whole = (full.context + full.continuation)[-256:][:-1]
    seen.clear()
    cut = encode_pair(tokenizer, context, "B", max_length=255)
    assert cut.inputs == whole and cut.continuation == full.continuation
    assert max(seen) < len(context) / 4  # never the whole 63k characters


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args], capture_output=True, text=True, env=env, timeout=240
    )


@pytest.mark.parametrize("kind", ["no-tokenizer", "no-pad-no-eos"])
def test_unusable_tokenizer_is_refused_before_the_weights_load(tiny_model, tmp_path, monkeypatch, kind):
    from transformers import AutoModelForCausalLM

    from teacherlm_core.engines import get_engine
    from teacherlm_core.errors import EngineError

    if kind == "no-tokenizer":
        model = tmp_path / kind
        shutil.copytree(tiny_model, model, ignore=shutil.ignore_patterns("tokenizer*"))
    else:
        model = tokenizer_variant(tiny_model, tmp_path / kind, kind)
    monkeypatch.setattr(
        AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded")
    )
    with pytest.raises(EngineError, match="tokenizer") as err:  # the CLI: exit 2, this one line
        get_engine("hf", str(model))
    assert str(model) in str(err.value)


@pytest.mark.integration
def test_cli_eval_with_vllm_to_s3(tiny_model, tmp_path, s3_env):
    import os

    data = make_mc(tmp_path / "mc.jsonl", n=12)
    out = f"s3://{s3_env.bucket}/eval-test/tiny.json"
    res = run_cli(
        "eval",
        "--model",
        tiny_model,
        "--data",
        str(data),
        "--output",
        out,
        "--engine",
        "vllm",
        env=os.environ.copy(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    from teacherlm_core import storage

    report = json.loads(storage.read_text(out))
    assert set(report) == {"model", "tasks", "overall", "samples", "cost"}
    assert report["overall"]["n"] == 12
    assert set(report["samples"][0]) == {
        "id",
        "task",
        "choice_loglikelihoods",
        "prediction",
        "correct",
        "gold",
    }
    assert "overall" in res.stderr  # the summary table


GOOD = {"id": "a", "task": "t", "question": "q?", "choices": ["x", "y"], "answer": "x"}


def bad_inputs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cases = {
        "malformed.jsonl": (b'{"id": "a",\n', 1, None),
        "missing.jsonl": (json.dumps({k: v for k, v in GOOD.items() if k != "task"}).encode(), 1, "task"),
        "mistyped.jsonl": (json.dumps(GOOD | {"choices": [1, 2]}).encode(), 1, "choices.0"),
        "answer.jsonl": (json.dumps(GOOD | {"answer": "z"}).encode(), 1, "answer"),
        "dup.jsonl": ((json.dumps(GOOD) + "\n" + json.dumps(GOOD)).encode(), 2, "id"),
        "latin1.jsonl": (json.dumps(GOOD).encode() + b"\n" + b'{"id": "b\xff"}', 2, None),
        "empty.jsonl": (b"", None, None),
        "open.jsonl": (json.dumps({k: v for k, v in GOOD.items() if k != "choices"}).encode(), 1, "choices"),
    }
    for name, (content, _, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    pq.write_table(pa.table({"id": ["a"], "text": ["q"]}), tmp_path / "wrong.parquet")
    cases["wrong.parquet"] = (None, None, "task")
    return cases


@pytest.mark.parametrize(
    "name",
    [
        "malformed.jsonl",
        "missing.jsonl",
        "mistyped.jsonl",
        "answer.jsonl",
        "dup.jsonl",
        "latin1.jsonl",
        "empty.jsonl",
        "open.jsonl",
        "wrong.parquet",
    ],
)
def test_bad_input_exit_2_with_one_line(tmp_path, name):
    case = bad_inputs(tmp_path)[name]
    path = tmp_path / name
    res = run_cli(
        "eval", "--model", "never-loaded", "--data", str(path), "--output", str(tmp_path / "o.json")
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    _, line, field = case
    where = f"{path}:{line}: " if line else f"{path}: "
    assert lines[0].startswith(f"error: {where}")
    if field:
        assert f"field '{field}'" in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    res = run_cli(
        "--debug",
        "eval",
        "--model",
        "m",
        "--data",
        str(tmp_path / "e.jsonl"),
        "--output",
        str(tmp_path / "o"),
    )
    assert res.returncode != 0 and "Traceback" in res.stderr and "DataError" in res.stderr
