"""The container image of each kind of stage; the tag is the package version (as in GCPC's ``_image.py``).

``images/`` builds them: core (CPU stages), vllm (generation and evaluation on GPUs), train
(the training controller; the training itself runs in TrainJob pods of the same image).
"""

from __future__ import annotations

from .. import __version__

__all__ = ["IMAGES"]

IMAGES: dict[str, str] = {
    kind: f"ghcr.io/teacherlm/teacherlm-{kind}:{__version__}" for kind in ("core", "train", "vllm")
}
