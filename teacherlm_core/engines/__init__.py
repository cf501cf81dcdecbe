"""Inference engines: one protocol, ``generate`` and ``loglikelihood``, several backends.

* ``VLLMEngine``: vLLM (continuous batching; the default; tensor parallel on GPUs).
* ``HFEngine``: transformers; the fallback and the reference in tests.
* ``OpenAIEngine``: any OpenAI-compatible completions server (``vllm serve``...), generation only.

Log-likelihood requests follow lm-evaluation-harness's HF backend exactly: no special tokens;
``context + continuation`` is encoded as one string and split at the context's token count
(trailing spaces of the context move to the continuation first), see :func:`encode_pair`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "Engine",
    "Generation",
    "GenerationParams",
    "LoglikelihoodRequest",
    "encode_pair",
    "get_engine",
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
    """One completion: its text, token count and why it stopped (``"stop"`` or ``"length"``).

    ``token_ids`` is empty where the backend does not return them (OpenAI-compatible servers).
    """

    text: str
    num_tokens: int
    finish_reason: str
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuation: str


@dataclass
class EncodedRequest:
    """A request as token ids, plus the model input lm-eval would build for it."""

    context: list[int]
    continuation: list[int]
    inputs: list[int] = field(default_factory=list)


class Engine(Protocol):
    name: str

    def generate(
        self, prompts: list[str], params: GenerationParams | list[GenerationParams]
    ) -> list[Generation]: ...

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]: ...


def encode_pair(tokenizer, context: str, continuation: str, max_length: int | None = None) -> EncodedRequest:
    """Token ids of a (context, continuation) pair, split as lm-evaluation-harness does.

    ``inputs`` is what the model reads: ``(context + continuation)[-(max_length + 1):][:-1]``;
    the continuation is scored at the last ``len(continuation)`` positions of ``inputs``.
    """
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    cont = whole[len(ctx) :]
    if not ctx or not cont:
        raise ValueError(
            f"cannot score {continuation!r} after {context[-40:]!r}: empty context or continuation"
        )
    seq = ctx + cont
    if max_length is not None:
        seq = seq[-(max_length + 1) :]
    return EncodedRequest(context=ctx, continuation=cont, inputs=seq[:-1])


def get_engine(kind: Literal["vllm", "hf", "openai"], model: str, **kwargs) -> Engine:
    """Build an engine by name; ``kwargs`` go to the engine's constructor."""
    if kind == "hf":
        from .hf import HFEngine

        return HFEngine(model, **kwargs)
    if kind == "vllm":
        from .vllm import VLLMEngine

        return VLLMEngine(model, **kwargs)
    if kind == "openai":
        from .openai import OpenAIEngine

        return OpenAIEngine(model, **kwargs)
    raise ValueError(f"unknown engine {kind!r}; choose vllm, hf or openai")
