"""The typed configuration of an augmentation run, and the output layout it implies.

What the generated text depends on (these settings, the input's content, the teacher, the
engine) is the run's identity, fixed in ``OUT/plan.json`` (:mod:`.plan`); a re-run with another
identity is refused, so resumed parts are never mixed with parts made from something else.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..schema import FIELDS
from ..storage import join

__all__ = ["CARD", "INPUTS", "MANIFEST", "PLAN", "SHARDS", "AugmentConfig", "public_endpoint", "shard_name"]

# The output layout: OUT/plan.json, OUT/inputs/ (the plan's per-shard inputs), OUT/shards/<shard>/
# (parts, markers, _SUCCESS), and after the merge OUT/manifest.json and OUT/README.md (the card).
PLAN = "plan.json"
INPUTS = "inputs"
SHARDS = "shards"
MANIFEST = "manifest.json"
CARD = "README.md"


def public_endpoint(url: str | None) -> str | None:
    """``url`` without credentials, query or fragment (``http://user:key@host/v1?k=x`` -> ``http://host/v1``)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def shard_name(index: int, num_shards: int) -> str:
    return f"shard-{index:05d}-of-{num_shards:05d}"


class AugmentConfig(BaseModel):
    """Settings of ``teacherlm augment`` (one field per CLI flag)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: str = Field(
        validation_alias=AliasChoices("teacher", "model"),  # "model": the name before 0.2, in older plans
        description="The teacher: a local path, a hub id or a named local model (the served name for openai).",
    )
    input: str = Field(description="Input dataset: JSONL or Parquet, local path or s3:// URI.")
    output: str = Field(description="Output root: local dir or s3:// prefix.")
    revision: str | None = Field(None, description="Hub revision of the teacher.")
    engine: Literal["auto", "vllm", "hf", "openai", "batch"] = Field(
        "auto",
        description="auto: vLLM where it can run the teacher here, else HF, decided once per output and "
        "recorded in the plan as the engine that ran (:func:`teacherlm_core.augment.resolve_engine`).",
    )
    fields: tuple[str, ...] = FIELDS
    num_shards: int = Field(1, ge=1, le=99999)
    part_size: int = Field(512, ge=1, description="Samples per part: the unit of resumption.")
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    seed: int = 0
    max_retries: int = Field(2, ge=0, description="Fresh-seed retries of a bad generation before quarantine.")
    tensor_parallel_size: int = Field(1, ge=1)
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint (engine=openai).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    max_concurrency: int = Field(32, ge=1, description="Requests in flight (engine=openai).")
    split: str | None = Field(
        None,
        description="A split of the input written by `augment plan` (split.json + per-shard files): the run "
        "reads its shards' files from there and takes the input's identity from split.json, never reading "
        "the input itself.",
    )
    batch_results: str | None = Field(
        None, description="engine=batch: an OpenAI batch results file to import (:mod:`.batch`)."
    )
    stall_timeout_s: float = Field(
        1800,
        gt=0,
        description="End the shard (exit code 75) when the engine returns nothing for this long; the retry "
        "resumes from the last finished part.",
    )
    dry_run: bool = Field(
        False,
        description="Write deterministic placeholder explanations without loading a model (checks storage, "
        "sharding, fan-out and merge at full scale); marked in the plan's identity and the manifest.",
    )

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, value):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [v for v in value if v not in FIELDS]
        if unknown or not value:
            raise ValueError(
                f"fields must be a non-empty subset of {', '.join(FIELDS)}; got {', '.join(value) or 'nothing'}"
            )
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _batch(self):
        if self.batch_results and self.engine != "batch":
            raise ValueError("batch_results needs engine=batch")
        return self

    @property
    def teacher_label(self) -> str:
        """How records and the manifest name the teacher: ``<teacher>@<revision or local>``."""
        name = f"{self.teacher}@{self.revision or 'local'}"
        return f"dry-run placeholder (no model; planned teacher {name})" if self.dry_run else name

    def public(self) -> dict:
        """The config without anything secret-bearing (for plans, manifests and MLflow): the endpoint's
        credentials, query and fragment are removed."""
        return self.model_dump(mode="json") | {"base_url": public_endpoint(self.base_url)}

    # -- layout --------------------------------------------------------------------------------
    def shard_dir(self, index: int) -> str:
        return join(self.output, SHARDS, shard_name(index, self.num_shards))

    @property
    def inputs_uri(self) -> str:
        """Where the shards' input files are: the given split, else ``OUT/inputs``."""
        return self.split or join(self.output, INPUTS)

    @property
    def plan_uri(self) -> str:
        return join(self.output, PLAN)
