"""Fidelity v2: can a teacher's explanations change what a student knows? (docs/fidelity.md)

TeacherLM (arXiv 2310.19019) trains students multi-task on a teacher's fundamentals, chain of
thought and common mistakes. This benchmark asks the question where it can be answered on a CPU:
on families whose held-out questions ask facts that no training label gives but the training
explanations state (``fictional``, ``fictional_leaky``, ``animals``), plus yes/no renderings of
step-by-step families (``arithmetic_yn``, ``ordering_yn``) and a negative control that nothing can
learn (``control_unseen``: creatures never seen in training).

Students: the ``student_tiny`` recipe (tiny Llama from scratch, in process), label-exposure
matched: in one cell (training questions a family x seed) every arm trains the same questions in
the same order for the same steps from the same initialisation, and explanations are auxiliary
targets (weight 1). Arms:

* ``plain``: labels only (``student_plain_tiny``);
* ``gold``: the suite's gold explanations after the answer (the paper's format);
* ``gold_after_question``: the same explanations after the question alone;
* ``gold_shuffled``: another item's gold explanations of the same family, after the answer: the
  same amount of text, no information about the item (the "same volume" control);
* ``teacher``: explanations written by the teacher (SmolLM2-135M-Instruct, from its wheel,
  answer-conditioned, greedy), after the answer;
* ``utility_filtered``: the teacher's explanations of the top half of records by leakage-aware
  utility (scored by the same untuned model, answer masked); the other half trains labels only.

Primary endpoint (written in docs/fidelity.md before the run): at 64 training questions a
family, accuracy on the three knowledge families pooled, ``gold`` minus ``plain``, McNemar's
exact test pooled over the seeds (summed discordant pairs), significant at p < 0.01.

    python benchmarks/fidelity.py --output runs/fidelity          # the documented run (~45 min, 2 cores)
    python benchmarks/fidelity.py --sizes 16 --seeds 1 --primary-seeds 1 --arms plain,gold \\
        --output /tmp/fidelity-smoke                               # a smoke run (~2 min)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

FAMILIES = ("fictional", "fictional_leaky", "animals", "arithmetic_yn", "ordering_yn", "control_unseen")
KNOWLEDGE = ("fictional", "fictional_leaky", "animals")
ARMS = ("plain", "gold", "gold_after_question", "gold_shuffled", "teacher", "utility_filtered")
TEACHER_ARMS = ("teacher", "utility_filtered")
FIELDS = ("fundamentals", "chain_of_thought", "common_mistakes")
# per_task giving 16 / 64 / 256 training questions a family after the 70/15/15 split
PER_TASK = {16: 22, 64: 92, 256: 366}


def _log(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def steps_for(questions: int, epochs: float, batch: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``questions`` (at least 50)."""
    return max(50, math.ceil(epochs * questions / batch))


def shuffled(records: list[dict]) -> list[dict]:
    """Each record with the explanations of the next record of its family (same volume, no information)."""
    out, by_task = [], {}
    for r in records:
        by_task.setdefault(r["task"], []).append(r)
    donor = {}
    for rows in by_task.values():
        for a, b in zip(rows, rows[1:] + rows[:1], strict=True):
            donor[a["id"]] = b
    for r in records:
        out.append(r | {f: donor[r["id"]][f] for f in FIELDS})
    return out


def _job(job: dict) -> dict:
    """Train one student and evaluate it (runs in a worker process with one math thread)."""
    import torch

    torch.set_num_threads(1)
    from teacherlm_core.engines import get_engine
    from teacherlm_core.evaluate import evaluate, load_eval_samples
    from teacherlm_core.train import load_config, train_student

    report = Path(job["report"])
    if report.is_file():
        return json.loads(report.read_text())
    start = time.perf_counter()
    overrides = {"model": job["base"], "data": job["data"], "output": job["output"], "track": False,
                 "train.max_steps": job["steps"], "train.seed": job["seed"], "train.save_steps": 100_000}  # fmt: skip
    if job["position"]:
        overrides["texts.explanation_position"] = job["position"]
    result = train_student(load_config("student", job["config"], overrides))
    trained = time.perf_counter() - start
    samples = load_eval_samples(job["test"])
    scored = evaluate(get_engine("hf", job["output"]), samples, model_name=job["arm"])
    success = json.loads((Path(job["output"]) / "_SUCCESS").read_text())
    out = {
        **{k: job[k] for k in ("arm", "size", "seed", "steps")},
        "train_s": round(trained, 1),
        "eval_s": round(time.perf_counter() - start - trained, 1),
        "tokens": success.get("tokens", {}),
        "final_loss": result.final_loss,
        "correct": {s.id: bool(s.correct) for s in scored.samples},
        "tasks": {s.id: s.task for s in scored.samples},
    }
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(out) + "\n")
    return out


