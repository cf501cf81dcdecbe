"""Interchange with batch engines: a shard's teacher requests as an OpenAI batch file, and the results back.

    teacherlm augment --engine batch --export-batch requests.jsonl --teacher M --input IN --output OUT \\
        --num-shards 4 --shard-index 0          # one line per request still to generate
    vllm run-batch -i requests.jsonl -o results.jsonl --model M      # or a hosted batch API
    teacherlm augment --engine batch --batch-results results.jsonl --teacher M --input IN --output OUT \\
        --num-shards 4 --shard-index 0          # the results, through the usual parts and markers

A request line is the batch format of ``vllm run-batch`` and hosted batch APIs: ``custom_id``,
``method``, ``url`` (``/v1/completions``: the teacher continues a raw prompt) and ``body`` (model,
prompt, max_tokens, temperature, top_p, seed, stop). ``custom_id`` is a hash of the prompt and its
seed, so the import finds each result by the request it answers, in any order. The import runs
the shard exactly as a generating engine would (:func:`~teacherlm_core.augment.shard.run_shard`
with :class:`BatchResultsEngine`): parts, markers, quarantine; a killed import resumes, a
finished part is never written twice. A line that failed (an error, a status other than 200) or
is missing is that request's ``error`` generation: its record is quarantined with the reason.
A cleaning retry (a new seed) has no result in the file, so it is quarantined too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .. import storage
from ..engines import Generation, GenerationParams
from ..prompts import FIELD_SUFFIX, base_text
from .config import AugmentConfig, shard_name
from .plan import ensure_plan
from .shard import STOP, shard_entries, winning_markers
from .split import iter_shard_input

__all__ = ["BATCH_URL", "BatchResultsEngine", "custom_id", "export_batch"]

BATCH_URL = "/v1/completions"


def custom_id(prompt: str, seed: int | None) -> str:
    """The request's id in a batch file: what the import looks its result up by."""
    return "tlm-" + hashlib.sha256(f"{seed}\n{prompt}".encode()).hexdigest()[:40]


def export_batch(cfg: AugmentConfig, index: int, path: str | Path) -> int:
    """Write shard ``index``'s requests not yet generated (parts without a marker) to ``path``; returns their number."""
    from ..engines import request_seed

    plan = ensure_plan(cfg)
    finished = winning_markers(cfg.shard_dir(index), plan["fingerprint"])
    own = plan["inputs"][f"{shard_name(index, cfg.num_shards)}.jsonl"]
    entries = shard_entries(iter_shard_input(cfg, index, own), cfg.input, own["records"])
    n = 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for k, (_, sample, _) in enumerate(entries):
            if sample is None or k // cfg.part_size in finished:
                continue
            base = base_text(sample)
            for f in cfg.fields:
                prompt, seed = base + FIELD_SUFFIX[f], request_seed(cfg.seed, sample.id, f, 0)
                body = {
                    "model": cfg.teacher,
                    "prompt": prompt,
                    "max_tokens": cfg.max_new_tokens,
                    "temperature": cfg.temperature,
                    "top_p": cfg.top_p,
                    "seed": seed,
                    "stop": list(STOP),
                }
                line = {
                    "custom_id": custom_id(prompt, seed),
                    "method": "POST",
                    "url": BATCH_URL,
                    "body": body,
                }
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                n += 1
    return n


def _generation(line: dict[str, Any]) -> Generation:
    response = line.get("response") or {}
    body = response.get("body") or {}
    if line.get("error") or response.get("status_code") != 200:
        error = line.get("error") or body.get("error") or {}
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        status = response.get("status_code")
        return Generation(
            text="",
            num_tokens=0,
            finish_reason="error",
            error=f"batch request failed ({status}): {message}"
            if status
            else f"batch request failed: {message}",
        )
    choice = (body.get("choices") or [{}])[0]
    return Generation(
        text=choice.get("text") or "",
        num_tokens=int((body.get("usage") or {}).get("completion_tokens") or 0),
        finish_reason=choice.get("finish_reason") or "stop",
    )


class BatchResultsEngine:
    """An engine that answers from a batch results file (``custom_id`` -> result); it generates nothing."""

    name = "batch"

    def __init__(self, results: str):
        self.results: dict[str, Generation] = {}
        for raw in storage.read_text(results).splitlines():
            if raw.strip():
                line = json.loads(raw)
                self.results[line["custom_id"]] = _generation(line)

    def generate(
        self, prompts: list[str], params: GenerationParams | list[GenerationParams]
    ) -> list[Generation]:
        params = params if isinstance(params, list) else [params] * len(prompts)
        missing = Generation(
            text="", num_tokens=0, finish_reason="error", error="no result in the batch results file"
        )
        return [
            self.results.get(custom_id(prompt, p.seed), missing)
            for prompt, p in zip(prompts, params, strict=True)
        ]

    def loglikelihood(self, requests):
        raise NotImplementedError("a batch results file holds generations only")
