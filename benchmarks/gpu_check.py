"""GPU check: the project's first GPU figures, from one script a bare single-GPU machine runs in minutes.

    bash benchmarks/gpu_check.sh                          # wheels from ./wheels if needed, then this
    python benchmarks/gpu_check.py --out gpu_check.json   # on the GPU (bf16), SmolLM2-135M's shape
    python benchmarks/gpu_check.py --quick --out x.json   # the CPU fallback: float32, the tiny test
                                                          # model, a few items (CI: tests/test_gpu_check.py)

Measures, side by side on the same requests (warm, order alternated, every run kept):
1. generation: teacherlm's HF engine vs raw batched ``model.generate`` (batches of 32, greedy,
   the same prompts and stop strings), tokens/s;
2. eval: teacherlm's rank classification (HF engine) vs lm-evaluation-harness's HF backend on
   the same items, items/s, with agreement of predictions and the largest log-likelihood gap
   (``gpu_check.sh`` installs lm_eval from the wheels beside the tree; were it missing, its side
   is left out and the JSON says so);
3. training: one optimizer step (AdamW, bf16 autocast on the GPU) on a batch shaped like the
   student recipe's (``student.yaml``'s per-device batch, sequence length and gradient
   checkpointing), seconds.
The model is ``--model`` (a local path or a named model) or, by default, a random-init Llama with
SmolLM2-135M's shape (the real weights are 98 MB and do not travel; throughput depends on the
shape, not the values; generation is greedy with ``min_new_tokens`` so every side decodes as
many tokens). Writes one JSON: the device, the settings and every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' shared timing helper

from _timing import side_by_side

# SmolLM2-135M(-Instruct)'s architecture (its config.json), random weights.
SMOLLM2_SHAPE = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                 "num_key_value_heads": 3, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
                 "rope_theta": 100000.0, "tie_word_embeddings": True, "vocab_size": 49152}  # fmt: skip


def build_model(where: Path, shape: str, device: str) -> str:
    """A model directory: the tiny test model, or SmolLM2-135M's shape (its 49,152-token head too)
    with the tiny model's tokenizer (ids past its vocabulary decode to nothing)."""
    from teacherlm_core.tiny import build_tiny_model

    path = build_tiny_model(where, preset="tiny", seed=0)
    if shape == "smollm2":
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(path)
        for key, value in SMOLLM2_SHAPE.items():
            setattr(config, key, value)
        config.head_dim = config.hidden_size // config.num_attention_heads
        AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return str(path)


def summary(t: dict, work: float, unit: str) -> dict:
    return {f"{unit}_per_s": round(work / t["median"], 2), "median_s": round(t["median"], 4),
            "runs_s": [round(x, 4) for x in t["all"]]}  # fmt: skip


def check_generation(
    model: str, device: str, dtype: str, requests: int, new_tokens: int, repeats: int
) -> dict:
    import torch

    from teacherlm_core.augment.shard import STOP
    from teacherlm_core.engines import GenerationParams
    from teacherlm_core.engines.hf import HFEngine

    engine = HFEngine(model, batch_size=32, dtype=dtype, device=device)
    tok, lm = engine.tokenizer, engine.model
    prompts = [f"Q: Question number {i} about the world? A: The answer is (A). Let's think step by step." for i in range(requests)]  # fmt: skip
    lm.generation_config.min_new_tokens = new_tokens  # every row decodes the same count on both sides

    def raw(r: int) -> int:
        tok.padding_side, n = "left", 0
        for i in range(0, len(prompts), 32):
            enc = tok(prompts[i : i + 32], return_tensors="pt", padding=True, add_special_tokens=False).to(
                device
            )
            with torch.inference_mode():
                out = lm.generate(**enc, do_sample=False, max_new_tokens=new_tokens, pad_token_id=tok.pad_token_id,
                                  stop_strings=list(STOP), tokenizer=tok)  # fmt: skip
            n += out[:, enc["input_ids"].shape[1] :].numel()
        if device == "cuda":
            torch.cuda.synchronize()
        return n

    def ours(r: int) -> int:
        return sum(
            g.num_tokens
            for g in engine.generate(prompts, GenerationParams(max_new_tokens=new_tokens, stop=STOP))
        )

    timed = side_by_side(
        {"raw": raw, "teacherlm": ours}, repeats=repeats, warm_up={"warm": lambda: raw(0) and ours(0)}
    )
    tokens = timed["raw"]["result"]
    return {"requests": requests, "new_tokens": new_tokens, "tokens": tokens,
            "raw_generate": summary(timed["raw"], tokens, "tokens"),
            "teacherlm_hf_engine": summary(timed["teacherlm"], timed["teacherlm"]["result"], "tokens"),
            "speed_ratio": round(timed["raw"]["median"] / timed["teacherlm"]["median"], 3)}  # fmt: skip


