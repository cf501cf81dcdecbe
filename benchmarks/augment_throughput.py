"""Augmentation throughput, side by side in one run: one teacher, the same requests on every side.

(a) raw ``vllm.LLM.generate`` on exactly the prompts and sampling settings augment sends,
(b) ``teacherlm augment`` end to end with the vLLM engine (plan, parts, quality checks, atomic
    writes, merge),
(c) raw HF batched ``model.generate`` (batches of ``--batch-size``, left-padded, the same stop
    strings), and
(d) ``teacherlm augment`` end to end with the HF engine (the same batch size).
The teacher writes accepted text: the tiny trained teacher the tests use (default, ~0.6M
parameters: the pipeline's own cost shows) or a real model (``--teacher smollm2-135m-instruct``:
the model's cost dominates, as in production). The run fails if fewer than 90% of the records
are augmented on any end-to-end side. Every engine is started and warmed up before any timing
(no prefix cache), the order alternates between repeats, and every run is printed with its
spread. Goals (issue 25): (b) at least 0.95x (a), (d) at least 0.95x (c), as the ratio of the
median seconds for the same requests.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/augment_throughput.py [--teacher tiny] \\
        [--samples 64] [--max-new-tokens 48] [--repeats 3] [--no-vllm]

Measured 2026-12-06 (docs/scale.md, "Measured: augmentation end to end against the raw engines"):
tiny teacher, 768 requests: (b)/(a) 0.89x, (d)/(c) 0.92x (goals missed by 6% and 3%: augment's
own ~1-2 ms a sample shows next to a 0.6M-parameter model), 98% augmented; SmolLM2-135M, 96
requests: 0.97x and 1.03x, but only 59% augmented (the untuned model), so that run fails the gate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' shared timing helper

from _timing import side_by_side, spread

GOAL, MIN_AUGMENTED = 0.95, 0.9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--teacher", default="tiny", help="tiny (the tests' trained teacher) or a model name/path"
    )
    ap.add_argument("--samples", type=int, default=64, help="samples (three requests each) for every side")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.0, help="0: greedy, as the demo augments")
    ap.add_argument("--batch-size", type=int, default=32, help="HF sides: rows per batch")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side, each printed")
    ap.add_argument("--no-vllm", action="store_true", help="only the HF sides (c) and (d)")
    args = ap.parse_args()

    import torch

    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.augment.shard import STOP
    from teacherlm_core.data import generate_builtin
    from teacherlm_core.engines import GenerationParams, request_seed
    from teacherlm_core.engines.hf import HFEngine
    from teacherlm_core.models import resolve_model
    from teacherlm_core.prompts import teacher_prompt
    from teacherlm_core.records import write_jsonl
    from teacherlm_core.schema import FIELDS, Sample
    from teacherlm_core.tiny import build_tiny_teacher

    work = Path(tempfile.mkdtemp(prefix="bench-augment-"))
    # Questions the tiny teacher was not trained on (it saw generate_builtin's seed 7).
    records = generate_builtin(per_task=max(3, args.samples // 8 + 1), seed=0)[: args.samples]
    plain = [{k: r[k] for k in ("id", "task", "question", "choices", "answer")} for r in records]
    write_jsonl(work / "in.jsonl", plain)
    model = (
        str(build_tiny_teacher(work / "teacher")) if args.teacher == "tiny" else resolve_model(args.teacher)
    )
    cfg = AugmentConfig(model=model, input=str(work / "in.jsonl"), output=str(work / "out"), engine="vllm",
                        max_new_tokens=args.max_new_tokens, temperature=args.temperature, max_retries=0,
                        part_size=len(plain))  # fmt: skip
    samples = [Sample.model_validate(r) for r in plain]
    prompts = [teacher_prompt(s, f) for s in samples for f in FIELDS]
    params = [
        GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                         seed=request_seed(cfg.seed, s.id, f, 0), stop=STOP)
        for s in samples for f in FIELDS
    ]  # fmt: skip
    print(f"teacher {args.teacher}; {len(samples)} samples, {len(prompts)} requests, max_new_tokens "
          f"{cfg.max_new_tokens}, temperature {cfg.temperature}; torch threads {torch.get_num_threads()}")  # fmt: skip

    # Every engine started once, outside every timing.
    hf = HFEngine(model, batch_size=args.batch_size)
    manifests: dict[str, dict] = {}

    def end_to_end(engine, kind: str):
        def run(r: int) -> int:  # a fresh output each run: a finished one would be served, not generated
            out = work / f"out-{kind}-{r}"
            augment(cfg.model_copy(update={"output": str(out), "engine": kind}), engine=lambda: engine)
            manifests[kind] = json.loads((out / "manifest.json").read_text())
            return manifests[kind]["tokens_generated"]

        return run

    def raw_hf(r: int) -> int:
        tok, lm, n = hf.tokenizer, hf.model, 0
        tok.padding_side = "left"
        sampling = {"do_sample": cfg.temperature > 0}
        if cfg.temperature > 0:
            sampling |= {"temperature": cfg.temperature, "top_p": cfg.top_p}
        for i in range(0, len(prompts), args.batch_size):
            enc = tok(
                prompts[i : i + args.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            )
            with torch.inference_mode():
                out = lm.generate(**enc, max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
                                  stop_strings=list(STOP), tokenizer=tok, **sampling)  # fmt: skip
            # tokens each row generated: up to its EOS or stop, the padding after it not counted
            n += int((out[:, enc["input_ids"].shape[1] :] != tok.pad_token_id).sum())
        return n

    sides = {"(c) raw HF batched generate": raw_hf, "(d) teacherlm augment, HF engine": end_to_end(hf, "hf")}
    warm = {"hf": lambda: (raw_hf(0), hf.generate(prompts[:8], params[:8]))}
    if not args.no_vllm:
        from teacherlm_core.engines.vllm import VLLMEngine

        # No prefix cache: (b) sends the prompts (a) just sent, and cached prefixes would flatter
        # whichever runs second. Eager: starts in seconds on CPU instead of minutes of compiling.
        engine = VLLMEngine(model, enable_prefix_caching=False, enforce_eager=True)
        sampling = [engine._sampling(p) for p in params]

        def raw_vllm(r: int) -> int:
            return sum(
                len(o.outputs[0].token_ids) for o in engine.llm.generate(prompts, sampling, use_tqdm=False)
            )

        sides = {"(a) raw vllm.LLM.generate": raw_vllm, "(b) teacherlm augment, vLLM engine": end_to_end(engine, "vllm")} | sides  # fmt: skip
        warm["vllm"] = lambda: engine.llm.generate(prompts[:8], sampling[:8], use_tqdm=False)
    timed = side_by_side(sides, repeats=args.repeats, warm_up=warm)

    print(
        f"\n{args.repeats} runs per side, warm, order alternated; every side: the same {len(prompts)} requests"
    )
    print(f"{'system':<36} {'tokens/s':>9}  seconds")
    for name, t in timed.items():
        print(f"{name:<36} {t['result'] / t['median']:>9.1f}  {spread(t['all'])}")
    failed = []
    for kind, raw, ours in (("vllm", "(a)", "(b)"), ("hf", "(c)", "(d)")):
        if kind not in manifests:
            continue
        (a,) = (t for n, t in timed.items() if n.startswith(raw))
        (b,) = (t for n, t in timed.items() if n.startswith(ours))
        pairs = [x / y for x, y in zip(a["all"], b["all"], strict=True)]
        ratio = a["median"] / b["median"]
        verdict = "met" if ratio >= GOAL else f"MISSED by {1 - ratio / GOAL:.0%}"
        counts = manifests[kind]["counts"]
        print(f"{ours}/{raw} = {ratio:.2f}x (median seconds, same requests); per repeat {min(pairs):.2f}-"
              f"{max(pairs):.2f}x (median {statistics.median(pairs):.2f}); goal >= {GOAL}x: {verdict}; "
              f"augmented {counts['output']} of {counts['input']} (quarantined {counts['quarantined']})")  # fmt: skip
        if counts["output"] < MIN_AUGMENTED * counts["input"]:
            failed.append(f"{kind}: {counts['output']} of {counts['input']} records augmented")
    if failed:
        sys.exit(f"the teacher's text was not accepted (need {MIN_AUGMENTED:.0%}): {'; '.join(failed)}")


if __name__ == "__main__":
    main()
