"""The model card (``README.md``) written beside every trained model.

Hub-style YAML front matter, then what the model was trained on (data, text kinds, packing), how
(settings, ranks, DeepSpeed stage) and how far (steps, final loss), and how to load it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..models import provenance
from ..redaction import redact_text

__all__ = ["write_model_card"]

ORIGIN = "origin.json"  # a named base model's provenance, kept with every model trained from it


def _row(key: str, value: Any) -> str:
    return f"| {key} | {value} |"


def write_model_card(local_dir: str | Path, spec, record: dict[str, Any]) -> Path:
    """Write ``README.md`` for the stage ``spec`` (a :class:`~.stage.StageSpec`) and its result."""
    card = spec.card
    name = card.get("name") or Path(spec.output).name
    origin = provenance(
        spec.start_model
    )  # a named base model's origin and licence, carried to every descendant
    front = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["teacherlm", spec.name],
        **({"license": origin["licence"].lower()} if origin else {}),
    }
    packing = card.get("packing", {})
    per_question = (card.get("texts_config") or {}).get("batching") == "per_question"
    texts = ", ".join(f"{k} x{n}" for k, n in card.get("texts", {}).items())
    train = card.get("train", {})
    dist = record.get("distributed") or {}
    final_loss = record.get("final_loss")
    where = spec.output
    load = ["from transformers import AutoModelForCausalLM, AutoTokenizer"]
    if spec.output.startswith("s3://"):
        where = name
        load = [
            "from teacherlm_core.storage import download_dir",
            f'download_dir("{spec.output}", "{name}")  # checkpoints/ too; skip it if you like',
            *load,
        ]
    load += [
        f'model = AutoModelForCausalLM.from_pretrained("{where}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
    ]
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {name}",
        "",
        f"Trained by teacherlm {card.get('teacherlm', '')} (stage `{spec.name}`) following TeacherLM "
        "(arXiv 2310.19019): multi-task training on each question with its answer and/or the teacher's "
        "explanations of it (fundamentals, chain of thought, common mistakes), as listed below.",
        "",
        "| | |",
        "|---|---|",
        _row("start model", f"`{spec.start_model}`"),
        *([_row("base model", f"{origin['origin']}; licence {origin['licence']}")] if origin else []),
        _row("data", f"`{card.get('data')}` (sha256 `{str(card.get('data_sha256', ''))[:16]}…`)"),
        _row("samples", card.get("samples")),
        _row("training texts", texts),
        _row("loss on", (card.get("texts_config") or {}).get("loss")),
        _row("batching", "per question (label exposure matched)" if per_question else "packed"),
        _row(
            "packing",
            f"{packing.get('blocks')} {'text slots' if per_question else 'blocks'} of {packing.get('max_length')} tokens, "
            f"{100 * float(packing.get('real_share', 0)):.1f}% real tokens, {packing.get('truncated')} truncated",
        ),
        _row("steps", record.get("global_step")),
        _row("final loss", f"{final_loss:.4f}" if isinstance(final_loss, float) else final_loss),
        _row(
            "global batch",
            f"{train.get('per_device_batch_size')} x {card.get('world_size')} ranks "
            f"x {train.get('gradient_accumulation_steps')} accumulation",
        ),
        _row("learning rate", f"{train.get('lr')} ({train.get('lr_scheduler')})"),
        _row(
            "distributed",
            f"{dist.get('engine')}, {card.get('deepspeed')}, world size {dist.get('world_size')}",
        ),
        _row("seed", train.get("seed")),
        "",
        "## Load",
        "",
        "```python",
        *load,
        "```",
        "",
        "`metrics.jsonl` holds one line per logged step (step, loss, lr, tokens_per_s); `checkpoints/` "
        "the DeepSpeed/HF checkpoints a re-run resumes from.",
        "",
    ]
    path = Path(local_dir) / "README.md"
    path.write_text(redact_text("\n".join(lines)), encoding="utf-8")  # no URL credentials or keys in a card
    if origin:
        Path(local_dir, ORIGIN).write_text(json.dumps(origin, indent=1, sort_keys=True))
    return path
