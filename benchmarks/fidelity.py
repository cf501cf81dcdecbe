"""The paper's experiment at CPU scale: do students learn more from a teacher's explanations?

TeacherLM's claim (arXiv 2310.19019, sections 4-5): students trained multi-task on data augmented
with a teacher's fundamentals, chain of thought and common mistakes beat students trained on the
plain questions and answers. This benchmark runs that comparison end to end on this machine:

1. Data: the built-in suite (8 task families) for the students: ``--per-task`` items a family
   (70% train), and a held-out test split of ``--test-per-task`` items a family. The teacher's
   seed data is another draw of the suite (seed 1), so the teacher never saw the students' items.
2. Teacher: SmolLM2-135M-Instruct (shipped in a wheel, no download) fine-tuned with the
   ``teacher_smollm2`` recipe on the seed data's gold explanations; it then augments the
   students' train split, answer-conditioned, greedy (HF engine).
3. Utility: every teacher explanation is scored, leakage-aware (``teacherlm augment utility``),
   by the untuned SmolLM2; the top half by utility is the "utility-filtered" arm's data.
4. Students: small Llama models trained from scratch (``--student-preset``), one fresh
   initialisation per seed, the same steps and batch for every arm, then zero-shot rank
   classification on the test split. Arms:

   * ``plain``: questions and answers only;
   * ``teacher``: plus the teacher's three explanations (multi-task, the paper's recipe);
   * ``gold``: plus the suite's own hand-written explanations (an upper bound for any teacher);
   * ``teacher:<field>``: plus one teacher field only (the paper's per-field ablation);
   * ``utility-filtered``: ``teacher`` on the records whose explanations score in the top half.

Per arm: mean and standard deviation of accuracy over seeds; per seed, accuracy with its 95%
bootstrap interval and the paired difference to ``plain`` on the same items (McNemar's exact
test). Results go to ``--output`` (``results.json``, ``fidelity.md``), which docs/fidelity.md
quotes with the exact command.

    python benchmarks/fidelity.py --output runs/fidelity            # the default size (see docs/fidelity.md)
    python benchmarks/fidelity.py --per-task 12 --seeds 1 --student-steps 20 --output /tmp/f   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ARMS = ("plain", "teacher", "gold", "teacher:fundamentals", "teacher:chain_of_thought",
        "teacher:common_mistakes", "utility-filtered")  # fmt: skip


def _log(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def _student_config(root: Path, max_length: int, batch: int) -> Path:
    import yaml

    from teacherlm_core.train.config import shipped_config_path

    raw = yaml.safe_load(shipped_config_path("student_tiny").read_text())
    raw["texts"]["max_length"] = max_length
    raw["train"]["per_device_batch_size"] = batch
    raw["train"]["save_steps"] = 100_000
    path = root / "student.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=Path("runs/fidelity"))
    ap.add_argument("--teacher", default="smollm2-135m-instruct", help="The teacher's base model.")
    ap.add_argument("--scorer", default="smollm2-135m-instruct", help="The utility scorer.")
    ap.add_argument("--per-task", type=int, default=24, help="Student items per family (70%% train).")
    ap.add_argument("--test-per-task", type=int, default=40, help="Held-out test items per family.")
    ap.add_argument("--teacher-per-task", type=int, default=12, help="Teacher seed items per family.")
    ap.add_argument("--teacher-steps", type=int, default=24)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--student-preset", default="tiny", help="tiny (~0.6M parameters) or small (~20M).")
    ap.add_argument("--student-steps", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also evaluate the teacher's base model zero-shot (what a 135M student starts from).",
    )
    args = ap.parse_args(argv)

    os.environ.setdefault("TEACHERLM_WORKDIR", str(args.output.resolve()))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{(args.output / 'mlflow.db').resolve()}")
    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.augment.utility import utility_filter
    from teacherlm_core.compare import accuracy_interval, paired_comparison
    from teacherlm_core.data import build_builtin, generate_builtin
    from teacherlm_core.evaluate import EvalReport
    from teacherlm_core.models import resolve_model
    from teacherlm_core.stages.evaluate import evaluate
    from teacherlm_core.stages.train_student import train_student
    from teacherlm_core.stages.train_teacher import train_teacher
    from teacherlm_core.tiny import build_tiny_model

    t0 = time.perf_counter()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    arms = [a for a in args.arms.split(",") if a]

    def timed(step, fn, *a, **k):
        start = time.perf_counter()
        result = fn(*a, **k)
        seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - start
        _log(f"{step} done", t0)
        return result

    data = out / "data"
    timed("data", build_builtin, data, None, args.per_task, 0, test_per_task=args.test_per_task)
    seeds_dir = out / "teacher-seeds"
    timed("data", build_builtin, seeds_dir, None, args.teacher_per_task, 1)
    students_q = {json.loads(x)["question"] for x in (data / "train.jsonl").read_text().splitlines()}
    test_q = {json.loads(x)["question"] for x in (data / "test.jsonl").read_text().splitlines()}
    seed_q = {json.loads(x)["question"] for x in (seeds_dir / "train.jsonl").read_text().splitlines()}
    overlap = {"seed_and_student_train": len(seed_q & students_q), "seed_and_test": len(seed_q & test_q),
               "student_train_and_test": len(students_q & test_q)}  # fmt: skip

    teacher_needed = any(a != "plain" and a != "gold" for a in arms)
    teacher_dir = out / "teacher"
    if teacher_needed and not (teacher_dir / "model.safetensors").is_file():
        empty = out / "no-star.jsonl"
        empty.write_text("")
        timed("teacher training", train_teacher, resolve_model(args.teacher), str(seeds_dir), str(empty),
              str(teacher_dir), teacher_config="teacher_smollm2", teacher_max_steps=args.teacher_steps,
              deepspeed="none", nproc_per_node=1, launcher="torchrun")  # fmt: skip
    aug = out / "augmented"
    if teacher_needed and not (aug / "manifest.json").is_file():
        cfg = AugmentConfig(model=str(teacher_dir), input=str(data / "train.jsonl"), output=str(aug), engine="hf",
                            max_new_tokens=args.max_new_tokens, temperature=0.0)  # fmt: skip
        timed("augmentation", augment, cfg)
    aug_counts = json.loads((aug / "manifest.json").read_text())["counts"] if teacher_needed else {}
    useful = out / "utility-filtered"
    utility = None
    if "utility-filtered" in arms and (useful / "utility.json").is_file():
        utility = json.loads((useful / "utility.json").read_text())
    elif "utility-filtered" in arms:
        utility = timed("utility scoring", utility_filter, str(aug), args.scorer, str(useful), top_share=0.5)

    corpus = [
        " ".join(
            str(r.get(k, "")) for k in ("question", "fundamentals", "chain_of_thought", "common_mistakes")
        )
        for r in generate_builtin(per_task=args.per_task, seed=0)
    ]
    config = _student_config(out, max_length=128, batch=4)
    source = {"plain": (data, "plain"), "gold": (data, "augmented"), "teacher": (aug, "augmented"),
              "utility-filtered": (useful, "augmented")}  # fmt: skip
    for field in ("fundamentals", "chain_of_thought", "common_mistakes"):
        source[f"teacher:{field}"] = (aug, field)
    reports: dict[str, dict[int, Path]] = {a: {} for a in arms}
    students, reports_dir = out / "students" / args.student_preset, out / "reports" / args.student_preset
    for seed in range(args.seeds):
        base = students / f"base-{seed}"
        if not (base / "model.safetensors").is_file():
            build_tiny_model(base, preset=args.student_preset, seed=1000 + seed, corpus=corpus)
        for arm in arms:
            where, variant = source[arm]
            model = students / f"{arm.replace(':', '-')}-{seed}"
            report = reports_dir / f"{arm.replace(':', '-')}-{seed}.json"
            if not report.is_file():
                timed("student training", train_student, str(base), str(where), str(model), variant=variant,
                      student_config=str(config), student_max_steps=args.student_steps, deepspeed="none",
                      nproc_per_node=1, launcher="torchrun", seed=seed)  # fmt: skip
                timed("evaluation", evaluate, str(model), str(data), str(report), name=arm, engine="hf")
            reports[arm][seed] = report

    reference = {}
    if args.reference:  # the teacher's base model, untuned, zero-shot: what a 135M student would start from
        path = out / "reports" / "reference.json"
        if not path.is_file():
            timed("evaluation", evaluate, resolve_model(args.teacher), str(data), str(path), name=args.teacher,
                  engine="hf")  # fmt: skip
        r = EvalReport.model_validate_json(path.read_text())
        reference = {"model": args.teacher, "accuracy": r.overall.accuracy,
                     "interval": accuracy_interval([s.correct for s in r.samples])}  # fmt: skip
    loaded = {
        a: {s: EvalReport.model_validate_json(p.read_text()) for s, p in r.items()}
        for a, r in reports.items()
    }
    table = {}
    for arm, by_seed in loaded.items():
        accs = [r.overall.accuracy for r in by_seed.values()]
        row = {"mean": statistics.mean(accs), "sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
               "per_seed": {}}  # fmt: skip
        for seed, r in by_seed.items():
            entry = {
                "accuracy": r.overall.accuracy,
                "interval": accuracy_interval([s.correct for s in r.samples]),
            }
            if arm != "plain" and "plain" in loaded:
                entry["vs_plain"] = paired_comparison(loaded["plain"][seed], r)
            row["per_seed"][seed] = entry
        if arm != "plain" and "plain" in loaded:
            diffs = [row["per_seed"][s]["vs_plain"]["difference"] for s in by_seed]
            row["difference_mean"] = statistics.mean(diffs)
            row["difference_sd"] = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
            row["significant_seeds"] = sum(row["per_seed"][s]["vs_plain"]["significant"] for s in by_seed)
        table[arm] = row
    results = {
        "command": "python benchmarks/fidelity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "test_items": len(test_q),
        "train_items": len(students_q),
        "overlap": overlap,
        "augmented": aug_counts,
        "utility": utility,
        "arms": table,
        "reference": reference,
        "seconds": {k: round(v, 1) for k, v in seconds.items()}
        | {"total": round(time.perf_counter() - t0, 1)},
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "fidelity.md").write_text(markdown(results))
    print(markdown(results))
    return results


def markdown(results: dict) -> str:
    """The results table: per arm, mean +- sd over seeds, difference to plain, seeds where it is significant."""
    lines = [
        f"Held-out test items: {results['test_items']}; student train items: {results['train_items']}; "
        f"seeds: {results['args']['seeds']}; student preset: {results['args']['student_preset']}, "
        f"{results['args']['student_steps']} steps.",
        "",
        "| arm | accuracy (mean +- sd over seeds) | difference to plain (mean +- sd) | seeds with p < 0.05 (McNemar) |",
        "|---|---:|---:|---:|",
    ]
    for arm, row in results["arms"].items():
        diff = (
            f"{row['difference_mean']:+.3f} +- {row['difference_sd']:.3f}"
            if "difference_mean" in row
            else "-"
        )
        sig = f"{row['significant_seeds']} of {len(row['per_seed'])}" if "significant_seeds" in row else "-"
        lines.append(f"| {arm} | {row['mean']:.3f} +- {row['sd']:.3f} | {diff} | {sig} |")
    if results.get("reference"):
        ref = results["reference"]
        lo, hi = ref["interval"]
        lines += [
            "",
            f"Reference, untrained: `{ref['model']}` zero-shot {ref['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}).",
        ]
    lines += ["", "Wall time by step (s): " + ", ".join(f"{k} {v}" for k, v in results["seconds"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
