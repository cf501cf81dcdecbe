"""Augmentation throughput, measured side by side in one run on one model and the same requests.

(a) raw ``vllm.LLM.generate`` on exactly the prompts and sampling settings augment sends,
(b) ``teacherlm augment`` end to end (sharding, parts, quality checks, atomic writes, merge),
(c) the paper's released recipe shape: HF ``generate``, batch size 1, sampling.
Like with like: every side gets the same requests, every engine is started and warmed up before
any timing (no prefix cache), the order alternates between repeats and the best of
``--repeats`` counts. Prints tokens/s of each, (b)/(a) and (b)/(c).

    python benchmarks/augment_throughput.py [--samples 100] [--max-new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' shared timing helper

from _timing import side_by_side


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100, help="samples (three requests each) for every side")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side (the best counts)")
    ap.add_argument("--preset", default="small", help="tiny-model preset (small: ~20M parameters)")
    args = ap.parse_args()

    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.augment.shard import STOP
    from teacherlm_core.data import generate_builtin
    from teacherlm_core.engines import GenerationParams, request_seed
    from teacherlm_core.engines.hf import HFEngine
    from teacherlm_core.engines.vllm import VLLMEngine
    from teacherlm_core.errors import DataError
    from teacherlm_core.prompts import teacher_prompt
    from teacherlm_core.records import write_jsonl
    from teacherlm_core.schema import FIELDS, Sample
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
    hf = HFEngine(model, batch_size=1)
    sampling = [engine._sampling(p) for p in params]

    def raw(r: int) -> int:
        out = engine.llm.generate(prompts, sampling, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in out)

    def end_to_end(r: int) -> int:  # a fresh output each run: a finished one would be served, not generated
        out = work / f"out-{r}"
        # A random-init teacher may have every record quarantined (DataError): the work was still done.
        with contextlib.suppress(DataError):
            augment(cfg.model_copy(update={"output": str(out)}), engine=lambda: engine)
        return json.loads((out / "manifest.json").read_text())["tokens_generated"]

    def paper_shape(r: int) -> int:
        return sum(hf.generate([p], [q])[0].num_tokens for p, q in zip(prompts, params, strict=True))

    warm = {"vllm": lambda: engine.llm.generate(prompts[:8], sampling[:8], use_tqdm=False),
            "hf": lambda: hf.generate(prompts[:2], params[:2])}  # fmt: skip
    timed = side_by_side(
        {"(a) raw vllm.LLM.generate": raw, "(b) teacherlm augment, end to end": end_to_end,
         "(c) HF generate, batch 1, sampling": paper_shape},
        repeats=args.repeats, warm_up=warm,
    )  # fmt: skip
    rows = [(name, t["result"] / t["best"], t["best"], t["all"]) for name, t in timed.items()]
    manifest = json.loads((work / f"out-{args.repeats - 1}" / "manifest.json").read_text())

    print(f"\nbest of {args.repeats}, warm, order alternated; every side: the same {len(prompts)} requests")
    print(f"{'system':<40} {'tokens/s':>10} {'seconds':>9}  every run (s)")
    for name, tps, secs, every in rows:
        print(f"{name:<40} {tps:>10.1f} {secs:>9.1f}  {' '.join(f'{x:.1f}' for x in every)}")
    a, b, c = (r[1] for r in rows)
    print(f"\n(b)/(a) = {b / a:.2f}   (b)/(c) = {b / c:.1f}")
    print(f"augment counts: {manifest['counts']}")


if __name__ == "__main__":
    main()
