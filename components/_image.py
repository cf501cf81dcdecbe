"""The container image of each kind of stage (:data:`teacherlm_core.run_context.IMAGES`)."""

from teacherlm_core.run_context import IMAGES

CORE_IMAGE = IMAGES["core"]
VLLM_IMAGE = IMAGES["vllm"]
TRAIN_IMAGE = IMAGES["train"]
