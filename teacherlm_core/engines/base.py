"""The engines' contract: requests, results, the protocols every backend implements, and per-request seeds."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

from ..errors import EngineError
from .encoding import LoglikelihoodRequest

__all__ = [
    "Engine",
    "Generation",
    "GenerationParams",
    "GenerationStream",
    "load_tokenizer",
    "request_seed",
]


def request_seed(seed: int, *key: object) -> int:
    """A 31-bit seed of one request that depends only on ``(seed, *key)``, never on batching or sharding.

    ``key`` names the request, e.g. ``(sample id, field, attempt)`` in augmentation or
    ``(sample id, round, kind)`` in STaR; the parts are joined with NUL, so no two keys collide.
    """
    digest = hashlib.sha256("\0".join(map(str, (seed, *key))).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings of one request. ``seed=None`` means the engine's own seed."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """One completion: its text, token count and why it stopped (``"stop"``, ``"length"`` or ``"error"``).

    ``"error"`` means this request alone could not be served (a prompt longer than the model's
    context, a request the server refused): ``error`` says why, and the caller quarantines the
    record instead of failing the batch.

    ``token_ids`` is empty where the backend does not return them (OpenAI-compatible servers).
    ``num_tokens`` counts the tokens generated; ``kept_tokens`` those of ``text`` (the stop string
    and what followed it cut), ``None`` where the backend does not say (then ``num_tokens``).
    """

    text: str
    num_tokens: int
    finish_reason: str
    token_ids: tuple[int, ...] = ()
    error: str | None = None  # finish_reason "error": why this one request could not be served
    kept_tokens: int | None = None


class GenerationStream(Protocol):
    """Requests in as they become known, results out as they finish: the engine never drains
    between the caller's batches.

    ``submit`` only queues; ``poll`` runs the engine until at least one submitted request has
    finished and returns every ``(key, Generation)`` finished since the last call, in any order
    (``[]`` at once when nothing is in flight). Requests submitted between two polls join the
    running batch at the next one. A result never depends on what it was batched with: the same
    generation as ``engine.generate([prompt], [params])``. One stream per engine at a time; do
    not call the engine's ``generate`` or ``loglikelihood`` while it has requests in flight.
    """

    def submit(self, key: Hashable, prompt: str, params: GenerationParams, priority: int = 0) -> None:
        """Queue one request; ``key`` names its result. Where the engine keeps a queue of its own
        (HF), lower ``priority`` runs first, ties in arrival order; vLLM serves in arrival order."""
        ...

    def poll(self) -> list[tuple[Hashable, Generation]]: ...

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet returned by ``poll``."""
        ...


class Engine(Protocol):
    """What every backend does. Backends that know their context window also have
    ``context_window: int`` and ``count_tokens(prompts) -> list[int]`` (see :func:`generate_servable`);
    backends that can take requests while a batch runs also have ``open_stream() ->``
    :class:`GenerationStream` (see :func:`open_stream`)."""

    name: str

    def generate(
        self, prompts: list[str], params: GenerationParams | list[GenerationParams]
    ) -> list[Generation]: ...

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]: ...


def load_tokenizer(model: str, revision: str | None = None):
    """A model's tokenizer, checked usable before any weights are loaded.

    Raises:
        EngineError: a model directory without a tokenizer that loads, or a tokenizer with neither
            a pad nor an EOS token (batches could not be padded nor generations end).
        OSError: ``model`` is no local directory and cannot be fetched (:func:`get_engine` says so).
    """
    import os

    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
    except Exception as exc:  # transformers raises OSError, ValueError, TypeError... for what it lacks
        if isinstance(exc, OSError) and not os.path.isdir(model):
            raise
        raise EngineError(
            f"model {model!r} has no usable tokenizer: {str(exc).strip().splitlines()[0][:200]} "
            "(save the tokenizer beside the weights: tokenizer.save_pretrained(DIR))"
        ) from exc
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
        raise EngineError(
            f"model {model!r}: its tokenizer has neither a pad nor an EOS token, so batches cannot be "
            "padded nor generations end; set eos_token (or pad_token) in its tokenizer_config.json"
        )
    return tokenizer
