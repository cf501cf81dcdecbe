"""Training throughput: the student recipe (2 gloo ranks, DeepSpeed ZeRO-2) vs a plain torch loop.

One run, one model (random-init Llama, ~20M parameters, so compute matters), the built-in
augmented suite packed into blocks of ``--max-length`` tokens. Both train the same blocks at the
same global batch (per-device batch x 2 ranks for the recipe; all of it in one process, on all
cores, for the loop) with AdamW in fp32. Prints real (non-pad) tokens/s of each over the steps
after warm-up, their ratio (goal >= 0.9x), and the share of real tokens after packing (goal >= 95%).

    python benchmarks/train_throughput.py [--steps 10] [--per-device-batch 4] [--max-length 512]

On a shared machine the plain loop runs before and after the recipe and the median of both
counts; the 1-minute load average at each phase is in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def pack_like_the_recipe(model_dir: str, data: str, texts_config, seed: int):
    """The same blocks the recipe trains on (texts, tokens and packing are deterministic)."""
    import torch
    from transformers import AutoTokenizer

    from teacherlm_core.train.packing import pack, tokenize
    from teacherlm_core.train.texts import build_texts, load_training_samples

    kinds = texts_config.kinds()
    texts, _ = build_texts(load_training_samples(data, kinds), kinds, texts_config.weights, seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    packed = pack(
        tokenize(tokenizer, texts, texts_config.loss), texts_config.max_length, tokenizer.pad_token_id
    )
    names = ("input_ids", "loss_mask", "position_ids", "real_mask")
    return {k: torch.from_numpy(getattr(packed, k)) for k in names}, packed.stats


def plain_loop(model_dir: str, tensors, global_batch: int, steps: int, lr: float, seed: int) -> list[dict]:
    """The baseline: one process, a shuffled pass over the same blocks, forward/backward/AdamW."""
    import torch
    from transformers import AutoModelForCausalLM

    from teacherlm_core.train.batches import collate

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    order = torch.randperm(tensors["input_ids"].shape[0]).tolist()
    lines = []
    for step in range(steps):
        idx = order[step * global_batch : (step + 1) * global_batch]
        batch = collate([{k: v[i] for k, v in tensors.items()} for i in idx])
        start = time.perf_counter()
        out = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            labels=batch["labels"],
            use_cache=False,
        )
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        lines.append(
            {"step": step + 1, "loss": out.loss.item(), "tokens_per_s": int(batch["num_real"]) / seconds}
        )
        print(
            f"[plain] step {step + 1}/{steps} loss {out.loss.item():.4f} {lines[-1]['tokens_per_s']:,.0f} tok/s"
        )
    return lines


def steady(lines: list[dict], warmup: int) -> float:
    return statistics.median(m["tokens_per_s"] for m in lines[warmup:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of the medians")
    ap.add_argument("--per-device-batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--per-task", type=int, default=60, help="built-in items per task family")
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args()

    from teacherlm_core.data import build_builtin
    from teacherlm_core.tiny import build_tiny_model
    from teacherlm_core.train import load_config, train_student

    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    os.environ.setdefault("TEACHERLM_WORKDIR", str(root / "work"))
    model = str(build_tiny_model(root / "model", preset="small", seed=0))
    build_builtin(root / "data", per_task=args.per_task, seed=0)
    lr = 3e-4
    config = load_config(
        "student",
        None,
        {
            "model": model,
            "data": str(root / "data" / "train.jsonl"),
            "output": str(root / "student"),
            "track": False,
            "texts": {"max_length": args.max_length},
            "train": {
                "lr": lr,
                "lr_scheduler": "constant",
                "per_device_batch_size": args.per_device_batch,
                "max_steps": args.steps,
                "save_steps": args.steps,  # one checkpoint, after the last timed step
                "seed": 0,
            },
            "launch": {"deepspeed": "zero2", "nproc_per_node": args.nproc},
        },
    )
    # The machine may be shared: the plain loop runs before and after the recipe and both count.
    tensors, stats = pack_like_the_recipe(model, config.data, config.texts, seed=0)
    global_batch = args.per_device_batch * args.nproc
    load = [os.getloadavg()[0]]
    before = plain_loop(model, tensors, global_batch, args.steps, lr, seed=0)
    load.append(os.getloadavg()[0])
    started = time.perf_counter()
    result = train_student(config)
    recipe_wall = time.perf_counter() - started
    recipe = [json.loads(line) for line in (root / "student" / "metrics.jsonl").read_text().splitlines()]
    assert stats.to_dict() == result.packing, "the loop must train the recipe's blocks"
    load.append(os.getloadavg()[0])
    after = plain_loop(model, tensors, global_batch, args.steps, lr, seed=0)
    load.append(os.getloadavg()[0])

    from safetensors.torch import load_file

    recipe_tps = steady(recipe, args.warmup)
    plain_tps = statistics.median(m["tokens_per_s"] for m in before[args.warmup :] + after[args.warmup :])
    report = {
        "model_parameters": sum(t.numel() for t in load_file(f"{model}/model.safetensors").values()),
        "global_batch_blocks": global_batch,
        "max_length": args.max_length,
        "steps": args.steps,
        "cpu_count": os.cpu_count(),
        "load_average_1min": load,
        "recipe": {
            "ranks": args.nproc,
            "deepspeed": "ZeRO-2",
            "tokens_per_s_median": round(recipe_tps, 1),
            "tokens_per_s_best": round(max(m["tokens_per_s"] for m in recipe), 1),
            "wall_s_with_startup": round(recipe_wall, 1),
            "final_loss": recipe[-1]["loss"],
        },
        "plain_torch_loop": {
            "tokens_per_s_median": round(plain_tps, 1),
            "tokens_per_s_best": round(max(m["tokens_per_s"] for m in before + after), 1),
            "median_before_recipe": round(steady(before, args.warmup), 1),
            "median_after_recipe": round(steady(after, args.warmup), 1),
            "final_loss": after[-1]["loss"],
        },
        "ratio_recipe_over_plain": round(recipe_tps / plain_tps, 3),
        "ratio_of_best_steps": round(
            max(m["tokens_per_s"] for m in recipe) / max(m["tokens_per_s"] for m in before + after), 3
        ),
        "packing": result.packing,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\nrecipe {recipe_tps:,.0f} tok/s vs plain loop {plain_tps:,.0f} tok/s: "
        f"{recipe_tps / plain_tps:.2f}x (goal >= 0.9x); real tokens after packing "
        f"{100 * result.real_share:.1f}% (goal >= 95%)"
    )


if __name__ == "__main__":
    main()
