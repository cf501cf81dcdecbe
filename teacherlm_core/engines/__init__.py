"""Inference engines: one protocol, ``generate`` and ``loglikelihood``, several backends.

Long runs use :func:`open_stream` instead of ``generate``: requests go in as they become known and
results come out as they finish, so the engine's batch stays full across the caller's part
boundaries and retries (see :class:`GenerationStream`).

* ``VLLMEngine``: vLLM (continuous batching; tensor parallel on GPUs).
* ``HFEngine``: transformers; where vLLM cannot run the model, and the reference in tests.
* ``OpenAIEngine``: any OpenAI-compatible completions server (``vllm serve``...), generation only.

:func:`get_engine` builds one by name (``auto``, the default of the commands: vLLM where it can
run the model here, else HF). The contract is in :mod:`.base`, streaming in :mod:`.streams`,
request encoding in :mod:`.encoding`.

Log-likelihood requests follow lm-evaluation-harness's HF backend exactly (the tokenizer's own
special tokens; ``context + continuation`` encoded as one string and split at the context's token
count), see :mod:`teacherlm_core.engines.encoding`.
"""

from __future__ import annotations

import logging
from typing import Literal

from ..errors import EngineError
from .base import Engine, Generation, GenerationParams, GenerationStream, load_tokenizer, request_seed
from .encoding import EncodedRequest, LoglikelihoodRequest, encode_pair, encode_requests, tokens
from .streams import generate_servable, generate_through, open_stream

__all__ = [
    "EncodedRequest",
    "Engine",
    "Generation",
    "GenerationParams",
    "GenerationStream",
    "LoglikelihoodRequest",
    "encode_pair",
    "encode_requests",
    "generate_servable",
    "generate_through",
    "get_engine",
    "load_tokenizer",
    "open_stream",
    "request_seed",
    "tokens",
]


def get_engine(kind: Literal["auto", "vllm", "hf", "openai"], model: str, **kwargs) -> Engine:
    """Build an engine by name; ``kwargs`` go to the engine's constructor.

    ``model`` is a path, an ``s3://`` prefix the engine can read, a hub id, or a named local model
    (:func:`teacherlm_core.models.resolve_model`, e.g. ``smollm2-135m-instruct``). ``auto`` is vLLM
    where it is installed and can run the model here, else the HF engine, said in one warning
    (the engine's ``name`` tells which one a report or manifest was made with).

    Raises:
        EngineError: the model cannot be loaded, or (``vllm``) vLLM cannot run it here.
    """
    if kind != "openai":  # an OpenAI-compatible server names its models itself
        import os

        from ..models import resolve_model

        model = resolve_model(model)
        if model.startswith(("/", "./", "../", "~")) and not os.path.exists(os.path.expanduser(model)):
            raise EngineError(
                f"cannot load model {model!r}: no such directory (a model is a local directory, a hub id "
                "such as org/name, or a named local model: `teacherlm models list`)"
            )
    if kind == "auto":
        try:
            return get_engine("vllm", model, **kwargs)
        except (EngineError, ImportError) as exc:
            reason = (
                str(exc).split(";")[0] if isinstance(exc, EngineError) else f"vLLM is not installed ({exc})"
            )
            logging.getLogger(__name__).warning("engine auto: %s; using the HF engine", reason)
            # tensor parallelism is vLLM's; the HF engine runs on one device
            return get_engine("hf", model, **{k: v for k, v in kwargs.items() if k != "tensor_parallel_size"})
    try:
        if kind == "hf":
            from .hf import HFEngine

            return HFEngine(model, **kwargs)
        if kind == "vllm":
            from .vllm import VLLMEngine

            return VLLMEngine(model, **kwargs)
    except OSError as exc:  # transformers' "not a local folder and not reachable on the hub"
        raise EngineError(
            f"cannot load model {model!r}: {str(exc).splitlines()[0][:300]} (a model is a local directory, "
            "a hub id this machine can reach, or a named local model: `teacherlm models list`)"
        ) from exc
    if kind == "openai":
        from .openai import OpenAIEngine

        return OpenAIEngine(model, **kwargs)
    raise ValueError(f"unknown engine {kind!r}; choose auto, vllm, hf or openai")
