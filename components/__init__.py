"""teacherlm's KFP components: typed interfaces, each calling one ``teacherlm_core.pipeline_ops`` function.

Lightweight Python components (``install_kfp_package=False``, no ``packages_to_install``): the
image (``_image.py``, tagged with the package version) already holds teacherlm and kfp, and KFP's
local runner runs them in this environment.
"""

from .augment_shard import augment_shard
from .build_data import build_data
from .compare import compare
from .evaluate import evaluate
from .merge_shards import merge_shards
from .plan_shards import plan_shards
from .star import star
from .student_variants import student_variants
from .train_student import train_student
from .train_teacher import train_teacher

__all__ = [
    "augment_shard",
    "build_data",
    "compare",
    "evaluate",
    "merge_shards",
    "plan_shards",
    "star",
    "student_variants",
    "train_student",
    "train_teacher",
]
