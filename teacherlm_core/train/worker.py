"""The training recipe as every rank runs it: the stages of a :class:`~.stage.Plan`, in order.

    torchrun --nproc_per_node 2 -m teacherlm_core.train.worker PLAN.json

(:mod:`.launch` builds that command; one process runs it in-process when there is one rank and
no DeepSpeed.) Each stage reads top to bottom: training arguments, model, packed blocks,
trainer, train (resuming when the plan says so), save the consolidated model, card, marker.

Found the hard way, and handled here:

* DeepSpeed must own the process group before the model exists: ZeRO-3 partitions weights as
  they load, and a DeepSpeed config computed before ``init_distributed`` sees one process.
* A misconfigured launch can silently train on one process; :class:`EngagedCheck` stops the
  run at the first step unless the engine, ZeRO stage and world size are the expected ones.
* Nodes may or may not share a file system; a probe decides who writes and uploads what.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batches import PackedBlocks, QuestionRows, collate, collate_questions
from .outputs import CHECKPOINT_MARKER, METRICS, SUCCESS, StageOutput, checkpoint_marker
from .stage import Plan, StageSpec
from .trainer import recipe_trainer_class

__all__ = ["main", "run_plan"]


@dataclass
class Dist:
    rank: int
    local_rank: int
    world_size: int
    cpu: bool
    shared_fs: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _setup_distributed(plan: Plan) -> Dist:
    import torch

    cpu = not torch.cuda.is_available()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != plan.world_size:
        raise RuntimeError(
            f"launched with WORLD_SIZE={world} but the plan needs {plan.world_size} ranks "
            f"({plan.nnodes} node(s)); check --nproc-per-node/--nnodes on every node"
        )
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not cpu:
        torch.cuda.set_device(local_rank)  # before NCCL starts, so each rank owns its GPU
    backend = "gloo" if cpu else "nccl"
    if any(s.deepspeed is not None for s in plan.stages if not s.done):
        import deepspeed

        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
    elif world > 1:
        torch.distributed.init_process_group(backend)
    if world > 1 and torch.distributed.get_world_size() != plan.world_size:
        raise RuntimeError(
            f"the process group has {torch.distributed.get_world_size()} ranks, not {plan.world_size}"
        )
    shared = _probe_shared_fs(Path(plan.stages[0].local), world, "cpu" if cpu else f"cuda:{local_rank}")
    return Dist(rank, local_rank, world, cpu, shared)


def _probe_shared_fs(where: Path, world: int, device: str) -> bool:
    """True when every rank sees a file that rank 0 just wrote (one machine, or a shared volume)."""
    if world == 1:
        return True
    import torch
    import torch.distributed as dist

    token = [f".probe-{uuid.uuid4().hex}" if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(token, src=0)
    probe = where / token[0]
    if dist.get_rank() == 0:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_text("probe")
    dist.barrier()
    seen = torch.tensor([1 if probe.exists() else 0], device=device)  # NCCL reduces GPU tensors only
    dist.all_reduce(seen, op=dist.ReduceOp.MIN)
    dist.barrier()
    if dist.get_rank() == 0:
        probe.unlink(missing_ok=True)
    return bool(seen.item())


def _callbacks(trainer, spec: StageSpec, dist: Dist, out: StageOutput) -> list[Any]:
    import torch
    from transformers import TrainerCallback

    from .ds_config import zero_stage

    expected_stage = zero_stage(spec.deepspeed)

    class EngagedCheck(TrainerCallback):
        """Stop before the first step unless the run is distributed exactly as planned."""

        def __init__(self):
            self.info: dict[str, Any] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            wrapped = trainer.model_wrapped
            problems = []
            if args.world_size != dist.world_size:
                problems.append(f"the trainer sees {args.world_size} process(es), not {dist.world_size}")
            if expected_stage is not None:
                import deepspeed

                if not isinstance(wrapped, deepspeed.DeepSpeedEngine):
                    problems.append(
                        f"the model is wrapped in {type(wrapped).__name__}, not a DeepSpeedEngine"
                    )
                else:
                    if wrapped.zero_optimization_stage() != expected_stage:
                        problems.append(
                            f"ZeRO stage {wrapped.zero_optimization_stage()}, not {expected_stage}"
                        )
                    if deepspeed.comm.get_world_size() != dist.world_size:
                        problems.append(f"DeepSpeed sees {deepspeed.comm.get_world_size()} ranks")
            elif dist.world_size > 1 and not isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
                problems.append(
                    f"the model is wrapped in {type(wrapped).__name__}, not DistributedDataParallel"
                )
            if problems:
                raise RuntimeError(
                    "distributed training is not engaged as configured: " + "; ".join(problems)
                )
            self.info = {
                "engine": type(wrapped).__name__,
                "zero_stage": expected_stage,
                "world_size": dist.world_size,
                "backend": torch.distributed.get_backend() if dist.world_size > 1 else None,
            }

    class MetricsLog(TrainerCallback):
        """One ``metrics.jsonl`` line per logged step; tokens/s counts real tokens of all ranks."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.t, self.tokens = time.perf_counter(), 0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            count = torch.tensor([trainer.real_tokens - self.tokens], dtype=torch.float64, device=args.device)
            if dist.world_size > 1:
                torch.distributed.all_reduce(count)
            now = time.perf_counter()
            rate = float(count.item()) / max(now - self.t, 1e-9)
            self.t, self.tokens = now, trainer.real_tokens
            if dist.is_main:
                line = {
                    "step": state.global_step,
                    "loss": logs["loss"],
                    "lr": logs.get("learning_rate"),
                    "tokens_per_s": round(rate, 2),
                    "tokens": int(count.item()),
                    "grad_norm": logs.get("grad_norm"),
                    "epoch": logs.get("epoch"),
                }
                with open(out.local / METRICS, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(line) + "\n")
                print(
                    f"[{spec.name}] step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
                    f"lr {line['lr'] or 0:.2e} {rate:,.0f} tok/s",
                    flush=True,
                )

    class CheckpointSync(TrainerCallback):
        """Mark each checkpoint complete (after every rank wrote its shard) and upload it."""

        def on_save(self, args, state, control, **kwargs):
            ckpt = out.checkpoints / f"checkpoint-{state.global_step}"
            _barrier()
            if out.remote and (dist.is_main or (not dist.shared_fs and dist.local_rank == 0)):
                out.upload_checkpoint(ckpt, node=dist.rank)  # every node uploads the shards it holds
            _barrier()
            if dist.is_main:  # checksums of every file, so a resume can refuse a changed one (pickles)
                marker = checkpoint_marker(state.global_step, spec.fingerprint, out.saved_checksums(ckpt))
                (ckpt / CHECKPOINT_MARKER).write_text(json.dumps(marker))
                if out.remote:
                    out.upload_checkpoint_marker(ckpt)
                    out.prune_remote_checkpoints()
            _barrier()

    return [EngagedCheck(), MetricsLog(), CheckpointSync()]


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines past the checkpoint we resume from (a killed run may have logged beyond it)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


