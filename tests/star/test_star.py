"""STaR rounds: answer parsing, the kept / rationalised / failed paths with a scripted fake teacher,
retraining between rounds through the hook, and a real CLI run with the tiny random model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teacherlm_core.cli.data import app
from teacherlm_core.data import build_builtin
from teacherlm_core.data.manifest import sha256_file
from teacherlm_core.engines import Generation, GenerationParams, request_seed
from teacherlm_core.errors import ConfigError, TeacherLMError
from teacherlm_core.prompts import letter, question_text
from teacherlm_core.records import load_samples
from teacherlm_core.schema import SCHEMA_VERSION, AugmentedSample, Sample
from teacherlm_core.star import (
    FAILED,
    KEPT,
    StarConfig,
    generate_prompt,
    judge,
    parse_answer,
    rationalize_prompt,
    run_star,
    subprocess_train_fn,
)

pytestmark = pytest.mark.timeout(30)

TASKS = ["claims", "arithmetic", "ordering"]  # 4 train items each at per_task=6
_SUFFIX = re.compile(r" A: (?:The answer is \(([A-Z])\)\. )?Let's think step by step\.$")


# -- a scripted teacher --------------------------------------------------------------------------
class FakeTeacher:
    """Implements the Engine protocol from a script ``(sample, kind, attempt, hint) -> text``.

    It finds the sample from the question in the prompt, so it sees exactly what a real teacher
    sees; ``attempt`` counts how often it was asked for that sample and kind.
    """

    name = "fake"

    def __init__(self, samples: list[Sample], script, model: str = "fake-teacher"):
        self.by_question = {question_text(s): s for s in samples}
        self.script, self.model = script, model
        self.calls: list[tuple[list[str], list[GenerationParams]]] = []
        self.seen: Counter[tuple[str, str]] = Counter()

    def generate(self, prompts, params, progress=None) -> list[Generation]:
        plist = list(params) if isinstance(params, list) else [params] * len(prompts)
        self.calls.append((list(prompts), plist))
        out = []
        for prompt in prompts:
            m = _SUFFIX.search(prompt)
            assert m, prompt
            sample = self.by_question[prompt[: m.start()]]
            kind = "rationalize" if m.group(1) else "generate"
            self.seen[sample.id, kind] += 1
            text = self.script(sample, kind, self.seen[sample.id, kind], m.group(1))
            out.append(Generation(text=text, num_tokens=len(text.split()), finish_reason="stop"))
        if progress:
            progress(len(prompts))
        return out

    def loglikelihood(self, requests):  # not used by STaR
        raise NotImplementedError


def _wrong(sample: Sample) -> str:
    return next(c for c in sample.choices if c != sample.answer)


def scripted(samples: list[Sample]):
    """Position in the file (i) decides the path an item takes:

    i % 4 == 0: right at once, the answer written as text, "(L)" or a bare "L"      -> generated, round 1
    i % 4 == 1: wrong; the hinted rationale concludes with the hint                 -> rationalized, round 1
    i % 4 == 2: wrong; hinted attempt 1 empty, attempt 2 fine (i == 6: right at
                its 2nd unhinted attempt)                                           -> round 2
    i % 4 == 3: no conclusion; hinted rationale without a conclusion (appended)     -> rationalized, round 1
                except i == 3: hinted empty, then a wrong conclusion, then empty    -> failed
    """
    pos = {s.id: i for i, s in enumerate(samples)}

    def script(sample: Sample, kind: str, attempt: int, hint: str | None) -> str:
        i = pos[sample.id]
        gold = letter(sample.answer_index)
        if kind == "generate":
            if i % 4 == 0:
                form = [sample.answer.upper(), f"({gold.lower()})", gold][i // 4 % 3]
                return f" I recall the facts and compare them. So the answer is {form}. Q: next one"
            if i == 6 and attempt == 2:
                return f"Let me redo the steps carefully. So the answer is {sample.answer}."
            if i % 4 == 3:
                return "I am not sure what to say here"
            return f"I guess quickly without checking. So the answer is {_wrong(sample)}."
        assert hint == gold  # the hint is the gold letter
        if i == 3:
            return ["", f"Some plausible reasoning here. So the answer is {_wrong(sample)}.", ""][attempt - 1]
        if i % 4 == 2 and attempt == 1:
            return ""
        if i % 4 == 3:
            return "First look at the facts. Then compare them with the claim"
        return f"Knowing it is ({hint}), the steps line up. So the answer is ({hint})."

    return script


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    build_builtin(out, TASKS, per_task=6, seed=0)
    return out


@pytest.fixture(scope="module")
def samples(data_dir) -> list[Sample]:
    return load_samples(data_dir / "train.jsonl")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(data_dir, out, samples, script, rounds=3, **kw):
    engine = FakeTeacher(samples, script)
    manifest = run_star(
        data_dir,
        out,
        "fake-teacher",
        config=StarConfig(rounds=rounds, seed=5),
        load_engine=lambda m: engine,
        **kw,
    )
    return manifest, engine


# -- parsing and judging -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "choices", "answer"),
    [
        ("So the answer is (B).", ["true", "false"], "false"),
        ("so THE ANSWER IS False.", ["true", "false"], "false"),
        ("The answer is B.", ["true", "false"], "false"),
        ("the answer is (b) false, clearly", ["true", "false"], "false"),
        ('The answer is: "true".', ["true", "false"], "true"),
        ("The answer is true. No wait, the answer is false.", ["true", "false"], "false"),  # the last one
        ("So the answer is 0.25.", ["0.2", "0.25", "2"], "0.25"),
        ("So the answer is 0.2.", ["0.2", "0.25", "2"], "0.2"),
        ("So the answer is bathroom cabinet.", ["bathroom", "bathroom cabinet"], "bathroom cabinet"),
        ("So the answer is 42 apples. Next", None, "42 apples"),
        ("So the answer is (C).", ["true", "false"], None),  # no such choice
        ("The answer is a mystery.", ["true", "false"], None),  # "a" is an article, not (A)
        ("no conclusion at all", ["true", "false"], None),
    ],
)
def test_parse_answer_accepts_the_usual_ways_of_concluding(text, choices, answer):
    found = parse_answer(text, choices)
    assert (found.answer if found else None) == answer


SAMPLE = Sample(
    id="s1",
    task="t",
    question="Is this claim true or false? Owls  fly.",
    choices=["true", "false"],
    answer="true",
)


@pytest.mark.parametrize(
    ("text", "hinted", "finish", "kept", "expect"),
    [
        (
            " Owls have wings. Wings let them fly. So the answer is (A). Q: next",
            False,
            "stop",
            True,
            "Owls have wings. Wings let them fly. So the answer is (A).",
        ),
        ("Owls have wings and fly. So the answer is false.", False, "stop", False, "concludes with 'false'"),
        ("Owls have wings and fly.", False, "stop", False, "no final answer"),
        ("Owls have wings. They", False, "length", False, "cut at max_new_tokens"),
        ("So the answer is true.", False, "stop", False, "fewer than 3 words"),
        ("Owls have wings and fly", True, "stop", True, "Owls have wings and fly. So the answer is true."),
        ("Owls have wings. They fl", True, "length", True, "Owls have wings. So the answer is true."),
        ("Owls have wings and", True, "length", False, "before one complete sentence"),
        ("  \n ", True, "stop", False, "empty output"),
        ("Q: Is this claim true or false? Owls fly.", True, "stop", False, "echoes the prompt"),
        ("The answer is (A). Let's think step by step. Owls fly.", True, "stop", False, "echoes the prompt"),
        ("Owls \x07have wi\ufffdngs. So the answer is true.", True, "stop", False, "garbled"),
        # Degenerate rationales an untuned teacher writes for the hinted prompt: nothing to learn.
        (
            "A: The answer is (A). A: The answer is (A). A: The answer is (A).",
            True,
            "stop",
            False,
            "generation loop",
        ),
        (
            "A: The answer is (A).",
            True,
            "stop",
            False,
            "fewer than 3 words of reasoning before the conclusion",
        ),
        ("Owls fly. So the answer is (A).", True, "stop", False, "copies of the question do not count"),
        ("Owls fly", True, "stop", False, "fewer than 3 words of reasoning"),
        ("Owls have wings. Owls have wings. So the answer is (A).", False, "stop", False, "generation loop"),
        (
            "Owls have wings so they fly. So the answer is (A). A: The answer is (A). The answer is (A).",
            True,
            "stop",
            False,
            "generation loop",
        ),
        (
            "The answer is (A). Owls have wings, and wings lift them. Therefore, the answer is (A).",
            True,
            "stop",
            True,
            "The answer is (A). Owls have wings, and wings lift them. Therefore, the answer is (A).",
        ),
    ],
)
def test_judge_keeps_only_well_formed_rationales(text, hinted, finish, kept, expect):
    v = judge(
        Generation(text=text, num_tokens=len(text.split()), finish_reason=finish), SAMPLE, hinted=hinted
    )
    assert v.kept is kept
    assert (v.rationale == expect) if kept else (expect in v.reason)
    assert v.appended is (kept and hinted and "answer is" not in text)


def test_prompts_are_the_papers_format():
    assert (
        generate_prompt(SAMPLE)
        == "Q: Is this claim true or false? Owls fly. (A) true (B) false A: Let's think step by step."
    )
    assert rationalize_prompt(SAMPLE) == (
        "Q: Is this claim true or false? Owls fly. (A) true (B) false A: The answer is (A). Let's think step by step."
    )


def test_config_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        StarConfig(rounds=0, max_new_tokens=0, top_p=0)
    assert len(err.value.problems) == 3


# -- runs with the fake teacher ------------------------------------------------------------------
def test_kept_rationalized_and_failed_paths_with_retries(data_dir, samples, tmp_path):
    out = tmp_path / "star"
    manifest, engine = _run(data_dir, out, samples, scripted(samples))

    assert manifest["rounds"] == [
        {"round": 1, "correct": 3, "rationalized": 5, "failed": 4},
        {"round": 2, "correct": 1, "rationalized": 2, "failed": 1},
        {"round": 3, "correct": 0, "rationalized": 0, "failed": 1},
    ]
    assert all(set(r) == {"round", "correct", "rationalized", "failed"} for r in manifest["rounds"])
    c = manifest["counts"]
    assert (c["in"], c["kept"], c["failed"], c["invalid"]) == (12, 11, 1, 0)
    assert c["in"] == c["kept"] + c["failed"] + c["invalid"]
    assert (c["generated"], c["rationalized"], c["conclusion_appended"]) == (4, 7, 2)
    assert sum(t["in"] for t in c["tasks"].values()) == 12

    # one generate call per phase with every pending prompt: 12 + 9, 4 + 3, 1 + 1
    assert [len(prompts) for prompts, _ in engine.calls] == [12, 9, 4, 3, 1, 1]
    seeds = [p.seed for _, params in engine.calls for p in params]
    assert len(set(seeds)) == len(seeds)
    first_prompts, first_params = engine.calls[0]
    assert first_prompts[0] == generate_prompt(samples[0])
    assert first_params[0].seed == request_seed(5, samples[0].id, 1, "generate")
    assert all("The answer is (" in p for p in engine.calls[1][0])

    kept = {r["id"]: r for r in _records(out / KEPT)}
    assert list(kept) == [s.id for i, s in enumerate(samples) if i != 3]  # input order
    expect = {
        0: (1, "generated"),
        1: (1, "rationalized"),
        2: (2, "rationalized"),
        6: (2, "generated"),
        7: (1, "rationalized"),
    }
    for i, (round_, source) in expect.items():
        rec = kept[samples[i].id]
        assert (rec["star_round"], rec["star_source"]) == (round_, source), i
        assert rec["star_teacher"] == "fake-teacher"
    assert kept[samples[0].id]["chain_of_thought"].endswith(f"So the answer is {samples[0].answer.upper()}.")
    assert kept[samples[7].id]["star_conclusion_appended"] is True
    assert kept[samples[7].id]["chain_of_thought"].endswith(f"claim. So the answer is {samples[7].answer}.")
    original = samples[1].to_record()
    for field in ("fundamentals", "common_mistakes", "template", "split", "teacher", "choices", "answer"):
        assert kept[samples[1].id][field] == original[field]  # every input field is kept
    for rec in kept.values():
        AugmentedSample.model_validate(rec)
        assert "Q:" not in rec["chain_of_thought"]

    (failed,) = _records(out / FAILED)
    assert failed["line"] == 4 and failed["field"] == "chain_of_thought"
    assert failed["reason"].startswith("no kept rationale after 3 round(s); last: generate: no final answer")
    assert "rationalize: empty output" in failed["reason"]
    attempts = failed["raw"]["star_attempts"]
    assert [(a["round"], a["kind"]) for a in attempts] == [
        (r, k) for r in (1, 2, 3) for k in ("generate", "rationalize")
    ]
    assert "concludes with" in attempts[3]["reason"]
    assert failed["raw"]["id"] == samples[3].id

    assert manifest["schema_version"] == SCHEMA_VERSION
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(out / name) and entry["path"] == name
    assert manifest["files"][KEPT]["records"] == 11 and manifest["files"][FAILED]["records"] == 1
    prov = manifest["provenance"]
    assert (prov["engine"], prov["seed"], prov["teacher"]["model"]) == ("fake", 5, "fake-teacher")
    assert prov["input"]["manifest_sha256"] == sha256_file(data_dir / "manifest.json")
    assert prov["input"]["sha256"] == sha256_file(data_dir / "train.jsonl")
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_rerun_gives_identical_files_and_manifest(data_dir, samples, tmp_path):
    first, _ = _run(data_dir, tmp_path / "a", samples, scripted(samples))
    again, _ = _run(data_dir, tmp_path / "b", samples, scripted(samples))
    assert again == first
    for name in first["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # a rerun into the same directory replaces everything
    third, _ = _run(data_dir, tmp_path / "a", samples, scripted(samples))
    assert third == first and len(_records(tmp_path / "a" / KEPT)) == 11


def test_a_teacher_that_writes_nothing_quarantines_everything_with_reasons(data_dir, samples, tmp_path):
    out = tmp_path / "star"
    manifest, engine = _run(data_dir, out, samples, lambda *a: "", rounds=2)
    assert manifest["rounds"] == [
        {"round": 1, "correct": 0, "rationalized": 0, "failed": 12},
        {"round": 2, "correct": 0, "rationalized": 0, "failed": 12},
    ]
    assert manifest["counts"]["in"] == 12 == manifest["counts"]["failed"]
    assert (out / KEPT).read_text() == "" and manifest["files"][KEPT]["records"] == 0
    failed = _records(out / FAILED)
    assert [r["raw"]["id"] for r in failed] == [s.id for s in samples]
    assert {r["reason"] for r in failed} == {
        "no kept rationale after 2 round(s); last: generate: empty output; rationalize: empty output"
    }
    assert len(engine.calls) == 4


def test_invalid_input_rows_are_quarantined_and_counted(samples, tmp_path):
    src = tmp_path / "in.jsonl"
    good = [json.dumps(s.to_record()) for s in samples[:2]]
    src.write_text(good[0] + "\n{not json\n" + good[1] + "\n")
    manifest, _ = _run(src, tmp_path / "out", samples, scripted(samples), rounds=1)
    c = manifest["counts"]
    assert (c["in"], c["kept"], c["failed"], c["invalid"]) == (3, 2, 0, 1)
    (bad,) = _records(tmp_path / "out" / "quarantine" / "rejected.jsonl")
    assert bad["line"] == 2 and "malformed JSON" in bad["reason"]
    assert manifest["provenance"]["input"]["manifest_sha256"] is None


def test_output_may_not_overwrite_the_input(data_dir, samples):
    with pytest.raises(ConfigError, match="would overwrite the input"):
        _run(data_dir, data_dir, samples, scripted(samples))


# -- retraining between rounds -------------------------------------------------------------------
def test_train_between_rounds_hands_the_kept_set_over_and_uses_the_new_model(data_dir, samples, tmp_path):
    out = tmp_path / "star"
    engines: list[FakeTeacher] = []
    trained: list[tuple[Path, int, int]] = []

    def retrained(sample: Sample, kind: str, attempt: int, hint: str | None) -> str:
        return f"Now I know how these go, step by step. So the answer is {sample.answer}."

    def load(model: str) -> FakeTeacher:
        engines.append(FakeTeacher(samples, scripted(samples) if not engines else retrained, model=model))
        return engines[-1]

    def train_fn(kept_dir: Path, round_: int) -> str:
        trained.append((kept_dir, round_, len(_records(kept_dir / KEPT))))
        return str(kept_dir / "model")

    manifest = run_star(
        data_dir, out, "base-teacher", config=StarConfig(rounds=2), load_engine=load, train_fn=train_fn
    )
    assert trained == [(out / "rounds" / "round-01", 1, 8)]  # once: not after the last round
    assert [e.model for e in engines] == ["base-teacher", str(out / "rounds" / "round-01" / "model")]
    assert [len(e.calls) for e in engines] == [2, 1]  # round 2 ran on the retrained teacher only
    assert manifest["rounds"][1] == {"round": 2, "correct": 4, "rationalized": 0, "failed": 0}
    assert manifest["provenance"]["teachers"] == [
        {"round": 1, "model": "base-teacher"},
        {"round": 2, "model": "rounds/round-01/model"},
    ]
    round2 = [r for r in _records(out / KEPT) if r["star_round"] == 2]
    assert len(round2) == 4 and {r["star_teacher"] for r in round2} == {"rounds/round-01/model"}
    assert not (out / FAILED).exists() and manifest["counts"]["kept"] == 12


FAKE_TRAIN = """
import json, sys
from pathlib import Path
import yaml
args = sys.argv[1:]
if args == ["--help"]:
    print("Usage: train teacher --config CONFIG --output DIR")
    sys.exit(0)
