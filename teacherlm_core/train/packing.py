"""Tokenise training texts and pack them into fixed-length blocks.

Each text becomes ``<bos> text <eos>``. Packing is best-fit decreasing: no text is split across
blocks (a text longer than ``max_length`` is truncated), so the share of real tokens stays high
(>= 95% on the built-in data at 512 tokens) without cutting an explanation in half.

Inside a block every text restarts its ``position_ids`` at 0 and no ``attention_mask`` is given:
transformers then builds a block-diagonal causal mask (``masking_utils.find_packed_sequence_indices``),
so a text never attends to its neighbours. The first token of each text carries no label, so no
text is trained to predict the next one either. Blocks are saved as safetensors (no pickle).
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .texts import TrainingText

__all__ = ["PackStats", "Packed", "load_packed", "pack", "save_packed", "tokenize"]


@dataclass
class PackStats:
    """What packing did; ``real_share`` is real (non-pad) tokens over block capacity."""

    texts: int
    truncated: int
    dropped: int
    blocks: int
    max_length: int
    real_tokens: int
    loss_tokens: int

    @property
    def real_share(self) -> float:
        return self.real_tokens / max(1, self.blocks * self.max_length)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self) | {"real_share": round(self.real_share, 6)}


@dataclass
class Packed:
    """Blocks as ``[blocks, max_length]`` numpy arrays plus the stats."""

    input_ids: Any  # int32 token ids, padded with the pad id
    loss_mask: Any  # uint8, 1 where the token is a training target
    position_ids: Any  # int32, restarting at 0 for every text (and for the padding)
    real_mask: Any  # uint8, 1 for real (non-pad) tokens
    stats: PackStats


def tokenize(tokenizer, texts: Sequence[TrainingText], loss: str) -> list[tuple[list[int], list[int]]]:
    """``(ids, loss_mask)`` per text: bos + text + eos; with ``loss="completion"`` only tokens that
    reach into the completion (and eos) are trained on. The bos never is."""
    encoded = tokenizer(
        [t.text for t in texts], add_special_tokens=False, return_offsets_mapping=True, verbose=False
    )
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    out = []
    for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"], strict=True):
        boundary = len(text.prompt)
        mask = [1 if loss == "all" or end > boundary else 0 for _start, end in offsets]
        if bos is not None:
            ids, mask = [bos, *ids], [0, *mask]
        else:
            mask[:1] = [0]
        if eos is not None:
            ids, mask = [*ids, eos], [*mask, 1]
        out.append((list(ids), mask))
    return out


def pack(
    docs: Sequence[tuple[list[int], list[int]]], max_length: int, pad_id: int, *, enabled: bool = True
) -> Packed:
    """Pack tokenised texts into blocks of ``max_length`` (best-fit decreasing, deterministic).

    With ``enabled=False`` each text gets its own block (the collator trims the padding).
    """
    truncated = dropped = 0
    kept: list[tuple[list[int], list[int]]] = []
    for ids, mask in docs:
        if len(ids) > max_length:
            ids, mask = ids[:max_length], mask[:max_length]
            truncated += 1
        if not any(mask):  # truncation left nothing to learn from
            dropped += 1
            continue
        kept.append((ids, mask))
    order = sorted(range(len(kept)), key=lambda i: (-len(kept[i][0]), i))
    bins: list[list[int]] = []
    if enabled:
        free: list[tuple[int, int]] = []  # (room left, bin index), sorted
        for i in order:
            size = len(kept[i][0])
            at = bisect.bisect_left(free, (size, -1))
            if at < len(free):
                room, b = free.pop(at)
            else:
                room, b = max_length, len(bins)
                bins.append([])
            bins[b].append(i)
            if room - size > 0:
                bisect.insort(free, (room - size, b))
    else:
        bins = [[i] for i in order]

    import numpy as np

    shape = (len(bins), max_length)
    input_ids = np.full(shape, pad_id, dtype=np.int32)
    loss_mask = np.zeros(shape, dtype=np.uint8)
    real_mask = np.zeros(shape, dtype=np.uint8)
    # Padding is its own "text" (positions restart at 0), so real tokens never attend to it.
    position_ids = np.tile(np.arange(max_length, dtype=np.int32), (len(bins), 1))
    real = loss_tokens = 0
    for b, members in enumerate(bins):
        at = 0
        for i in members:
            doc_ids, doc_mask = kept[i]
            n = len(doc_ids)
            input_ids[b, at : at + n] = doc_ids
            loss_mask[b, at : at + n] = doc_mask
            position_ids[b, at : at + n] = np.arange(n)
            at += n
            loss_tokens += sum(doc_mask)
        real_mask[b, :at] = 1
        position_ids[b, at:] = np.arange(max_length - at)
        real += at
    stats = PackStats(
        texts=len(docs),
        truncated=truncated,
        dropped=dropped,
        blocks=len(bins),
        max_length=max_length,
        real_tokens=real,
        loss_tokens=loss_tokens,
    )
    return Packed(input_ids, loss_mask, position_ids, real_mask, stats)


def save_packed(packed: Packed, path: str | Path) -> None:
    """Write the blocks as one safetensors file (int32/uint8 tensors, stats in the metadata)."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "input_ids": torch.from_numpy(packed.input_ids),
        "loss_mask": torch.from_numpy(packed.loss_mask),
        "position_ids": torch.from_numpy(packed.position_ids),
        "real_mask": torch.from_numpy(packed.real_mask),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # several nodes may share the cache
    save_file(tensors, str(tmp), metadata={"stats": json.dumps(asdict(packed.stats))})
    tmp.replace(path)


def load_packed(path: str | Path):
    """``(tensors, stats)`` from :func:`save_packed`'s file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        stats = PackStats(**json.loads(fh.metadata()["stats"]))
    return tensors, stats
