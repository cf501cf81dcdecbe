"""Eval throughput: teacherlm's rank classification vs lm-evaluation-harness's HF backend.

One run, one model (random-init Llama, ~20M parameters, so compute matters), the same 1,000
multiple-choice items (2-5 choices) scored by both; prints items/s of each, the ratio, and
whether predictions are identical and log-likelihoods agree.

    python benchmarks/eval_throughput.py [--items 1000] [--batch-size 32] [--vllm]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


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


def run_lm_eval(model: str, samples, batch_size: int) -> list[float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from teacherlm_core.prompts import rank_candidates, rank_context

    lm = HFLM(pretrained=model, batch_size=batch_size, device="cpu", dtype="float32")
    reqs = [
        Instance(request_type="loglikelihood", doc={}, arguments=(rank_context(s), c), idx=i)
        for s in samples
        for i, c in enumerate(rank_candidates(s))
    ]
    return [ll for ll, _ in lm.loglikelihood(reqs, disable_tqdm=True)]


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

    rows = []
    t = time.perf_counter()
    ref = run_lm_eval(model, samples, args.batch_size)
    rows.append(("lm-eval 0.4.13 HF backend", time.perf_counter() - t, ref))

    engine = HFEngine(model, batch_size=args.batch_size)
    t = time.perf_counter()
    ours = [x for s in rank_classify(engine, samples) for x in s.choice_loglikelihoods]
    rows.append(("teacherlm eval (hf engine)", time.perf_counter() - t, ours))

    if args.vllm:
        from teacherlm_core.engines.vllm import VLLMEngine

        t0 = time.perf_counter()
        v = VLLMEngine(model)
        start = time.perf_counter() - t0
        t = time.perf_counter()
        vl = [x for s in rank_classify(v, samples) for x in s.choice_loglikelihoods]
        rows.append((f"teacherlm eval (vllm engine; +{start:.1f}s start-up)", time.perf_counter() - t, vl))

    base_items = len(samples) / rows[0][1]
    ref_pred = predictions(samples, ref)
    print(f"\n{'system':<50} {'items/s':>9} {'ratio':>7} {'identical':>10} {'max |dLL|':>10}")
    for name, secs, lls in rows:
        ips = len(samples) / secs
        same = predictions(samples, lls) == ref_pred
        diff = max(abs(a - b) for a, b in zip(lls, ref, strict=True))
        print(f"{name:<50} {ips:>9.1f} {ips / base_items:>6.2f}x {same!s:>10} {diff:>10.2e}")


if __name__ == "__main__":
    main()
