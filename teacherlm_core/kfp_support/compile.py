"""Compile the pipelines: ``pipelines/<name>/pipeline.py`` -> ``pipelines/<name>/<name>.yaml``.

teacherlm pipeline compile                                 # beside each source (a checkout)
teacherlm pipeline compile --output specs/ --gpu-pool cloud.google.com/gke-accelerator=nvidia-h100-80gb
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .specs import NAMES, check_name

__all__ = ["compile_pipelines"]


def compile_pipelines(
    output: str | Path | None = None,
    names: tuple[str, ...] = NAMES,
    settings: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Compile ``names`` to ``<output>/<name>/<name>.yaml`` (default: beside their sources).

    ``settings`` are the compile-time :class:`~.placement.Placement` (node pools,
    accelerator, parallelism, retries); the committed specs use the defaults.

    Raises:
        ConfigError: a bad pipeline name or setting.
    """
    from kfp import compiler

    from .placement import Placement

    try:
        placement = Placement(**(settings or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError("pipeline settings", [str(exc)]) from None
    out_root = Path(output) if output else Path(str(resources.files("pipelines")))
    written = []
    for name in map(check_name, names):
        # The installed pipelines package, loaded by name: the compiler sits below what it compiles.
        module = importlib.import_module(f"pipelines.{name}.pipeline")
        target = out_root / name / f"{name}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(module.build(placement), str(target))
        written.append(target)
    return written