def _train_teacher(out: Path, args, t0: float) -> str:
    """SmolLM2 fine-tuned (``teacher_smollm2``, ``--teacher-steps``) on gold explanations of the
    eight classic families only (seed 1): it learns the format, not the knowledge families' facts."""
    import torch

    torch.set_num_threads(1)
    from teacherlm_core.data import build_builtin
    from teacherlm_core.data.tasks import DEFAULT_TASKS
    from teacherlm_core.models import resolve_model
    from teacherlm_core.stages.train_teacher import train_teacher

    model = out / "model"
    if not (model / "model.safetensors").is_file():
        seeds = out / "seeds"
        build_builtin(seeds, list(DEFAULT_TASKS), per_task=12, seed=1)  # the eight classic families
        empty = _write(out / "no-star.jsonl", [])
        train_teacher(resolve_model(args.teacher), str(seeds), str(empty), str(model), teacher_config="teacher_smollm2",
                      teacher_max_steps=args.teacher_steps, deepspeed="none", nproc_per_node=1, launcher="torchrun")  # fmt: skip
        _log("teacher training done", t0)
    return str(model)


def _teacher_data(out: Path, train: Path, teacher: str, args, t0: float) -> dict:
    """Teacher-written explanations of ``train`` (and the utility-filtered variant); returns stats."""
    import torch

    torch.set_num_threads(1)
    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.augment.utility import utility_filter

    aug = out / "augmented"
    if not (aug / "manifest.json").is_file():
        start = time.perf_counter()
        # The teacher explains the knowledge families' questions (what the teacher arms are judged
        # on); the other families' questions train their labels only in the teacher arms.
        knowledge = _write(out / "knowledge-train.jsonl", [r for r in _read(train) if r["task"] in KNOWLEDGE])
        cfg = AugmentConfig(model=teacher, input=str(knowledge), output=str(aug), engine="hf",
                            max_new_tokens=args.max_new_tokens, temperature=0.0)  # fmt: skip
        augment(cfg)
        (out / "augment_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
        _log("teacher augmentation done", t0)
    useful = out / "utility"
    if not (useful / "utility.json").is_file():
        utility_filter(str(aug), args.teacher, str(useful), top_share=0.5)
        _log("utility scoring done", t0)
    written = {r["id"]: r for r in _read(aug / "train.jsonl")}
    kept = {r["id"] for r in _read(useful / "train.jsonl")}
    base = _read(train)
    # Records the teacher's output lacks (quarantined) train their label only, in both arms.
    teacher = [written.get(r["id"], {k: v for k, v in r.items() if k not in FIELDS}) for r in base]
    filtered = [r if r["id"] in kept else {k: v for k, v in r.items() if k not in FIELDS} for r in teacher]
    _write(out / "teacher-train.jsonl", teacher)
    _write(out / "utility-train.jsonl", filtered)
    gold = {r["id"]: r for r in base}
    animals = [r for r in teacher if r["task"] == "animals" and "fundamentals" in r]
    states_class = sum(
        any(gold[r["id"]][f].split(" is a ")[1].split(".")[0] in r[f] for f in FIELDS) for r in animals
    )  # the animal's class ("mammal") named in one of the teacher's fields
    manifest = json.loads((aug / "manifest.json").read_text())
    seconds = (
        float((out / "augment_seconds.txt").read_text()) if (out / "augment_seconds.txt").is_file() else None
    )
    return {
        "counts": manifest["counts"],
        "utility_kept": len(kept),
        "animals_explained": len(animals),
        "animals_class_stated": states_class,
        "augment_seconds": seconds,
        "examples": {
            t: next(
                (
                    {f: r[f] for f in ("question", "answer", *FIELDS)}
                    for r in teacher
                    if r["task"] == t and "fundamentals" in r
                ),
                None,
            )
            for t in KNOWLEDGE
        },
    }


def analyse(reports: list[dict], families: tuple[str, ...] = FAMILIES) -> dict:
    """Per (size, arm): accuracy per family and pooled over the knowledge families, per seed and
    over seeds; each arm against plain on the same items: difference, hierarchical bootstrap 95%
    CI (seeds, then items), McNemar pooled over seeds, the minimum detectable effect."""
    from teacherlm_core.compare import hierarchical_bootstrap, minimum_detectable_effect, pooled_mcnemar

    groups = {"knowledge": KNOWLEDGE, **{f: (f,) for f in families}}
    cells: dict = {}
    by_key = {(r["size"], r["arm"], r["seed"]): r for r in reports}
    for size in sorted({r["size"] for r in reports}):
        for arm in [a for a in ARMS if any(k[:2] == (size, a) for k in by_key)]:
            seeds = sorted(s for (z, a, s) in by_key if (z, a) == (size, arm))
            row: dict = {"seeds": seeds, "tokens": {}, "groups": {}}
            toks = [by_key[(size, arm, s)]["tokens"] for s in seeds]
            row["tokens"] = (
                {k: round(sum(t.get(k, 0) for t in toks) / len(toks)) for k in toks[0]} if toks else {}
            )
            for g, members in groups.items():
                per_seed, diffs, discordant = [], [], []
                for s in seeds:
                    rep = by_key[(size, arm, s)]
                    ids = sorted(i for i, t in rep["tasks"].items() if t in members)
                    if not ids:
                        continue
                    per_seed.append(sum(rep["correct"][i] for i in ids) / len(ids))
                    base = by_key.get((size, "plain", s))
                    if base and arm != "plain":
                        d = [int(rep["correct"][i]) - int(base["correct"][i]) for i in ids]
                        diffs.append(d)
                        discordant.append([d.count(1), d.count(-1)])
                if not per_seed:
                    continue
                entry = {"accuracy": sum(per_seed) / len(per_seed), "per_seed": per_seed,
                         "items": len(ids)}  # fmt: skip
                if diffs:
                    flat = [x for d in diffs for x in d]
                    entry |= {
                        "difference": sum(flat) / len(flat),
                        "interval": hierarchical_bootstrap(diffs, resamples=1000),
                        "p_value": pooled_mcnemar(discordant),
                        "discordant": [sum(d[0] for d in discordant), sum(d[1] for d in discordant)],
                        "mde": minimum_detectable_effect(len(flat), sum(map(abs, flat)) / len(flat)),
                        "per_seed_difference": [sum(d) / len(d) for d in diffs],
                    }
                row["groups"][g] = entry
            cells.setdefault(str(size), {})[arm] = row
    return cells


def chance(test: list[dict]) -> dict:
    """Expected accuracy of a uniform guess per family (and pooled over the knowledge families)."""
    out = {}
    for f in {r["task"] for r in test}:
        rows = [r for r in test if r["task"] == f]
        out[f] = sum(1 / len(r["choices"]) for r in rows) / len(rows)
    rows = [r for r in test if r["task"] in KNOWLEDGE]
    out["knowledge"] = sum(1 / len(r["choices"]) for r in rows) / max(1, len(rows))
    return out


def markdown(results: dict) -> str:
    """The tables docs/fidelity.md quotes: per size, arm and family."""
    lines = []
    for size, arms in results["cells"].items():
        ch = results["chance"][size]
        lines += [f"### {size} training questions a family", ""]
        groups = ["knowledge", *results["families"]]
        lines.append(
            "| arm | seeds | " + " | ".join(groups) + " | tokens a student (label / explanation targets) |"
        )
        lines.append("|---|---:|" + "---:|" * len(groups) + "---|")
        lines.append("| *chance* | | " + " | ".join(f"*{ch.get(g, 0):.3f}*" for g in groups) + " | |")
        for arm, row in arms.items():
            cells = []
            for g in groups:
                e = row["groups"].get(g)
                if e is None:
                    cells.append("-")
                elif "difference" in e:
                    lo, hi = e["interval"]
                    cells.append(
                        f"{e['accuracy']:.3f} ({e['difference']:+.3f}, CI {lo:+.2f}..{hi:+.2f}, p={e['p_value']:.2g})"
                    )
                else:
                    cells.append(f"{e['accuracy']:.3f}")
            t = row["tokens"]
            lines.append(f"| {arm} | {len(row['seeds'])} | " + " | ".join(cells)
                         + f" | {t.get('label_targets', 0):,} / {t.get('explanation_targets', 0):,} |")  # fmt: skip
        lines.append("")
    lines.append("Cells: mean accuracy over seeds (difference to plain on the same items, hierarchical bootstrap "
                 "95% CI over seeds then items, McNemar p pooled over seeds).")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> Path:
    """Sample-efficiency curve: knowledge-family accuracy against training questions, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=130)
    sizes = sorted(int(s) for s in results["cells"])
    for arm in ARMS:
        xs, ys, lo, hi = [], [], [], []
        for s in sizes:
            e = results["cells"][str(s)].get(arm, {}).get("groups", {}).get("knowledge")
            if not e:
                continue
            xs.append(s)
            ys.append(e["accuracy"])
            spread = e["per_seed"]
            lo.append(e["accuracy"] - min(spread))
            hi.append(max(spread) - e["accuracy"])
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=arm)
    ax.axhline(results["chance"][str(sizes[0])]["knowledge"], color="grey", linestyle=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("training questions per family")
    ax.set_ylabel("accuracy, knowledge families (held-out pairs)")
    ax.set_title("Students from scratch: what explanations teach (bars: seed range)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=Path("runs/fidelity"))
    ap.add_argument("--sizes", default="16,64,256", help="Training questions per family, comma-separated.")
    ap.add_argument("--primary", type=int, default=64, help="The size of the primary endpoint.")
    ap.add_argument("--seeds", type=int, default=3, help="Seeds at every size.")
    ap.add_argument("--primary-seeds", type=int, default=5, help="Seeds at the primary size.")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument(
        "--families", default=",".join(FAMILIES), help="Task families the students train and are scored on."
    )
    ap.add_argument(
        "--teacher-arms-at", default="primary", help="'primary' or 'all': sizes with teacher arms."
    )
    ap.add_argument("--test-per-task", type=int, default=64, help="Held-out test items per family.")
    ap.add_argument("--epochs", type=float, default=10.0, help="Passes over the training questions.")
    ap.add_argument("--batch", type=int, default=16, help="Questions a step (student_tiny's batch).")
    ap.add_argument("--teacher", default="smollm2-135m-instruct", help="The teacher's base model.")
    ap.add_argument("--teacher-steps", type=int, default=24, help="Fine-tuning steps of the teacher.")
    ap.add_argument("--data-seed", type=int, default=0, help="Seed of the suite draw (one dataset a size).")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--jobs", type=int, default=2, help="Students trained at once, one math thread each.")
    args = ap.parse_args(argv)

    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # One math thread a process: --jobs students at once share the cores without spinning
    # against each other (2 threads each on 2 busy cores ran 8x slower here).
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    os.environ.setdefault("TEACHERLM_WORKDIR", str(out))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{out / 'mlflow.db'}")
    from teacherlm_core.data import build_builtin
    from teacherlm_core.tiny import build_tiny_model

    t0 = time.perf_counter()
    arms = [a for a in args.arms.split(",") if a]
    families = [f for f in args.families.split(",") if f]
    sizes = [int(s) for s in args.sizes.split(",")]
    jobs, tests, teacher_stats, chances = [], {}, {}, {}
    teacher_model = None
    for size in sizes:
        seeds = args.primary_seeds if size == args.primary else args.seeds
        # One dataset per size (data seed --data-seed); a seed is a student: its initialisation
        # and the order of its questions. Items and seeds are the bootstrap's two levels.
        data = out / f"n{size}" / "data"
        if not (data / "manifest.json").is_file():
            build_builtin(
                data,
                families,
                per_task=PER_TASK[size],
                seed=args.data_seed,
                test_per_task=args.test_per_task,
            )
        train, test = data / "train.jsonl", data / "test.jsonl"
        records = _read(train)
        chances[str(size)] = chance(_read(test))
        sources = {"plain": train, "gold": train, "gold_after_question": train,
                   "gold_shuffled": _write(data.parent / "shuffled-train.jsonl", shuffled(records))}  # fmt: skip
        with_teacher = args.teacher_arms_at == "all" or size == args.primary
        if with_teacher and any(a in arms for a in TEACHER_ARMS):
            teacher_model = teacher_model or _train_teacher(out / "teacher", args, t0)
            teacher_stats[str(size)] = _teacher_data(data.parent / "teacher", train, teacher_model, args, t0)
            sources |= {"teacher": data.parent / "teacher" / "teacher-train.jsonl",
                        "utility_filtered": data.parent / "teacher" / "utility-train.jsonl"}  # fmt: skip
        tests[size] = _read(test)
        for seed in range(seeds):
            cell = out / f"n{size}" / f"seed{seed}"
            base = cell / "student-base"
            if not (base / "model.safetensors").is_file():
                corpus = [" ".join(str(r.get(k, "")) for k in ("question", *FIELDS)) for r in records]
                corpus += [" ".join([r["question"], *r["choices"]]) for r in tests[size]]
                build_tiny_model(base, preset="tiny", seed=1000 + seed, corpus=corpus)
            steps = steps_for(len(records), args.epochs, args.batch)
            for arm in arms:
                if arm not in sources:
                    continue
                jobs.append({
                    "arm": arm, "size": size, "seed": seed, "steps": steps, "base": str(base),
                    "data": str(sources[arm]), "test": str(test),
                    "config": "student_plain_tiny" if arm == "plain" else "student_tiny",
                    "position": {"plain": None, "gold_after_question": "after_question"}.get(arm, "after_answer"),
                    "output": str(cell / "students" / arm), "report": str(cell / "reports" / f"{arm}.json"),
                })  # fmt: skip
    _log(f"{len(jobs)} students to train", t0)
    reports = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for n, rep in enumerate(pool.map(_job, jobs), 1):
            reports.append(rep)
            _log(f"student {n}/{len(jobs)}: n={rep['size']} seed={rep['seed']} {rep['arm']} "
                 f"({rep['train_s']} s train, {rep['eval_s']} s eval)", t0)  # fmt: skip
    teacher_eval = None
    if any(a in arms for a in TEACHER_ARMS):
        teacher_eval = {"base": _teacher_accuracy(args.teacher, tests[args.primary], out, "base"),
                        "trained": _teacher_accuracy(teacher_model, tests[args.primary], out, "trained")}  # fmt: skip
    results = {
        "command": "python benchmarks/fidelity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "families": families,
        "chance": chances,
        "cells": analyse(reports, tuple(families)),
        "teacher": {"augmentation": teacher_stats, "zero_shot": teacher_eval},
        "seconds": {
            "total": round(time.perf_counter() - t0, 1),
            "students": round(sum(r["train_s"] + r["eval_s"] for r in reports), 1),
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "fidelity.md").write_text(markdown(results))
    plot(results, out / "fidelity.png")
    print(markdown(results))
    return results


def _teacher_accuracy(teacher: str, test: list[dict], out: Path, name: str) -> dict:
    """The teacher's own zero-shot accuracy per family on the primary size's test split: its fact accuracy."""
    import torch

    torch.set_num_threads(1)
    from teacherlm_core.engines import get_engine
    from teacherlm_core.evaluate import evaluate, load_eval_samples

    path = out / f"teacher-zero-shot-{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    src = _write(out / "teacher-test.jsonl", test)
    report = evaluate(get_engine("hf", teacher), load_eval_samples(str(src)), model_name=teacher)
    result = {t: {"accuracy": a.accuracy, "n": a.n} for t, a in report.tasks.items()}
    path.write_text(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
