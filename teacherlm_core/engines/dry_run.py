"""A stand-in engine for ``teacherlm augment --dry-run``: placeholder text, no model.

It writes, for each request, a short deterministic text derived from the prompt and the
request's seed (so a re-run, any sharding or batching, writes the same bytes), in a fraction of
a millisecond: an operator can check storage, sharding, fan-out and merge at full scale before
paying for GPUs. Its output is never training data: a dry run is part of the plan's identity
(never resumed into, or from, a real run) and the manifest and dataset card say so. It has no
``open_stream``: a stream over it is one (instant) ``generate`` call a poll.
"""

from __future__ import annotations

import hashlib

from .base import Generation, GenerationParams
from .encoding import LoglikelihoodRequest

__all__ = ["DryRunEngine"]

_TEXT = " Dry-run placeholder {}: no model wrote this text."
_WORDS = len(_TEXT.split())


class DryRunEngine:
    """Deterministic placeholder generations (``finish_reason="stop"``); no model is loaded."""

    name = "dry-run"

    def __init__(self, model: str = "dry-run", **_: object):
        self.model = model

    def generate(
        self, prompts: list[str], params: GenerationParams | list[GenerationParams]
    ) -> list[Generation]:
        plist = params if isinstance(params, list) else [params] * len(prompts)
        out = []
        for prompt, p in zip(prompts, plist, strict=True):
            tag = hashlib.sha256(f"{p.seed}\0{prompt}".encode()).hexdigest()[:16]
            if p.max_new_tokens >= _WORDS:
                out.append(Generation(text=_TEXT.format(tag), num_tokens=_WORDS, finish_reason="stop"))
            else:  # the token limit, counted in words
                words = _TEXT.format(tag).split()[: p.max_new_tokens]
                out.append(
                    Generation(text=" " + " ".join(words), num_tokens=len(words), finish_reason="length")
                )
        return out

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]:
        raise NotImplementedError("a dry run only generates placeholders; it cannot score")
