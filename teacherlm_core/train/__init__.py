"""Training recipes: the multi-task student and the multi-stage teacher (HF Trainer + DeepSpeed).

* :func:`train_student` / :func:`train_teacher` run a recipe from a typed config
  (:func:`load_config` reads the YAML, applies CLI overrides and reports every problem at once).
* :mod:`.launch` runs the ranks locally with ``torchrun`` (gloo on CPU); :mod:`.k8s` renders a
  Kubeflow Trainer ``TrainJob`` (or a Training Operator ``PyTorchJob``) and follows it to the end.
* :mod:`.texts` and :mod:`.packing` build the multi-task training texts and pack them.

The module layout, in the order a run goes through it: ``config`` -> ``texts`` -> ``packing`` ->
``stage`` (parent-side preparation, resume decisions) -> ``launch`` -> ``worker`` (the ranks:
HF Trainer + DeepSpeed) -> ``outputs`` / ``card``. Heavy imports happen inside functions.
"""

from __future__ import annotations

from .config import (
    KINDS,
    LaunchConfig,
    StudentConfig,
    TeacherConfig,
    TeacherStage,
    TextsConfig,
    TrainConfig,
    load_config,
    shipped_configs,
    with_launch,
)
from .recipe import TrainResult
from .recipe_student import train_student
from .recipe_teacher import train_teacher

__all__ = [
    "KINDS",
    "LaunchConfig",
    "StudentConfig",
    "TeacherConfig",
    "TeacherStage",
    "TextsConfig",
    "TrainConfig",
    "TrainResult",
    "load_config",
    "shipped_configs",
    "train_student",
    "train_teacher",
    "with_launch",
]
