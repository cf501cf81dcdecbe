"""Eval throughput: teacherlm's rank classification vs lm-evaluation-harness's HF backend.

One run, one model (random-init Llama, ~20M parameters, so compute matters), the same 1,000
multiple-choice items (2-5 choices) scored by both. Like with like: both models are loaded
before any timing, both sides are warmed up on the same 64 items, the order alternates between
repeats and the best of ``--repeats`` counts. Prints items/s of each (best, and every run), the
ratio, and whether predictions are identical and log-likelihoods agree.

    python benchmarks/eval_throughput.py [--items 1000] [--batch-size 32] [--repeats 3] [--vllm]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' shared timing helper

from _timing import side_by_side


def make_items(n: int, seed: int = 0):
    from teacherlm_core.schema import Sample
    from teacherlm_core.tiny import _WORDS

    rng = random.Random(seed)
    items = []
    for i in range(n):
        choices = rng.sample(_WORDS, 2 + i % 4)
        question = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 30)))
        items.append(
            Sample(
                id=str(i),
                task=f"t{i % 4}",
                question=question + "?",
                choices=choices,
                answer=rng.choice(choices),
            )
        )
    return items


def lm_eval_requests(samples):
    from lm_eval.api.instance import Instance

    from teacherlm_core.prompts import rank_candidates, rank_context

    return [
        Instance(request_type="loglikelihood", doc={}, arguments=(rank_context(s), c), idx=i)
        for s in samples
        for i, c in enumerate(rank_candidates(s))
    ]


def predictions(samples, flat: list[float]) -> list[int]:
    out, pos = [], 0
    for s in samples:
        lls = flat[pos : pos + len(s.choices)]
        pos += len(s.choices)
        out.append(max(range(len(lls)), key=lambda i: (lls[i], -i)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side (the best counts)")
    ap.add_argument("--vllm", action="store_true", help="also time the vLLM engine")
    args = ap.parse_args()

    import torch

    from teacherlm_core.engines.hf import HFEngine
    from teacherlm_core.evaluate import rank_classify
    from teacherlm_core.tiny import build_tiny_model

    model = str(build_tiny_model(tempfile.mkdtemp(prefix="bench-eval-"), preset="small", seed=0))
    samples = make_items(args.items)
    n_params = sum(p.numel() for p in HFEngine(model).model.parameters())
    print(
        f"model: random Llama, {n_params / 1e6:.1f}M parameters; {len(samples)} items, "
        f"{sum(len(s.choices) for s in samples)} choices; torch threads {torch.get_num_threads()}"
    )

    from lm_eval.models.huggingface import HFLM

    # Every model loaded before any timing: the timings compare scoring, not loading.
    lm = HFLM(pretrained=model, batch_size=args.batch_size, device="cpu", dtype="float32")
    engine = HFEngine(model, batch_size=args.batch_size)
    requests, few = lm_eval_requests(samples), samples[:64]
    sides = {
        "lm-eval 0.4.13 HF backend": lambda r: [ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)],
        "teacherlm eval (hf engine)": lambda r: [x for s in rank_classify(engine, samples) for x in s.choice_loglikelihoods],
    }  # fmt: skip
    warm = {
        "lm-eval": lambda: lm.loglikelihood(lm_eval_requests(few), disable_tqdm=True),
        "teacherlm": lambda: rank_classify(engine, few),
    }
    if args.vllm:
        from teacherlm_core.engines.vllm import VLLMEngine

        v = VLLMEngine(model)
        sides["teacherlm eval (vllm engine)"] = lambda r: [
            x for s in rank_classify(v, samples) for x in s.choice_loglikelihoods
        ]
        warm["vllm"] = lambda: rank_classify(v, few)
    timed = side_by_side(sides, repeats=args.repeats, warm_up=warm)
    rows = [(name, t["best"], t["result"], t["all"]) for name, t in timed.items()]
    ref = rows[0][2]

    base_items = len(samples) / rows[0][1]
    ref_pred = predictions(samples, ref)
    print(f"\nbest of {args.repeats}, warm, order alternated")
    print(f"{'system':<34} {'items/s':>9} {'ratio':>7} {'identical':>10} {'max |dLL|':>10}  every run (s)")
    for name, secs, lls, every in rows:
        ips = len(samples) / secs
        same = predictions(samples, lls) == ref_pred
        diff = max(abs(a - b) for a, b in zip(lls, ref, strict=True))
        runs = " ".join(f"{x:.1f}" for x in every)
        print(f"{name:<34} {ips:>9.1f} {ips / base_items:>6.2f}x {same!s:>10} {diff:>10.2e}  {runs}")


if __name__ == "__main__":
    main()