def run_stage(spec: StageSpec, dist: Dist) -> dict[str, Any]:
    """Train one stage and write its outputs; returns the ``_SUCCESS`` record."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from .card import write_model_card
    from .packing import load_packed

    train = spec.train
    out = StageOutput(spec.output, spec.local)
    if dist.is_main or not dist.shared_fs:
        out.local.mkdir(parents=True, exist_ok=True)
        if spec.resume_from is None:
            (out.local / METRICS).unlink(missing_ok=True)
        else:
            _truncate_metrics(out.local / METRICS, int(spec.resume_from.rsplit("-", 1)[1]))
    _barrier()

    # 1. Training arguments first: with ZeRO-3 they must exist before the model (weights are
    #    partitioned as they load). The DeepSpeed "auto" values are filled from them.
    precision = train.precision if not dist.cpu else "fp32"  # the parent refused bf16/fp16 on CPU
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    args = TrainingArguments(
        output_dir=str(out.checkpoints),
        per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        learning_rate=train.lr,
        weight_decay=train.weight_decay,
        warmup_steps=train.warmup_steps,
        lr_scheduler_type=train.lr_scheduler,
        max_grad_norm=train.max_grad_norm,
        max_steps=train.max_steps or -1,
        num_train_epochs=train.epochs,
        seed=train.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        optim="adamw_torch",
        logging_steps=train.logging_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        save_on_each_node=not dist.shared_fs,
        gradient_checkpointing=train.gradient_checkpointing,
        deepspeed=spec.deepspeed,
        use_cpu=dist.cpu,
        ddp_backend="gloo" if dist.cpu and dist.world_size > 1 else None,
        remove_unused_columns=False,
        dataloader_drop_last=True,
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
    )

    # 2. Model and tokenizer: fp32 master weights (DeepSpeed / autocast handle bf16 on GPU).
    model = AutoModelForCausalLM.from_pretrained(spec.start_model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(spec.start_model)
    use_cache = model.config.use_cache  # the Trainer turns it off for training; the output keeps it

    # 3. Data: the blocks the parent packed (identical on every rank; the sampler shards them), or
    #    per-question rows in the schedule's order (the same questions each step in every arm).
    tensors, _stats = load_packed(spec.packed)
    per_question = tensors.pop("per_question", None)
    if per_question is not None:
        from .packing import question_schedule

        questions = int(tensors["question_ids"].shape[0])
        per_step = train.per_device_batch_size * train.gradient_accumulation_steps * dist.world_size
        rows = train.max_steps * per_step if train.max_steps else int(train.epochs * questions)
        schedule = question_schedule(
            questions, len(per_question["fields"]), per_question["field_rotation"], rows, train.seed
        )
        dataset, collator = QuestionRows(tensors, schedule), collate_questions
    else:
        dataset, collator = PackedBlocks(tensors), collate

    # 4. Trainer, with the checks and the outputs as callbacks.
    trainer = recipe_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
    )
    trainer.target_tokens = {}
    if per_question is not None:
        trainer.ordered, trainer.explanation_weight = True, float(per_question["explanation_weight"])
    trainer.schedule_steps = train.schedule_steps
    trainer.remove_callback(PrinterCallback)
    callbacks = _callbacks(trainer, spec, dist, out)
    for cb in callbacks:
        trainer.add_callback(cb)

    # 5. Train (from the last complete checkpoint when there is one).
    started = time.time()
    result = trainer.train(resume_from_checkpoint=spec.resume_from)

    # 6. The consolidated model (ZeRO-3 gathers the full weights here) and tokenizer.
    trainer.model.config.use_cache = use_cache
    trainer.save_model(str(out.local))
    if args.should_save:
        (out.local / "training_args.bin").unlink(missing_ok=True)  # pickle; the output is safetensors only
    _barrier()
    record = {
        "fingerprint": spec.fingerprint,
        "steps": spec.steps,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "final_loss": _last_loss(out.local / METRICS),
        "runtime_s": round(time.time() - started, 2),
        # tokens this rank trained on: every input token, and the label / explanation targets
        "tokens": {
            "input": trainer.real_tokens,
            **{f"{k}_targets": v for k, v in trainer.target_tokens.items()},
        },
        "distributed": callbacks[0].info,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if dist.is_main:
        write_model_card(out.local, spec, record)
        out.upload_final()
        out.write_json(SUCCESS, record)
    _barrier()
    del trainer, model
    return record


def _last_loss(path: Path) -> float | None:
    if not path.exists():
        return None
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1])["loss"] if lines else None


def run_plan(plan: Plan) -> None:
    """Run every stage that is not done; called on every rank."""
    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch's collective renames, per step
    hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars, per rank
    dist = _setup_distributed(plan)
    for spec in plan.stages:
        if not spec.done:
            run_stage(spec, dist)
            import gc

            gc.collect()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m teacherlm_core.train.worker PLAN.json")
    run_plan(Plan.model_validate_json(Path(argv[0]).read_text()))


if __name__ == "__main__":
    main()
