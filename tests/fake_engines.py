"""Hand-written engines for tests where the real teacher's text is not the point.

``ScriptedEngine`` writes deterministic, well-formed explanations derived from the prompt and
the request seed (so resumed runs must reproduce them exactly), can return empty text for some
(prompt, seed) pairs to exercise retries and quarantine, and can sleep per request so a test can
kill a run in the middle of a part. ``StreamingScriptedEngine`` is the same teacher behind a
:class:`~teacherlm_core.engines.GenerationStream` that runs ``batch`` requests a poll (lowest
priority first, as the HF engine does) and logs every submit and result, so a test can see what
the engine was fed and when.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import re
import threading
import time

from teacherlm_core.engines import Generation, GenerationParams


class ScriptedEngine:
    name = "scripted"
    model_name = "scripted-teacher"

    def __init__(self, delay: float = 0.0, empty_rate: float = 0.0, always_empty: bool = False):
        self.delay, self.empty_rate, self.always_empty = delay, empty_rate, always_empty
        self.calls = 0

    def generate(self, prompts, params, progress=None):
        plist = params if isinstance(params, list) else [params] * len(prompts)
        out = []
        for prompt, p in zip(prompts, plist, strict=True):
            self.calls += 1
            if self.delay:
                time.sleep(self.delay)
            h = int(hashlib.sha256(f"{prompt}|{p.seed}".encode()).hexdigest()[:8], 16)
            if self.always_empty or (h % 1000) < self.empty_rate * 1000:
                out.append(Generation(text="  " if h % 2 else "", num_tokens=0, finish_reason="stop"))
                continue
            letter = re.search(r"The answer is \(([A-Z])\)", prompt)
            if prompt.endswith("step by step."):
                text = f" Step one looks at the question ({h % 97}). So the answer is ({letter.group(1) if letter else 'A'})."
            elif prompt.endswith("mistakes are:"):
                text = f" Picking a choice without reading it ({h % 89})."
            else:
                text = f" The key fact here is number {h % 83}."
            out.append(Generation(text=text, num_tokens=len(text.split()), finish_reason="stop"))
        if progress:
            progress(len(prompts))
        return out

    def loglikelihood(self, requests, progress=None):
        raise NotImplementedError


class StreamingScriptedEngine(ScriptedEngine):
    """:class:`ScriptedEngine` with ``open_stream``: ``batch`` requests a poll, each batch through
    ``generate`` (so a subclass that overrides ``generate`` still applies); ``events`` logs
    ``("submit" | "result", key)`` in order."""

    def __init__(self, batch: int = 4, hang_after: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.batch, self.hang_after = batch, hang_after  # hang_after >= 0: that many polls, then none return
        self.events: list[tuple[str, object]] = []

    def open_stream(self) -> _ScriptedStream:
        return _ScriptedStream(self)


class _ScriptedStream:
    def __init__(self, engine: StreamingScriptedEngine):
        self.engine, self.queue, self.arrivals = engine, [], itertools.count()

    @property
    def in_flight(self) -> int:
        return len(self.queue)

    def submit(self, key, prompt, params, priority=0):
        bisect.insort(self.queue, (priority, next(self.arrivals), key, prompt, params))
        self.engine.events.append(("submit", key))

    def poll(self):
        if self.engine.hang_after == 0:
            threading.Event().wait()  # a wedged engine: no error, no result, ever
        self.engine.hang_after -= self.engine.hang_after > 0
        batch, self.queue = self.queue[: self.engine.batch], self.queue[self.engine.batch :]
        gens = self.engine.generate([b[3] for b in batch], [b[4] for b in batch]) if batch else []
        self.engine.events += [("result", b[2]) for b in batch]
        return [(b[2], g) for b, g in zip(batch, gens, strict=True)]


__all__ = ["GenerationParams", "ScriptedEngine", "StreamingScriptedEngine"]
