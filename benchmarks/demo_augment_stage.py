"""The demo's augmentation stage vs the same shards run alone, one after another (issue 25's goal:
the stage within 1.3x of the shards alone).

    teacherlm demo --workdir runs/demo            # once: a finished demo run to take the shards from
    python benchmarks/demo_augment_stage.py runs/demo/demo-<stamp> [--repeats 2]

Both sides run the finished demo's own ``augment shard`` tasks (its trained teacher, its split,
its settings: greedy, 48 new tokens, the HF engine) as whole ``teacherlm augment shard``
processes. "stage" starts every shard at once, each with its share of the CPUs, as KFP's local
runner does (:func:`teacherlm_core.cpus.thread_env`); "alone" runs them one after another with
every CPU. Every run is printed with the spread; the sides alternate. Each run checks that every
record was augmented, with the same token count as the demo's own tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import side_by_side, spread

from teacherlm_core.cpus import cpu_budget, share, thread_env


def _shard_command(root: Path, split: Path, out: Path, index: int, num_shards: int, cfg: dict) -> list[str]:
    return [sys.executable, "-m", "teacherlm_core", "--no-track", "augment", "shard",
            "--teacher", str(root / "train-teacher" / "teacher"), "--split", str(split), "--output", str(out),
            "--shard-index", str(index), "--num-shards", str(num_shards),
            "--max-new-tokens", str(cfg["max_new_tokens"]), "--temperature", "0", "--engine", cfg["engine"],
            "--seed", str(cfg["seed"])]  # fmt: skip


def _tokens(out: Path) -> tuple[int, int]:
    done = json.loads(next(out.glob("shards/*/_SUCCESS")).read_text())
    return done["out"], done["tokens"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo", type=Path, help="A finished demo run: WORKDIR/demo-<stamp>.")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    summary = json.loads((args.demo / "summary.json").read_text())
    cfg = summary["config"]
    root = next((args.demo / "kfp").glob("*/augment-plan")).parent
    split = root / "augment-plan" / "split"
    num_shards = cfg["num_shards"]
    expected = {}  # shard -> (records, tokens) as the demo's own tasks wrote them
    for i in range(num_shards):
        done = next(root.glob(f"for-loop-*-iteration-{i}/augment-shard/shard/shards/*/_SUCCESS"))
        record = json.loads(done.read_text())
        expected[i] = (record["out"], record["tokens"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-demo-stage-"))
    budget = cpu_budget()

    def run(parallel: bool, r: int) -> None:
        outs = [tmp / f"{'stage' if parallel else 'alone'}-{r}-{i}" for i in range(num_shards)]
        env = os.environ | (thread_env(share(budget, num_shards)) if parallel else {})
        cmds = [_shard_command(root, split, o, i, num_shards, cfg) for i, o in enumerate(outs)]
        if parallel:
            procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL) for c in cmds]
            codes = [p.wait() for p in procs]
        else:
            codes = [subprocess.run(c, env=env, stdout=subprocess.DEVNULL).returncode for c in cmds]
        assert codes == [0] * num_shards, codes
        for i, out in enumerate(outs):
            assert _tokens(out) == expected[i], (i, _tokens(out), expected[i])  # every record, same tokens
            shutil.rmtree(out)

    times = side_by_side(
        {"stage": lambda r: run(True, r), "alone": lambda r: run(False, r)}, repeats=args.repeats
    )
    shutil.rmtree(tmp, ignore_errors=True)
    records = sum(n for n, _ in expected.values())
    print(
        f"{num_shards} shards, {records} records, {sum(t for _, t in expected.values())} tokens; CPUs {budget}"
    )
    for name, t in times.items():
        print(f"{name:5s}: {spread(t['all'])}")
    ratio = times["stage"]["median"] / times["alone"]["median"]
    print(f"stage / alone one after another (medians): {ratio:.2f}x (goal: at most 1.3x)")
    tasks = {
        t["task"]: t["seconds"] for t in summary["pipeline_tasks"] if t["task"].startswith("augment-shard")
    }
    print(f"in the demo run itself: the shard tasks took {', '.join(f'{s:.1f} s' for s in tasks.values())}")


if __name__ == "__main__":
    main()
