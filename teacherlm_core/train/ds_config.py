"""DeepSpeed configs: the shipped ZeRO-2 / ZeRO-3 ones, or a user's file, checked before launch.

``"auto"`` values are left for the HF Trainer to fill from the training config. What would break
or silently change a run is rejected up front, all problems at once:

* a ``scheduler`` block (teacherlm owns the LR schedule, so that resume stays exact);
* on CPU, an ``optimizer`` block (DeepSpeed would JIT-build fused Adam; the torch AdamW is used)
  and fp16/bf16 switched on (CPU training here is fp32).

ZeRO-3 always gathers the full weights at save (``stage3_gather_16bit_weights_on_model_save``),
so every output holds a consolidated model. ZeRO-2 on CPU reduces gradients with an all-reduce
unless the config says otherwise (gloo's reduce-scatter is the slower of the two).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .config import shipped_config_path

__all__ = ["load_deepspeed_config", "zero_stage"]


def load_deepspeed_config(spec: str, *, on_cpu: bool) -> dict[str, Any] | None:
    """The DeepSpeed config for ``spec`` (``zero2``, ``zero3``, ``none`` or a YAML/JSON path).

    Returns ``None`` for ``none`` (plain DDP, or one process).

    Raises:
        ConfigError: an unreadable file or a setting teacherlm cannot honour.
    """
    if spec == "none":
        return None
    path = shipped_config_path(f"deepspeed/{spec}") if spec in ("zero2", "zero3") else Path(spec)
    source = f"deepspeed config {spec}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read {path}: {exc.strerror}"]) from None
    try:
        config = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(source, [f"not valid {path.suffix.lstrip('.').upper()}: {exc}"]) from None
    if not isinstance(config, dict):
        raise ConfigError(source, ["a DeepSpeed config must be a mapping"])
    problems = []
    if "scheduler" in config:
        problems.append("scheduler: remove it; the LR schedule comes from train.lr_scheduler")
    if on_cpu and "optimizer" in config:
        problems.append(
            "optimizer: remove it on CPU (DeepSpeed would JIT-build fused Adam); torch AdamW is used"
        )
    for key in ("fp16", "bf16"):
        if on_cpu and (config.get(key) or {}).get("enabled") is True:
            problems.append(f"{key}.enabled: must be false or auto on CPU (training there is fp32)")
    stage = (config.get("zero_optimization") or {}).get("stage", 0)
    if stage not in (0, 1, 2, 3):
        problems.append(f"zero_optimization.stage: {stage!r} is not 0, 1, 2 or 3")
    if problems:
        raise ConfigError(source, problems)
    zero = config.setdefault("zero_optimization", {})
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if stage == 2 and on_cpu:
        # gloo's all-reduce beats its reduce-scatter (84 MB: ~0.08 s vs ~0.2 s on 2 cores here).
        zero.setdefault("reduce_scatter", False)
    return config


def zero_stage(config: dict[str, Any] | None) -> int | None:
    """The ZeRO stage of a resolved config (``None`` without DeepSpeed)."""
    if config is None:
        return None
    return int((config.get("zero_optimization") or {}).get("stage", 0))
