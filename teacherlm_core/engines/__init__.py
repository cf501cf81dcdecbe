"""Inference engines: one protocol, ``generate`` and ``loglikelihood``, several backends.

Long runs use :func:`open_stream` instead of ``generate``: requests go in as they become known and
results come out as they finish, so the engine's batch stays full across the caller's part
boundaries and retries (see :class:`GenerationStream`).

* ``VLLMEngine``: vLLM (continuous batching; the default; tensor parallel on GPUs).
* ``HFEngine``: transformers; the fallback and the reference in tests.
* ``OpenAIEngine``: any OpenAI-compatible completions server (``vllm serve``...), generation only.

Log-likelihood requests follow lm-evaluation-harness's HF backend exactly (the tokenizer's own
special tokens; ``context + continuation`` encoded as one string and split at the context's token
count), see :mod:`teacherlm_core.engines.encoding`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ..errors import EngineError
from .encoding import EncodedRequest, LoglikelihoodRequest, encode_pair, encode_requests, tokens

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


def _refusals(engine: Engine, prompts: list[str], params: list[GenerationParams]) -> dict[int, Generation]:
    """``{index: "error" generation}`` for each prompt too long for the engine's known context window."""
    window = getattr(engine, "context_window", None)
    counter = getattr(engine, "count_tokens", None)
    refused: dict[int, Generation] = {}
    if window and counter and prompts:
        for i, (n, p) in enumerate(zip(counter(prompts), params, strict=True)):
            if n + p.max_new_tokens > window:
                reason = (
                    f"prompt is {n} tokens; with max_new_tokens {p.max_new_tokens} that exceeds the "
                    f"teacher's context of {window} tokens"
                )
                refused[i] = Generation(text="", num_tokens=0, finish_reason="error", error=reason)
    return refused


def generate_servable(
    engine: Engine,
    prompts: list[str],
    params: list[GenerationParams],
    progress: Callable[[int], None] | None = None,
) -> list[Generation]:
    """``engine.generate`` for the prompts it can serve; an ``"error"`` generation for each it cannot.

    A prompt whose tokens plus its ``max_new_tokens`` exceed the engine's context window never
    reaches the engine (one such request would fail a whole vLLM batch): its generation says
    ``"prompt is N tokens; with max_new_tokens K that exceeds the teacher's context of M tokens"``.
    Engines without a known window (OpenAI-compatible servers) report refusals per request instead.
    """
    refused = _refusals(engine, prompts, params)
    served = [i for i in range(len(prompts)) if i not in refused]
    kwargs = {"progress": progress} if progress else {}
    out = (
        engine.generate([prompts[i] for i in served], [params[i] for i in served], **kwargs) if served else []
    )
    if len(out) != len(served):
        raise EngineError(f"engine {engine.name!r} returned {len(out)} generations for {len(served)} prompts")
    if progress and refused:
        progress(len(refused))
    result = dict(zip(served, out, strict=True)) | refused
    return [result[i] for i in range(len(prompts))]


class _GenerateStream:
    """The stream of an engine that has only ``generate``: each ``poll`` is one ``generate`` call
    over everything submitted since the last (so the engine drains at every poll)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.queue: list[tuple[Hashable, str, GenerationParams]] = []

    @property
    def in_flight(self) -> int:
        return len(self.queue)

    def submit(self, key: Hashable, prompt: str, params: GenerationParams, priority: int = 0) -> None:
        self.queue.append((key, prompt, params))

    def poll(self) -> list[tuple[Hashable, Generation]]:
        batch, self.queue = self.queue, []
        if not batch:
            return []
        out = self.engine.generate([p for _, p, _ in batch], [q for _, _, q in batch])
        if len(out) != len(batch):
            raise EngineError(
                f"engine {self.engine.name!r} returned {len(out)} generations for {len(batch)} prompts"
            )
        return [(key, g) for (key, _, _), g in zip(batch, out, strict=True)]


class _ServableStream:
    """A stream that refuses, as :func:`generate_servable` does, what the engine's window cannot hold."""

    def __init__(self, engine: Engine, inner: GenerationStream):
        self.engine, self.inner = engine, inner
        self.unchecked: list[tuple[Hashable, str, GenerationParams, int]] = []
        self.refused: list[tuple[Hashable, Generation]] = []

    @property
    def in_flight(self) -> int:
        return len(self.unchecked) + len(self.refused) + self.inner.in_flight

    def submit(self, key: Hashable, prompt: str, params: GenerationParams, priority: int = 0) -> None:
        self.unchecked.append((key, prompt, params, priority))

    def poll(self) -> list[tuple[Hashable, Generation]]:
        batch, self.unchecked = self.unchecked, []
        refused = _refusals(self.engine, [p for _, p, _, _ in batch], [q for _, _, q, _ in batch])
        for i, (key, prompt, params, priority) in enumerate(batch):
            if i in refused:
                self.refused.append((key, refused[i]))
            else:
                self.inner.submit(key, prompt, params, priority)
        if self.refused:  # at once: the caller may have more work to submit before the engine runs
            out, self.refused = self.refused, []
            return out
        return self.inner.poll()


def generate_through(
    stream: GenerationStream,
    prompts: Sequence[str],
    params: GenerationParams | Sequence[GenerationParams],
    progress: Callable[[int], None] | None = None,
) -> list[Generation]:
    """``generate`` on top of a stream: submit every prompt, poll until all are back, in prompt order.

    Raises:
        ValueError: ``params`` is a list of another length than ``prompts``.
    """
    plist = list(params) if isinstance(params, Sequence) else [params] * len(prompts)
    if len(plist) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(plist)} params")
    for i, (prompt, p) in enumerate(zip(prompts, plist, strict=True)):
        stream.submit(i, prompt, p)
    out: list[Generation | None] = [None] * len(prompts)
    while stream.in_flight:
        done = stream.poll()
        for i, g in done:
            out[i] = g
        if progress and done:
            progress(len(done))
    return out  # type: ignore[return-value]


def open_stream(engine: Engine) -> GenerationStream:
    """A :class:`GenerationStream` over ``engine``: its own ``open_stream()`` where it has one
    (vLLM: continuous batching; HF: batches formed from whatever is queued), else one ``generate``
    call per ``poll``. Requests too long for the engine's context window come back at the next
    ``poll`` as ``"error"`` generations without reaching the engine, as in :func:`generate_servable`.
    """
    own = getattr(engine, "open_stream", None)
    return _ServableStream(engine, own() if own is not None else _GenerateStream(engine))


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
