"""teacherlm's KFP components: typed interfaces, each calling one ``teacherlm_core.stages`` function of the same name.

Lightweight Python components (``install_kfp_package=False``, no ``packages_to_install``): the
image (``_image.py``, tagged with the package version) already holds teacherlm and kfp, and KFP's
local runner runs them in this environment.
"""

from .augment_merge import augment_merge
from .augment_plan import augment_plan
from .augment_shard import augment_shard
from .compare import compare
from .data_build import data_build
from .data_star import data_star
from .evaluate import evaluate
from .train_cleanup import train_cleanup
from .train_student import train_student
from .train_teacher import train_teacher
from .train_variants import train_variants

__all__ = [
    "augment_merge",
    "augment_plan",
    "augment_shard",
    "compare",
    "data_build",
    "data_star",
    "evaluate",
    "train_cleanup",
    "train_student",
    "train_teacher",
    "train_variants",
]
