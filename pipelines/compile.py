"""Compile the pipelines: ``pipelines/<name>/pipeline.py`` -> ``pipelines/<name>/<name>.yaml``.

The compiler sits with what it compiles (the Kubeflow wing, above the stages) and imports each
pipeline by name; ``teacherlm_core`` never imports the pipelines.

teacherlm pipeline compile                                 # beside each source (a checkout)
teacherlm pipeline compile --output specs/ --gpu-pool cloud.google.com/gke-accelerator=nvidia-h100-80gb
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from teacherlm_core.errors import ConfigError
from teacherlm_core.kfp_support.graphs import Graph
from teacherlm_core.kfp_support.specs import NAMES, check_name

from .augment import pipeline as augment
from .end_to_end import pipeline as end_to_end
from .student import pipeline as student
from .teacher import pipeline as teacher

__all__ = ["PIPELINES", "compile_pipelines"]

# name -> the pipeline, for every name in NAMES
PIPELINES: dict[str, Graph] = {
    "augment": augment.augment,
    "end_to_end": end_to_end.end_to_end,
    "student": student.student,
    "teacher": teacher.teacher,
}


def compile_pipelines(
    output: str | Path | None = None,
    names: tuple[str, ...] = NAMES,
    settings: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Compile ``names`` to ``<output>/<name>/<name>.yaml`` (default: beside their sources).

    ``settings`` are the compile-time :class:`~teacherlm_core.kfp_support.placement.Placement` (node pools,
    accelerator, parallelism, retries); the committed specs use the defaults.

    Raises:
        ConfigError: a bad pipeline name or setting.
    """
    from kfp import compiler

    from teacherlm_core.kfp_support.placement import Placement, placed

    try:
        placement = Placement(**(settings or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError("pipeline settings", [str(exc)]) from None
    out_root = Path(output) if output else Path(str(resources.files("teacherlm_pipelines")))
    written = []
    for name in map(check_name, names):
        target = out_root / name / f"{name}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        with placed(placement):
            compiler.Compiler().compile(PIPELINES[name].component(), str(target))
        written.append(target)
    return written
