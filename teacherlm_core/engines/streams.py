"""Generation as a stream: requests in as they become known, results out as they finish.

:func:`open_stream` wraps any engine (its own stream where it has one, else one ``generate`` per
``poll``) so that requests too long for the engine's context window come back as ``"error"``
generations without reaching it; :func:`generate_servable` is the same for one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from ..errors import EngineError
from .base import Engine, Generation, GenerationParams, GenerationStream

__all__ = ["generate_servable", "generate_through", "open_stream"]


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
