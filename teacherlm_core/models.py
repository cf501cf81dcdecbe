"""Model identity: what a model reference points at, so a resumed run can tell the model changed.

A reference is a local directory, an ``s3://`` prefix or a hub id. :func:`model_identity` gives,
for a directory or prefix, the content id (:func:`~teacherlm_core.storage.content_id`) of every
weight, config and tokenizer file in it; for a hub id, the id and its revision. The same model
always gives the same identity; retrained weights at the same path give another.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import storage

__all__ = ["model_identity"]

_MODEL_FILES = (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt")  # weights, configs, tokenizers


def model_identity(model: str, revision: str | None = None) -> dict[str, Any]:
    """``{"path", "files": {relative name: content id}}`` for a directory or prefix, else ``{"hub_id", "revision"}``.

    A local path that does not exist counts as a hub id (the engine will say if it is neither).
    """
    if storage.is_remote(model) or Path(model).is_dir():
        root = model.rstrip("/")
        files = {}
        for uri in storage.list_files(root):
            rel = uri[len(root) + 1 :] if storage.is_remote(root) else os.path.relpath(uri, root)
            if rel.endswith(_MODEL_FILES) and rel.split("/")[0] not in ("checkpoints", "stages"):
                files[rel] = storage.content_id(uri)
        return {"path": model, "files": files}
    return {"hub_id": model, "revision": revision or "main"}
