"""What the student and teacher recipes share: checks before launch, the launch, MLflow, results."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .config import LaunchConfig, TrainConfig
from .outputs import METRICS, SUCCESS, StageOutput
from .stage import Plan, StageSpec

__all__ = ["TrainResult", "check_hardware", "launch_plan", "log_stage", "stage_result"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """One trained stage: where its model is and how training went."""

    stage: str
    output: str
    local_dir: str
    global_step: int
    final_loss: float | None
    skipped: bool
    packing: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, int] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def real_share(self) -> float:
        return float(self.packing.get("real_share", 0.0))


def check_hardware(train: TrainConfig, launch: LaunchConfig, source: str) -> bool:
    """Problems a CPU-only machine cannot run; returns ``on_cpu``."""
    import torch

    on_cpu = not torch.cuda.is_available()
    problems = []
    if on_cpu and train.precision in ("bf16", "fp16"):
        problems.append(
            f"train.precision: {train.precision} needs a CUDA GPU; this machine has none (use auto)"
        )
    if not on_cpu and launch.nproc_per_node > torch.cuda.device_count():
        problems.append(
            f"launch.nproc_per_node: {launch.nproc_per_node} ranks but {torch.cuda.device_count()} GPU(s)"
        )
    if problems:
        raise ConfigError(source, problems)
    return on_cpu


def launch_plan(plan: Plan, launch: LaunchConfig) -> None:
    """Run the stages of ``plan`` that are not done, on this node."""
    from .launch import run_plan_local

    if all(s.done for s in plan.stages):
        return
    with tempfile.TemporaryDirectory(prefix="teacherlm-plan-") as tmp:
        run_plan_local(plan, launch, tmp)


def stage_result(spec: StageSpec) -> TrainResult:
    """Read a stage's ``_SUCCESS`` record (raises if the stage did not finish)."""
    out = StageOutput(spec.output, spec.local)
    record = out.read_json(SUCCESS)
    if record is None or record.get("fingerprint") != spec.fingerprint:
        raise RuntimeError(f"stage {spec.name}: no {SUCCESS} for this run in {spec.output}")
    return TrainResult(
        stage=spec.name,
        output=spec.output,
        local_dir=spec.local,
        global_step=record["global_step"],
        final_loss=record.get("final_loss"),
        skipped=spec.done,
        packing=spec.card.get("packing", {}),
        texts=spec.card.get("texts", {}),
        record=record,
    )


def log_stage(tracker, spec: StageSpec, result: TrainResult | None) -> None:
    """Log one stage to its (nested) MLflow run: params, the metrics curve, card and metrics file."""
    tracker.log_params(
        {"stage": spec.name, "output": spec.output, "fingerprint": spec.fingerprint, "skipped": spec.done}
        | {f"train.{k}": v for k, v in spec.train.model_dump().items()}
        | {f"texts.{k}": v for k, v in spec.card.get("texts_config", {}).items()}
        | {"data": spec.card.get("data"), "world_size": spec.card.get("world_size")}
        | {"deepspeed": spec.card.get("deepspeed")}
    )
    if result is None:
        tracker.set_tags({"teacherlm.status": "not finished"})
        return
    local = StageOutput(spec.output, spec.local).local
    metrics_file = local / METRICS
    if metrics_file.exists() and not spec.done:
        lines = [json.loads(ln) for ln in metrics_file.read_text().splitlines() if ln.strip()]
        stride = max(1, len(lines) // 1000)  # at most ~1000 points per curve
        for line in lines[::stride]:
            tracker.log_metrics(
                {k: line[k] for k in ("loss", "lr", "tokens_per_s") if line.get(k) is not None},
                step=line["step"],
            )
        tracker.log_artifact(metrics_file)
    if (local / "README.md").exists():
        tracker.log_artifact(local / "README.md")
    tracker.log_metrics(
        {
            "final_loss": result.final_loss or 0.0,
            "global_step": result.global_step,
            "real_share": result.real_share,
        }
    )
    tracker.set_tags({"teacherlm.status": "skipped (already trained)" if spec.done else "trained"})
