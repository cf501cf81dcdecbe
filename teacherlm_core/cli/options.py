"""Option types the subcommands share."""

from __future__ import annotations

from enum import Enum

__all__ = ["EngineName"]


class EngineName(str, Enum):
    """A local inference engine (``--engine``): ``auto`` is vLLM where it can run the model, else HF."""

    auto = "auto"
    vllm = "vllm"
    hf = "hf"
