"""Overhead of running a stage graph as a KFP pipeline (local runner) vs the same stages through the CLI.

    python benchmarks/pipeline_overhead.py [--repeats 2] [--per-task 40] [--max-new-tokens 48]

The ``augment`` pipeline (plan -> 2 shards -> merge) on a tiny teacher and two built-in task
families, against the same work as ``teacherlm augment --shard-index 0``, ``--shard-index 1`` and
``teacherlm augment merge``. Both sides start from the shell (``teacherlm pipeline run augment
--local`` vs the three commands), use the hf engine with greedy decoding, and track to MLflow.
The pipeline is compiled with ``parallelism=1`` here, so that both run the shards one after the
other and the ratio measures orchestration, not concurrency. Runs alternate; the ratio uses the
median of each side. Goal: pipeline / CLI <= 1.2.

The pipeline's extra cost is mostly fixed (the runner's own process with its MLflow parent run,
one more task, each task's executor), so the ratio falls as the work grows; ``overhead_seconds``
reports it in absolute terms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def teacherlm(*args: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"teacherlm {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    # About half a minute of generation per shard here: small, but no longer all process start-up.
    parser.add_argument("--per-task", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--num-shards", type=int, default=2)
    args = parser.parse_args()

    from teacherlm_core.data import build_builtin
    from teacherlm_core.pipeline_tools import compile_pipelines
    from teacherlm_core.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="teacherlm-overhead-"))
    # One MLflow store for both sides (a new SQLite store costs seconds of migrations).
    env = {**os.environ, "TEACHERLM_WORKDIR": str(work), "TOKENIZERS_PARALLELISM": "false",
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}  # fmt: skip
    model = build_tiny_model(work / "teacher", seed=0)
    build_builtin(work / "data", ["claims", "syllogisms"], per_task=args.per_task, seed=0)
    specs = work / "specs"
    compile_pipelines(specs, names=("augment",), settings={"parallelism": 1})
    teacherlm("eval", "--help", env=env)  # warm the file cache for both sides
    subprocess.run(
        [sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"], env=env
    )
    gen = ["--engine", "hf", "--max-new-tokens", str(args.max_new_tokens), "--temperature", "0"]
    params = {"teacher_model": str(model), "data": str(work / "data"), "num_shards": args.num_shards,
              "engine": "hf", "max_new_tokens": args.max_new_tokens, "temperature": 0}  # fmt: skip

    def cli_run(i: int) -> float:
        out = str(work / f"cli-{i}")
        common = ["--model", str(model), "--input", str(work / "data" / "train.jsonl"), "--output", out]
        total = 0.0
        for shard in range(args.num_shards):
            total += teacherlm("augment", *common, "--num-shards", str(args.num_shards), "--shard-index",
                               str(shard), *gen, env=env)  # fmt: skip
        return total + teacherlm("augment", "merge", "--output", out, env=env)

    def pipeline_run(i: int) -> float:
        flags = [x for k, v in params.items() for x in ("-p", f"{k}={v}")]
        return teacherlm("pipeline", "run", "augment", "--local", "--specs", str(specs), "--workdir",
                         str(work / f"kfp-{i}"), *flags, env=env)  # fmt: skip

    cli_s, kfp_s = [], []
    for i in range(args.repeats):
        # Alternate which side goes first: the machine is shared, its load drifts.
        order = [(cli_s, cli_run), (kfp_s, pipeline_run)]
        for times, fn in order if i % 2 == 0 else order[::-1]:
            times.append(fn(i))
            print(f"run {i}: {'cli' if fn is cli_run else 'pipeline'} {times[-1]:.1f} s", flush=True)
    cli_med, kfp_med = statistics.median(cli_s), statistics.median(kfp_s)
    result = {
        "cli_seconds": [round(x, 1) for x in cli_s],
        "pipeline_seconds": [round(x, 1) for x in kfp_s],
        "cli_median": round(cli_med, 1),
        "pipeline_median": round(kfp_med, 1),
        "ratio": round(kfp_med / cli_med, 3),
        "overhead_seconds": round(kfp_med - cli_med, 1),
        "goal": "<= 1.2",
        "setup": {"tasks": "claims,syllogisms", **vars(args), "cpus": os.cpu_count()},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
