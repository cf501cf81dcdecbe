"""The container image of each kind of stage; the tag is the package version (as in GCPC's ``_image.py``).

``images/`` builds them: core (CPU stages), vllm (generation and evaluation on GPUs), train
(the training controller; the training itself runs in TrainJob pods of the same image).
"""

from teacherlm_core.pipeline_ops import IMAGES

CORE_IMAGE = IMAGES["core"]
VLLM_IMAGE = IMAGES["vllm"]
TRAIN_IMAGE = IMAGES["train"]
