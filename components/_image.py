"""The container image of each kind of stage (:data:`teacherlm_core.kfp_support.images.IMAGES`)."""

from teacherlm_core.kfp_support.images import IMAGES

CORE_IMAGE = IMAGES["core"]
VLLM_IMAGE = IMAGES["vllm"]
TRAIN_IMAGE = IMAGES["train"]