def check_eval(model: str, device: str, dtype: str, items: int, repeats: int) -> dict:
    from eval_throughput import lm_eval_requests, make_items, predictions

    from teacherlm_core.engines.hf import HFEngine
    from teacherlm_core.evaluate import rank_classify

    samples = make_items(items)
    engine = HFEngine(model, batch_size=32, dtype=dtype, device=device)
    sides = {
        "teacherlm": lambda r: [x for s in rank_classify(engine, samples) for x in s.choice_loglikelihoods]
    }
    warm = {"teacherlm": lambda: rank_classify(engine, samples[:32])}
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError as exc:
        lm = None
        note = f"lm-evaluation-harness not installed ({exc}): its side left out"
    else:
        lm = HFLM(pretrained=model, batch_size=32, device=device, dtype=dtype)
        requests, note = lm_eval_requests(samples), None
        sides["lm_eval"] = lambda r: [ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)]
        warm["lm_eval"] = lambda: lm.loglikelihood(lm_eval_requests(samples[:32]), disable_tqdm=True)
    timed = side_by_side(sides, repeats=repeats, warm_up=warm)
    out = {"items": items, "teacherlm_hf_engine": summary(timed["teacherlm"], items, "items")}
    if lm is not None:
        ours, theirs = timed["teacherlm"]["result"], timed["lm_eval"]["result"]
        out |= {"lm_eval_hf": summary(timed["lm_eval"], items, "items"),
                "speed_ratio": round(timed["lm_eval"]["median"] / timed["teacherlm"]["median"], 3),
                "same_predictions": predictions(samples, ours) == predictions(samples, theirs),
                "max_abs_loglikelihood_diff": max(abs(a - b) for a, b in zip(ours, theirs, strict=True))}  # fmt: skip
    return out | ({"note": note} if note else {})


def check_train_step(model: str, device: str, config: str, steps: int = 3) -> dict:
    """Optimizer steps on one batch shaped as ``config``'s (the first warms up); the fastest of the rest."""
    import torch
    import yaml
    from transformers import AutoModelForCausalLM

    from teacherlm_core.train.config import shipped_config_path

    recipe = yaml.safe_load(shipped_config_path(config).read_text())
    batch, length = recipe["train"]["per_device_batch_size"], recipe["texts"]["max_length"]
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).to(device).train()
    if recipe["train"].get("gradient_checkpointing"):
        lm.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(lm.parameters(), lr=1e-4)
    ids = torch.randint(
        0, lm.config.vocab_size, (batch, length), generator=torch.Generator().manual_seed(0)
    ).to(device)
    seconds = []
    for _ in range(steps):  # the first one warms up (allocations, kernels)
        t = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = lm(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t)
    return {"config": config, "batch": batch, "max_length": length,
            "gradient_checkpointing": bool(recipe["train"].get("gradient_checkpointing")), "step_s": round(min(seconds[1:]), 4),
            "tokens_per_s": round(batch * length / min(seconds[1:]), 1), "runs_s": [round(x, 4) for x in seconds]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument(
        "--model", default=None, help="a local path or named model (default: SmolLM2-135M's shape)"
    )
    ap.add_argument(
        "--quick",
        "--cpu-fallback",
        action="store_true",
        help="the CPU fallback, in seconds: float32, the tiny test model, a few items (CI)",
    )
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per side (default: 3; --quick: 1)")
    args = ap.parse_args(argv)

    import torch

    t0 = time.perf_counter()
    gpu = torch.cuda.is_available() and not args.quick
    repeats = args.repeats or (3 if gpu else 1)
    device, dtype = ("cuda", "bfloat16") if gpu else ("cpu", "float32")
    if args.model:
        from teacherlm_core.models import resolve_model

        model = resolve_model(args.model)
    else:
        model = build_model(Path(tempfile.mkdtemp(prefix="gpu-check-")), "smollm2" if gpu else "tiny", device)
    sizes = (
        {"requests": 256, "new_tokens": 128, "items": 1000, "train_steps": 3}
        if gpu
        else {"requests": 8, "new_tokens": 8, "items": 24, "train_steps": 2}
    )
    report = {
        "device": torch.cuda.get_device_name(0) if gpu else "cpu (fallback)",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "model": args.model or ("random-init, SmolLM2-135M shape" if gpu else "tiny (tests)"), "dtype": dtype,
        "generation": check_generation(model, device, dtype, sizes["requests"], sizes["new_tokens"], repeats),
        "eval": check_eval(model, device, dtype, sizes["items"], repeats),
        "train_step": check_train_step(model, device, "student" if gpu else "student_tiny", sizes["train_steps"]),
    }  # fmt: skip
    report["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
