"""Augmentation throughput, measured side by side in one run on one model and one dataset.

(a) raw ``vllm.LLM.generate`` on exactly the prompts and sampling settings augment sends,
(b) ``teacherlm augment`` end to end (sharding, parts, quality checks, atomic writes, merge),
(c) the paper's released recipe shape: HF ``generate``, batch size 1, sampling (timed on a
    subset, since it is slow; tokens/s is what is compared).
Prints tokens/s of each, (b)/(a) and (b)/(c).

    python benchmarks/augment_throughput.py [--samples 2000] [--max-new-tokens 32] [--subset-c 60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--subset-c", type=int, default=60, help="requests timed for (c)")
    ap.add_argument("--preset", default="small", help="tiny-model preset (small: ~20M parameters)")
    args = ap.parse_args()

    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.augment.shard import STOP, request_seed
    from teacherlm_core.data import generate_builtin
    from teacherlm_core.engines import GenerationParams
    from teacherlm_core.engines.hf import HFEngine
    from teacherlm_core.engines.vllm import VLLMEngine
    from teacherlm_core.prompts import teacher_prompt
    from teacherlm_core.schema import FIELDS, Sample, write_jsonl
    from teacherlm_core.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-augment-"))
    records = generate_builtin(per_task=max(3, args.samples // 8 + 1), seed=0)[: args.samples]
    plain = [{k: r[k] for k in ("id", "task", "question", "choices", "answer")} for r in records]
    write_jsonl(work / "in.jsonl", plain)
    corpus = [r["question"] + " " + r["chain_of_thought"] for r in records]
    model = str(build_tiny_model(work / "model", preset=args.preset, seed=0, corpus=corpus))
    cfg = AugmentConfig(model=model, input=str(work / "in.jsonl"), output=str(work / "out"), engine="vllm",
                        max_new_tokens=args.max_new_tokens, max_retries=0, part_size=len(plain))  # fmt: skip
    samples = [Sample.model_validate(r) for r in plain]
    prompts = [teacher_prompt(s, f) for s in samples for f in FIELDS]
    params = [
        GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                         seed=request_seed(cfg.seed, s.id, f, 0), stop=STOP)
        for s in samples for f in FIELDS
    ]  # fmt: skip
    print(
        f"{len(samples)} samples, {len(prompts)} requests, max_new_tokens {cfg.max_new_tokens}, model {args.preset}"
    )

    # Started once, outside every timing. No prefix cache: (b) sends the prompts (a) just sent,
    # and cached prefixes would flatter whichever runs second.
    engine = VLLMEngine(model, enable_prefix_caching=False)
    rows = []
    t = time.perf_counter()
    raw = engine.llm.generate(prompts, [engine._sampling(p) for p in params], use_tqdm=False)
    secs = time.perf_counter() - t
    rows.append(("(a) raw vllm.LLM.generate", sum(len(o.outputs[0].token_ids) for o in raw) / secs, secs))

    t = time.perf_counter()
    manifest = augment(cfg, engine=lambda: engine)
    secs = time.perf_counter() - t
    rows.append(("(b) teacherlm augment, end to end", manifest["tokens_generated"] / secs, secs))

    hf = HFEngine(model, batch_size=1)
    sub = slice(0, args.subset_c)
    t = time.perf_counter()
    gens = [hf.generate([p], [q])[0] for p, q in zip(prompts[sub], params[sub], strict=True)]
    secs = time.perf_counter() - t
    rows.append(
        (
            f"(c) HF generate, batch 1, sampling ({args.subset_c} requests)",
            sum(g.num_tokens for g in gens) / secs,
            secs,
        )
    )

    print(f"\n{'system':<58} {'tokens/s':>10} {'seconds':>9}")
    for name, tps, secs in rows:
        print(f"{name:<58} {tps:>10.1f} {secs:>9.1f}")
    a, b, c = (r[1] for r in rows)
    print(f"\n(b)/(a) = {b / a:.2f}   (b)/(c) = {b / c:.1f}")
    print(f"augment counts: {manifest['counts']}")


if __name__ == "__main__":
    main()
