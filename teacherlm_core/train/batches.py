"""What a training step reads: packed blocks or per-question rows, and their collators.

Two ways to batch (``texts.batching`` in the recipe config): ``packed`` blocks of several texts
(:mod:`.packing`), or ``per_question`` rows, one question with its explanations, trained in a
label-exposure matched order (:func:`.packing.question_schedule`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PackedBlocks", "QuestionRows", "collate", "collate_questions"]


class PackedBlocks:
    """The packed blocks of :mod:`.packing` as a map-style dataset of dicts."""

    def __init__(self, tensors: dict[str, Any]):
        self.t = tensors

    def __len__(self) -> int:
        return int(self.t["input_ids"].shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.t.items()}


def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack blocks, drop columns that are padding in every row, and build the labels.

    No ``attention_mask``: with restarting ``position_ids`` transformers masks across texts itself,
    but only without a KV cache (``use_cache=False``); with one, packed texts would see each other.
    """
    import torch

    batch = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    width = int(batch["real_mask"].sum(0).nonzero().max()) + 1
    ids = batch["input_ids"][:, :width].long()
    labels = ids.masked_fill(batch["loss_mask"][:, :width] == 0, -100)
    return {
        "input_ids": ids,
        "labels": labels,
        "position_ids": batch["position_ids"][:, :width].long(),
        "num_real": batch["real_mask"][:, :width].sum(),
        "use_cache": False,
    }


class QuestionRows:
    """Label-exposure matched rows (``texts.batching: per_question``) in the order they are trained.

    Row ``i`` is question ``schedule[i, 0]``: its plain text, then its explanation texts (all of
    them, or only field ``schedule[i, 1]`` with rotation), one after another in one sequence with
    restarting ``position_ids`` (a text never attends to another).
    """

    def __init__(self, tensors: dict[str, Any], schedule: Any):
        self.ids, self.mask = tensors["question_ids"], tensors["question_mask"]
        self.length, self.schedule = tensors["question_length"], schedule

    def __len__(self) -> int:
        return len(self.schedule)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        q, field = (int(x) for x in self.schedule[i])
        texts = [0] + ([1 + field] if field >= 0 else list(range(1, self.ids.shape[1])))
        parts = [
            (self.ids[q, j, : self.length[q, j]], self.mask[q, j, : self.length[q, j]])
            for j in texts
            if self.length[q, j] > 0
        ]
        return {
            "input_ids": torch.cat([p[0] for p in parts]),
            "loss_mask": torch.cat([p[1] for p in parts]),
            "position_ids": torch.cat([torch.arange(len(p[0]), dtype=torch.int32) for p in parts]),
        }


def collate_questions(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad :class:`QuestionRows` rows to the longest; ``loss_kind`` says which targets are labels (1) or explanations (2)."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    kind = torch.zeros((len(rows), width), dtype=torch.long)
    # Padding is its own "text" (positions restart at 0), so real tokens never attend to it.
    pos = torch.arange(width).repeat(len(rows), 1)
    for b, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[b, :n], kind[b, :n], pos[b, :n] = r["input_ids"], r["loss_mask"], r["position_ids"]
        pos[b, n:] = torch.arange(width - n)
    num_real = sum(len(r["input_ids"]) for r in rows)
    return {
        "input_ids": ids,
        "position_ids": pos,
        "loss_kind": kind,
        "num_real": torch.tensor(num_real),
        "use_cache": False,
    }
