"""Overhead of running a stage graph as a KFP pipeline (local runner) vs the same stages through the CLI.

    python benchmarks/pipeline_overhead.py [--repeats 3] [--per-task 100] [--max-new-tokens 64]

The ``augment`` pipeline (plan -> 2 shards -> merge) on a tiny teacher and two built-in task
families, against the same work as ``teacherlm augment --shard-index 0``, ``--shard-index 1`` and
``teacherlm augment merge``. Both sides start from the shell (``teacherlm pipeline run augment
--local`` vs the three commands), use the hf engine with greedy decoding, and track to MLflow.
The pipeline is compiled with ``parallelism=1`` here, so that both run the shards one after the
other and the ratio measures orchestration, not concurrency. Runs alternate; the ratios use the
median of each side, of wall time and of the CPU time of each side's whole process tree (steadier
than wall time on a shared machine). Goal: pipeline / CLI <= 1.2.

The pipeline's extra cost is mostly fixed (the runner's own process with its MLflow parent run,
the plan task, each task's KFP executor), about 6-8 s here, so the ratio falls as the work grows
(1.14x wall / 1.09x CPU at the defaults, 1.32x / 1.25x with --per-task 40 --max-new-tokens 48);
``overhead_seconds_*`` report it in absolute terms.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every waited-for descendant: tasks, ranks
    return usage.ru_utime + usage.ru_stime


def teacherlm(*args: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process tree) of one ``teacherlm`` command."""
    t0, c0 = time.perf_counter(), _cpu()
    done = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"teacherlm {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0, _cpu() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    # About 20 s of generation per shard on 2 cores: small, but no longer mostly process start-up.
    parser.add_argument("--per-task", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--num-shards", type=int, default=2)
    args = parser.parse_args()

    from teacherlm_core.data import build_builtin
    from teacherlm_core.tiny import build_tiny_model
    from teacherlm_pipelines.compile import compile_pipelines

    work = Path(tempfile.mkdtemp(prefix="teacherlm-overhead-"))
    # One MLflow store for both sides (a new SQLite store costs seconds of migrations).
    env = {**os.environ, "TEACHERLM_WORKDIR": str(work), "TOKENIZERS_PARALLELISM": "false",
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}  # fmt: skip
    model = build_tiny_model(work / "teacher", seed=0)
    build_builtin(work / "data", ["claims", "syllogisms"], per_task=args.per_task, seed=0)
    specs = work / "specs"
    compile_pipelines(specs, names=("augment",), settings={"parallelism": 1})
    teacherlm("evaluate", "--help", env=env)  # warm the file cache for both sides
    subprocess.run(
        [sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"], env=env
    )
    gen = ["--engine", "hf", "--max-new-tokens", str(args.max_new_tokens), "--temperature", "0"]
    params = {"teacher": str(model), "data": str(work / "data"), "num_shards": args.num_shards,
              "engine": "hf", "max_new_tokens": args.max_new_tokens, "temperature": 0}  # fmt: skip

    def cli_run(i: int) -> tuple[float, float]:
        out = str(work / f"cli-{i}")
        common = ["--teacher", str(model), "--input", str(work / "data" / "train.jsonl"), "--output", out]
        steps = [
            teacherlm("augment", *common, "--num-shards", str(args.num_shards), "--shard-index", str(shard), *gen,
                      env=env)
            for shard in range(args.num_shards)
        ]  # fmt: skip
        steps.append(teacherlm("augment", "merge", "--output", out, env=env))
        return sum(w for w, _ in steps), sum(c for _, c in steps)

    def pipeline_run(i: int) -> tuple[float, float]:
        flags = [x for k, v in params.items() for x in ("-p", f"{k}={v}")]
        return teacherlm("pipeline", "run", "augment", "--local", "--specs", str(specs), "--workdir",
                         str(work / f"kfp-{i}"), *flags, env=env)  # fmt: skip

    runs: dict[str, list[tuple[float, float]]] = {"cli": [], "pipeline": []}
    for i in range(args.repeats):
        # Alternate which side goes first: the machine is shared, its load drifts.
        order = [("cli", cli_run), ("pipeline", pipeline_run)]
        for side, fn in order if i % 2 == 0 else order[::-1]:
            runs[side].append(fn(i))
            print(
                f"run {i}: {side} {runs[side][-1][0]:.1f} s wall, {runs[side][-1][1]:.1f} s CPU", flush=True
            )

    def median(side: str, k: int) -> float:
        return statistics.median(r[k] for r in runs[side])

    result = {
        "wall": {side: [round(w, 1) for w, _ in r] for side, r in runs.items()},
        "cpu": {side: [round(c, 1) for _, c in r] for side, r in runs.items()},
        "ratio_wall": round(median("pipeline", 0) / median("cli", 0), 3),
        "ratio_cpu": round(median("pipeline", 1) / median("cli", 1), 3),
        "overhead_seconds_wall": round(median("pipeline", 0) - median("cli", 0), 1),
        "overhead_seconds_cpu": round(median("pipeline", 1) - median("cli", 1), 1),
        "goal": "<= 1.2",
        "setup": {"tasks": "claims,syllogisms", **vars(args), "cpus": os.cpu_count()},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
