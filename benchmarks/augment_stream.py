"""Engines busy (issue 14 item 3): one shard, the per-part path before the stream vs the stream.

Side by side in one run, the same shard and settings, every engine started and warmed up before
any timing, the order alternated, the best of ``--repeats``:
  * per-part: the path before the stream, one part at a time and one ``generate`` call per retry
    round, so the engine drains at every part boundary and every retry round, and idles while a
    part is written (``LOOKAHEAD = 1`` and an engine without ``open_stream``);
  * stream: the next part is fed before the current one drains, retries re-enter the stream.
Reported per side: shard wall time; engine occupancy (seconds inside ``generate``/``poll`` over
the wall time; the rest is idle: prompt building, checks, writes); and batch fill (HF: rows a
forward batch over ``batch_size``; vLLM: requests running a step over ``--batch-size``, the most
the scheduler may run). The data files of both sides are compared byte for byte.
Every run's wall time is printed with its spread; the run fails if fewer than 90% of the records
are augmented (a teacher whose text is rejected measures no real work: ``--model tiny`` is the
tests' trained teacher).

``--threads`` instead measures vLLM on CPU: torch's threads inside the engine, and generation
tokens/s with 1 and with 2 threads (alternated, best of ``--repeats``).

    python benchmarks/augment_stream.py --engine hf --engine vllm [--samples 16] [--part-size 4]
    python benchmarks/augment_stream.py --threads
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' shared timing helper

from _timing import side_by_side, spread

MIN_AUGMENTED = 0.9  # a run whose teacher text is mostly rejected measures no real work


class Timed:
    """An engine whose compute time is counted: ``generate`` calls and stream polls."""

    def __init__(self, engine, streams: bool):
        self.engine, self.busy = engine, 0.0
        self.name = engine.name
        self.context_window, self.count_tokens = engine.context_window, engine.count_tokens
        if streams:
            self.open_stream = lambda: TimedStream(self, engine.open_stream())

    def generate(self, prompts, params, progress=None):
        t = time.perf_counter()
        try:
            return self.engine.generate(prompts, params)
        finally:
            self.busy += time.perf_counter() - t


class TimedStream:
    def __init__(self, owner: Timed, inner):
        self.owner, self.inner = owner, inner

    @property
    def in_flight(self) -> int:
        return self.inner.in_flight

    def submit(self, key, prompt, params, priority=0):
        self.inner.submit(key, prompt, params, priority)

    def poll(self):
        t = time.perf_counter()
        try:
            return self.inner.poll()
        finally:
            self.owner.busy += time.perf_counter() - t


def fill_counter(engine, batch_size: int) -> list[float]:
    """Append each batch's fill (rows over ``batch_size``) to the returned list as the engine runs."""
    fills: list[float] = []
    if engine.name == "hf":
        for name in ("_generate_batch", "_sample_batch"):
            real = getattr(engine, name)
            setattr(engine, name, lambda p, q, real=real: fills.append(len(p) / batch_size) or real(p, q))
    else:
        core = engine.llm.llm_engine
        real_step = core.step
        core.step = lambda: (
            fills.append(min(core.get_num_unfinished_requests(), batch_size) / batch_size) or real_step()
        )
    return fills


