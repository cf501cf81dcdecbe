"""Import at scale: records/s and peak RSS of ``teacherlm data import`` at several sizes.

Synthetic records (``--records``, default 100,000 and 1,000,000) in three files, one per split
(90% train, 5% validation, 5% test), with duplicates of every kind the dedup looks for: in
train, every 20th record is an exact copy of an earlier one, every 20th (offset 1) a normalised
copy (case, punctuation, spacing), every 20th (offset 2) a near copy (one word of ~40 changed),
and every 50th a copy of a test record (a leak across splits, exact or near). Each import runs
in its own process, as the pipeline task would; the parent reads its peak RSS from the kernel
(``wait4``) and its wall time. Printed per size: records/s, peak RSS, the dedup counts, and
``RSS(largest) / RSS(smallest)`` (goal: at most 1.2) with every size under 1 GiB.

    python benchmarks/import_scale.py                          # 100k and 1M
    python benchmarks/import_scale.py --records 20000 200000   # quick

At 1M records the input is about 0.5 GB and the import's work files about 1.5 GB. Sizes run one
after another (the machine may be shared): each figure is one run, so read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOCAB = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra", "si", "tu", "ve", "zo") for b in range(200)]
MAPPING = {"task": "synthetic", "id": "id", "question": "question", "choices": "choices", "answer": "answer"}


def _question(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(35, 45))) + "?"


def _row(i: int, question: str, rng: random.Random, prefix: str) -> dict:
    choices = [f"option {c} {rng.choice(VOCAB)}" for c in "abcd"]
    return {"id": f"{prefix}-{i:09d}", "question": question, "choices": choices, "answer": choices[0]}


def _near(question: str, rng: random.Random) -> str:
    words = question.split()
    words[len(words) // 2] = rng.choice(VOCAB) + "x"  # one changed word: Jaccard ~0.86 on 3-grams
    return " ".join(words)


def write_input(folder: Path, n: int, seed: int = 0) -> dict[str, Path]:
    """``n`` rows over ``train.jsonl``, ``validation.jsonl`` and ``test.jsonl`` under ``folder``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_test = n_val = n // 20
    paths = {s: folder / f"{s}.jsonl" for s in ("test", "validation", "train")}
    test_rows: list[dict] = []  # the first 10,000, to leak into train
    with paths["test"].open("w") as fh:
        for i in range(n_test):
            row = _row(i, _question(rng), rng, "test")
            if len(test_rows) < 10_000:
                test_rows.append(row)
            fh.write(json.dumps(row) + "\n")
    with paths["validation"].open("w") as fh:
        for i in range(n_val):
            fh.write(json.dumps(_row(i, _question(rng), rng, "val")) + "\n")
    recent: list[dict] = []  # a window of earlier train rows to copy from
    with paths["train"].open("w") as fh:
        for i in range(n - n_test - n_val):
            if i % 50 == 49 and test_rows:  # a test item leaks into train, as it is or slightly edited
                src = rng.choice(test_rows)
                q = src["question"] if i % 100 == 49 else _near(src["question"], rng)
                row = dict(src, id=f"train-{i:09d}", question=q)
            elif i % 20 == 0 and recent:
                row = dict(rng.choice(recent), id=f"train-{i:09d}")  # exact copy
            elif i % 20 == 1 and recent:
                src = rng.choice(recent)
                row = dict(
                    src, id=f"train-{i:09d}", question="  " + src["question"].upper().replace(" ", ",  ")
                )
            elif i % 20 == 2 and recent:
                src = rng.choice(recent)
                row = dict(src, id=f"train-{i:09d}", question=_near(src["question"], rng))
            else:
                row = _row(i, _question(rng), rng, "train")
                recent = [*recent[-999:], row]
            fh.write(json.dumps(row) + "\n")
    return paths


def run_import(folder: str, out: str) -> None:
    """The import itself, in this (child) process; prints one JSON line."""
    from teacherlm_core.data import import_dataset

    src = {s: f"{folder}/{s}.jsonl" for s in ("train", "validation", "test")}
    t = time.perf_counter()
    manifest = import_dataset(src, MAPPING, out)
    print(
        json.dumps(
            {"seconds": time.perf_counter() - t, "records": manifest["records"], "dedup": manifest["dedup"]}
        )
    )


def spawn(env: dict[str, str], folder: Path, out: Path) -> dict:
    """One import in a child process: its result line, wall seconds and peak RSS (MiB, from wait4)."""
    with tempfile.TemporaryFile() as so:
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--step", str(folder), str(out)], stdout=so, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        so.seek(0)
        text = so.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed: {text[-2000:]}")
    return json.loads(text.strip().splitlines()[-1]) | {"wall": wall, "rss_mib": usage.ru_maxrss / 1024}


def report(results: list[dict]) -> None:
    print(
        "\n| records | seconds | records/s | peak RSS (MiB) | removed exact / normalised / near | flagged near |"
    )
    print("|---:|---:|---:|---:|---|---:|")
    for r in results:
        d = r["dedup"]
        removed = d["removed"]
        print(f"| {r['n']:,} | {r['seconds']:.0f} | {r['n'] / r['seconds']:,.0f} | {r['rss_mib']:.0f} | "
              f"{removed['exact']:,} / {removed['normalized']:,} / {removed['near']:,} | {d['flagged_near']:,} |")  # fmt: skip
    rs = sorted(results, key=lambda r: r["n"])
    peak = max(r["rss_mib"] for r in rs)
    ratio = rs[-1]["rss_mib"] / rs[0]["rss_mib"]
    good = peak < 1024 and (len(rs) < 2 or ratio <= 1.2)
    print(f"\nRSS({rs[-1]['n']:,}) / RSS({rs[0]['n']:,}) = {ratio:.2f}, peak {peak:.0f} MiB  "
          f"{'ok' if good else 'MISSED'} (goal: <= 1.2 and < 1024 MiB)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000], help="dataset sizes")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir, removed after)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--step", nargs=2, metavar=("INPUT_DIR", "OUTPUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        return run_import(*args.step)
    work = Path(args.work or tempfile.mkdtemp(prefix="import-scale-"))
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    results = []
    try:
        for n in sorted(args.records):
            folder = work / f"in-{n}"
            if not (folder / "train.jsonl").exists():
                print(f"writing {n:,} synthetic records ...", flush=True)
                write_input(folder, n)
            print(f"importing {n:,} records ...", flush=True)
            r = spawn(env, folder, work / f"out-{n}")
            results.append(r | {"n": n})
            print(f"  {r['seconds']:.0f} s, peak RSS {r['rss_mib']:.0f} MiB", flush=True)
            shutil.rmtree(work / f"out-{n}", ignore_errors=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