opts = dict(zip(args[::2], args[1::2]))
cfg = yaml.safe_load(Path(opts["--config"]).read_text())
out = Path(opts["--output"])
stages = []
for n, stage in enumerate(cfg["stages"], start=1):
    (out / f"{n}-{stage['name']}").mkdir(parents=True)
    (out / f"{n}-{stage['name']}" / "config.json").write_text(json.dumps({"data": stage.get("data")}))
    stages.append({"stage": f"{n}-{stage['name']}", "output": str(out / f"{n}-{stage['name']}")})
(out / "stages.json").write_text(json.dumps(stages))
"""

TEACHER_YAML = """model: runs/tiny
output: runs/teacher
stages:
  - name: multitask
    data: runs/data/train.jsonl
  - name: personalise
    data: runs/data/validation.jsonl
"""


def test_subprocess_train_fn_retrains_on_the_kept_set(tmp_path):
    script, config = tmp_path / "train.py", tmp_path / "teacher.yaml"
    script.write_text(FAKE_TRAIN)
    config.write_text(TEACHER_YAML)
    kept_dir = tmp_path / "rounds" / "round-01"
    kept_dir.mkdir(parents=True)
    path = subprocess_train_fn(config, command=(sys.executable, str(script)))(kept_dir, 1)
    assert path == str(kept_dir / "model" / "2-personalise")  # the last stage
    first = json.loads((kept_dir / "model" / "1-multitask" / "config.json").read_text())
    assert first == {"data": str(kept_dir / KEPT)}  # stage 1 trained on the kept set
    second = json.loads((kept_dir / "model" / "2-personalise" / "config.json").read_text())
    assert second == {"data": "runs/data/validation.jsonl"}
    assert (kept_dir / "teacher.yaml").read_text().startswith("# STaR round 1:")


def test_subprocess_train_fn_says_when_training_is_unavailable(tmp_path):
    config = tmp_path / "teacher.yaml"
    config.write_text(TEACHER_YAML)
    with pytest.raises(
        TeacherLMError, match=r"training between rounds is unavailable: .*\(No such command\)"
    ):
        subprocess_train_fn(config, command=(sys.executable, "-c", "import sys; sys.exit('No such command')"))
    with pytest.raises(ConfigError, match="no such config file"):
        subprocess_train_fn(tmp_path / "missing.yaml")
    config.write_text("model: x\n")
    with pytest.raises(ConfigError, match="at least one stage"):
        subprocess_train_fn(config)


def test_cli_train_between_rounds_fails_fast_without_the_recipe(data_dir, tmp_path, monkeypatch):
    """An installation without the training recipe: the CLI fails before loading any model."""
    import teacherlm_core.star.config as star_config

    missing = (sys.executable, "-c", "import sys; sys.exit('No module named teacherlm_core.train')")
    monkeypatch.setattr(star_config, "TRAIN_COMMAND", missing)
    config = tmp_path / "teacher.yaml"
    config.write_text(TEACHER_YAML)
    args = ["star", "--model", "never-loaded", "--input", str(data_dir), "--output", str(tmp_path / "o")]
    res = CliRunner().invoke(app, [*args, "--rounds", "2", "--train-between-rounds", str(config)])
    assert isinstance(res.exception, TeacherLMError), res.output
    assert "training between rounds is unavailable" in str(res.exception)
    assert not (tmp_path / "o").exists()


def test_cli_help_lists_every_option():
    res = CliRunner().invoke(app, ["star", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for opt in (
        "--model",
        "--input",
        "--output",
        "--rounds",
        "--engine",
        "--max-new-tokens",
        "--seed",
        "--train-between-rounds",
    ):
        assert opt in res.output


# -- a real run ----------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.timeout(120)
def test_cli_star_with_the_tiny_model(tiny_model, tmp_path):
    data = tmp_path / "data"
    build_builtin(data, per_task=6, seed=0)
    out = tmp_path / "star"
    cmd = [
        sys.executable,
        "-m",
        "teacherlm_core",
        "data",
        "star",
        "--model",
        tiny_model,
        "--input",
        str(data),
        "--output",
        str(out),
        "--rounds",
        "2",
        "--engine",
        "hf",
        "--max-new-tokens",
        "16",
        "--seed",
        "0",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=110)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "attempted" in res.stdout and "in 32 = kept" in res.stdout

    manifest = json.loads((out / "manifest.json").read_text())
    rounds, c = manifest["rounds"], manifest["counts"]
    assert 1 <= len(rounds) <= 2 and rounds[0]["round"] == 1
    assert rounds[0]["correct"] + rounds[0]["rationalized"] + rounds[0]["failed"] == 32
    if len(rounds) == 2:
        r2 = rounds[1]
        assert r2["correct"] + r2["rationalized"] + r2["failed"] == rounds[0]["failed"]
    assert c["in"] == 32 == c["kept"] + c["failed"] + c["invalid"]
    assert c["failed"] == rounds[-1]["failed"]
    assert c["kept"] == sum(r["correct"] + r["rationalized"] for r in rounds)
    prov = manifest["provenance"]
    assert (prov["engine"], prov["seed"], prov["max_new_tokens"], prov["teacher"]["model"]) == (
        "hf",
        0,
        16,
        tiny_model,
    )
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(out / name)
    failed = _records(out / FAILED)
    assert len(failed) == c["failed"] and all(r["reason"] for r in failed)
    for rec in _records(out / KEPT):
        assert re.search(r"answer is .+\.$", rec["chain_of_thought"])