def data_files(out: Path) -> str:
    """One hash over every part's data and quarantine files (writer ids left out)."""
    h = hashlib.sha256()
    for path in sorted(
        (out / "shards").rglob("part-*.jsonl"),
        key=lambda p: (p.parent.name, p.name.split(".")[0], p.name.endswith("quarantine.jsonl")),
    ):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def compare_paths(args) -> None:
    from teacherlm_core.data import generate_builtin
    from teacherlm_core.records import write_jsonl

    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    records = generate_builtin(per_task=max(3, args.samples // 8 + 1), seed=0)[: args.samples]
    write_jsonl(
        work / "in.jsonl",
        [{k: r[k] for k in ("id", "task", "question", "choices", "answer")} for r in records],
    )
    print(f"{args.samples} samples in parts of {args.part_size} ({-(-args.samples // args.part_size)} parts), "
          f"max_new_tokens {args.max_new_tokens}, temperature {args.temperature}, max_retries {args.max_retries}, "
          f"model {args.model}, batch size {args.batch_size}")  # fmt: skip
    for kind in args.engine:
        compare_on(kind, args, work)


def compare_on(kind: str, args, work: Path) -> None:
    from teacherlm_core.augment import AugmentConfig, run_shard, shard
    from teacherlm_core.engines import GenerationParams, get_engine

    if args.model == "tiny":  # the tests' trained teacher: accepted text, in seconds
        from teacherlm_core.tiny import build_tiny_teacher

        args.model = str(build_tiny_teacher(work / "teacher"))
    extra = {"enforce_eager": True, "enable_prefix_caching": False} if kind == "vllm" else {}
    engine = get_engine(kind, args.model, batch_size=args.batch_size, **extra)
    fills = fill_counter(engine, args.batch_size)
    cfg = AugmentConfig(model=args.model, input=str(work / "in.jsonl"), output=str(work / "x"), engine=kind,
                        num_shards=1, part_size=args.part_size, max_new_tokens=args.max_new_tokens,
                        temperature=args.temperature, max_retries=args.max_retries)  # fmt: skip
    stats: dict[str, dict] = {}

    def side(name: str, streams: bool, lookahead: int):
        def run(r: int):
            timed = Timed(engine, streams)
            fills.clear()
            out = work / f"{kind}-{name}-{r}"
            old, shard.LOOKAHEAD = shard.LOOKAHEAD, lookahead
            t = time.perf_counter()
            try:
                result = run_shard(cfg.model_copy(update={"output": str(out)}), 0, lambda: timed)
            finally:
                shard.LOOKAHEAD = old
            wall = time.perf_counter() - t
            stats.setdefault(name, {})[r] = {"wall": wall, "busy": timed.busy, "fill": sum(fills) / max(len(fills), 1),
                                             "batches": len(fills), "tokens": result["tokens"], "files": data_files(out)}  # fmt: skip
            return result

        return run

    warm = {"warm": lambda: engine.generate(["Q: warm up"] * 4, GenerationParams(max_new_tokens=4))}
    timed = side_by_side({"per-part": side("per-part", False, 1), "stream": side("stream", True, shard.LOOKAHEAD)},
                         repeats=args.repeats, warm_up=warm)  # fmt: skip
    print(f"\n{kind}: best of {args.repeats}, warm, order alternated; torch threads {torch_threads()}")
    print(f"{'path':<10} {'wall s':>7} {'busy s':>7} {'occupancy':>9} {'idle s':>7} {'fill':>6} {'batches':>7} "
          f"{'tokens':>7}  every wall (s)  data files")  # fmt: skip
    for name, t in timed.items():
        best = min(stats[name].values(), key=lambda s: s["wall"])
        print(f"{name:<10} {best['wall']:>7.2f} {best['busy']:>7.2f} {best['busy'] / best['wall']:>9.1%} "
              f"{best['wall'] - best['busy']:>7.2f} {best['fill']:>6.1%} {best['batches']:>7} {best['tokens']:>7}  "
              f"{' '.join(f'{x:.2f}' for x in t['all'])}  {sorted({s['files'] for s in stats[name].values()})}")  # fmt: skip
    for name, t in timed.items():
        print(f"{name:<10} wall {spread(t['all'])}")
    a, b = (timed[n]["best"] for n in ("per-part", "stream"))
    print(
        f"stream / per-part wall time: {b / a:.2f} (best); {timed['stream']['median'] / timed['per-part']['median']:.2f} (medians)"
    )
    result = timed["stream"]["result"]
    print(f"augmented {result['out']} of {result['in']} (quarantined {result['quarantined']})")
    if result["out"] < MIN_AUGMENTED * result["in"]:
        sys.exit(f"the teacher's text was not accepted: {result['out']} of {result['in']} records augmented "
                 f"(need {MIN_AUGMENTED:.0%}); use a teacher that writes accepted text (e.g. --model tiny --temperature 0 --max-new-tokens 48)")  # fmt: skip


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def measure_threads(args) -> None:
    import torch

    from teacherlm_core.engines import GenerationParams, get_engine
    from teacherlm_core.engines.vllm import _set_cpu_threads

    before = torch.get_num_threads()
    engine = get_engine("vllm", args.model, enforce_eager=True, enable_prefix_caching=False)
    print(f"torch threads: {before} in the process before vLLM, {torch.get_num_threads()} inside the engine "
          f"(engine.cpu_threads={engine.cpu_threads}); CPUs allowed: {len(os.sched_getaffinity(0))}")  # fmt: skip
    prompts = [
        f"Q: What is {i} plus {i}? A: The answer is ({i}). Let's think step by step." for i in range(16)
    ]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)  # greedy: the same tokens on each side

    def at(n: int):
        def run(r: int) -> int:
            _set_cpu_threads(n)
            return sum(g.num_tokens for g in engine.generate(prompts, params))

        return run

    timed = side_by_side({"1 thread": at(1), "2 threads": at(2)}, repeats=args.repeats,
                         warm_up={"warm": lambda: engine.generate(prompts[:4], params)})  # fmt: skip
    _set_cpu_threads(engine.cpu_threads)
    print(f"vLLM {args.model}, enforce_eager, {len(prompts)} greedy requests of {args.max_new_tokens} tokens; "
          f"best of {args.repeats}, order alternated")  # fmt: skip
    for name, t in timed.items():
        print(
            f"{name:<10} {t['result'] / t['best']:>8.1f} tok/s   every run (s): {' '.join(f'{x:.2f}' for x in t['all'])}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--engine", action="append", choices=["hf", "vllm"], help="engines to compare (repeatable)"
    )
    ap.add_argument(
        "--model", default="smollm2-135m-instruct", help="a model name or path, or tiny (the tests' teacher)"
    )
    ap.add_argument("--samples", type=int, default=16, help="records in the shard (three requests each)")
    ap.add_argument("--part-size", type=int, default=4, help="records per part")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-retries", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16, help="HF batch size; vLLM max_num_seqs")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side (the best counts)")
    ap.add_argument("--threads", action="store_true", help="measure vLLM's CPU threads instead")
    args = ap.parse_args()
    if args.threads:
        measure_threads(args)
    else:
        args.engine = args.engine or ["hf", "vllm"]
        compare_paths(args)


if __name__ == "__main__":
    main()
