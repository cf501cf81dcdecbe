"""Typed training configs: the student (multi-task) and the teacher (multi-stage) recipes.

A config is a YAML file (shipped ones live in ``teacherlm_core/configs/train/``; the first comment
of each is the command that runs it), overridden by CLI flags, and validated on construction.
Every problem is reported at once, each with its field path, in one
:class:`~teacherlm_core.errors.ConfigError`::

    model: runs/tiny              # a local path, an s3:// URI or a hub id
    data: runs/data/train.jsonl   # augmented JSONL/Parquet, local or s3://
    output: runs/student          # a local dir or s3://bucket/prefix
    texts: {fields: [fundamentals, chain_of_thought, common_mistakes], include_plain: true}
    train: {lr: 3.0e-4, per_device_batch_size: 8, max_steps: 200}
    launch: {deepspeed: zero2, nproc_per_node: 2}
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import ConfigError
from ..schema import FIELDS

__all__ = [
    "KINDS",
    "LaunchConfig",
    "StudentConfig",
    "TeacherConfig",
    "TeacherStage",
    "TeacherTextsConfig",
    "TextsConfig",
    "TrainConfig",
    "load_config",
    "shipped_config_path",
    "shipped_configs",
    "with_launch",
]

# A training text is either the plain question with its answer, or one explanation field.
KINDS = ("plain", *FIELDS)
FieldName = Literal["fundamentals", "chain_of_thought", "common_mistakes"]
_STAGE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _weight_problems(weights: dict[str, float], kinds: list[str]) -> list[str]:
    problems = []
    for kind, w in weights.items():
        if kind not in KINDS:
            problems.append(f"weights.{kind}: unknown text kind (known: {', '.join(KINDS)})")
        elif kind not in kinds:
            problems.append(f"weights.{kind}: '{kind}' texts are not enabled (enabled: {', '.join(kinds)})")
        if w < 0:
            problems.append(f"weights.{kind}: must be >= 0, got {w}")
    return problems


class TextsConfig(_Strict):
    """Which training texts to build from each sample, how to weight them, how to pack them."""

    fields: list[FieldName] = Field(
        default_factory=lambda: list(FIELDS),
        description="Explanation fields, one training text each: base text + suffix + the field's text.",
    )
    include_plain: bool = Field(True, description="Also train on the plain question with its answer.")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Mixture weight per text kind (plain or a field): 2 = each text twice, 0.5 = half of them.",
    )
    loss: Literal["all", "completion"] = Field(
        "all", description="'all': loss on the whole sequence (the paper); 'completion': prompt masked."
    )
    max_length: int = Field(512, ge=16, description="Tokens per packed block; longer texts are truncated.")
    pack: bool = Field(True, description="Pack several texts per block (no text is split across blocks).")
    batching: Literal["packed", "per_question"] = Field(
        "packed",
        description=(
            "'packed': every text is a training sequence, packed into blocks (the paper's recipe). "
            "'per_question': label-exposure matched: each step trains the same questions whatever the "
            "fields, each with its plain text (the label target) and its explanations as auxiliary "
            "targets weighted by explanation_weight (L_label + weight * L_explanation, as in "
            "distilling step-by-step, Hsieh et al. 2023); max_length then applies to each text."
        ),
    )
    explanation_position: Literal["after_answer", "after_question"] = Field(
        "after_answer",
        description=(
            "Where an explanation text starts: 'after_answer' (base text with the answer, then the "
            "field's suffix: the paper's format) or 'after_question' (the question and options, then "
            "the suffix: the explanation is its own target and cannot be predicted from the answer)."
        ),
    )
    explanation_weight: float = Field(
        1.0, ge=0, description="per_question only: the weight of the explanation loss against the label loss."
    )
    field_rotation: bool = Field(
        False,
        description=(
            "per_question only: each visit of a question trains one of its fields, in turn, instead "
            "of all of them (a third of the explanation tokens a step for three fields)."
        ),
    )

    def kinds(self) -> list[str]:
        """The enabled text kinds, plain first."""
        return (["plain"] if self.include_plain else []) + list(self.fields)

    @model_validator(mode="after")
    def _consistent(self) -> TextsConfig:
        problems = []
        if len(set(self.fields)) != len(self.fields):
            problems.append("fields: each field may appear once")
        if not self.kinds():
            problems.append("no training texts: enable include_plain or list at least one field")
        problems += _weight_problems(self.weights, self.kinds())
        if self.weights and self.kinds() and all(self.weights.get(k, 1.0) == 0 for k in self.kinds()):
            problems.append("weights: every enabled text kind has weight 0")
        if self.batching == "per_question":
            if not self.include_plain:
                problems.append(
                    "batching per_question: the plain text is the label target; include_plain must be true"
                )
            if self.weights:
                problems.append("batching per_question: weights do not apply (use explanation_weight)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TeacherTextsConfig(TextsConfig):
    """The teacher explains a known answer: it learns only the explanation (prompt masked)."""

    include_plain: bool = False
    loss: Literal["all", "completion"] = "completion"


class TrainConfig(_Strict):
    """Optimisation settings (HF Trainer semantics; the global batch is per-device x ranks x accumulation)."""

    lr: float = Field(1e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler: Literal["constant_with_warmup", "constant", "linear", "cosine"] = Field(
        "constant_with_warmup",
        description="A decaying schedule takes its length from schedule_steps (default: the run's steps).",
    )
    schedule_steps: int | None = Field(
        None,
        ge=1,
        description="Length of a decaying schedule; keep it fixed across re-runs for an exact resume.",
    )
    max_grad_norm: float = Field(1.0, gt=0)
    per_device_batch_size: int = Field(8, ge=1, description="Packed blocks per rank per micro step.")
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs when set.")
    epochs: float = Field(1.0, gt=0)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="'auto': bf16 on a GPU that has it, else fp32 (CPU always fp32)."
    )
    logging_steps: int = Field(1, ge=1, description="Steps between metrics.jsonl lines.")
    save_steps: int = Field(50, ge=1, description="Steps between checkpoints (the last step always saves).")
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept (oldest deleted).")
    gradient_checkpointing: bool = False


class LaunchConfig(_Strict):
    """Where the ranks run: ``nproc_per_node`` ranks on each of ``nnodes`` nodes (torchrun's names),
    torchrun's static rendezvous. ``nproc`` is still read as ``nproc_per_node`` (an earlier name)."""

    deepspeed: str = Field(
        "zero2", description="zero2, zero3, none, or a path to a DeepSpeed config (YAML or JSON)."
    )
    nproc_per_node: int = Field(
        1, ge=1, validation_alias=AliasChoices("nproc_per_node", "nproc"), description="Ranks on each node."
    )
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: int | None = Field(None, ge=1, le=65535, description="Needed when nnodes > 1.")

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @model_validator(mode="after")
    def _consistent(self) -> LaunchConfig:
        problems = []
        if self.node_rank >= self.nnodes:
            problems.append(f"node_rank: {self.node_rank} must be below nnodes ({self.nnodes})")
        if self.nnodes > 1 and self.master_port is None:
            problems.append("master_port: every node must agree on it when nnodes > 1")
        if self.deepspeed not in ("zero2", "zero3", "none") and not self.deepspeed.endswith(
            (".yaml", ".yml", ".json")
        ):
            problems.append(
                f"deepspeed: {self.deepspeed!r} is not zero2, zero3, none or a .yaml/.json DeepSpeed config"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class StudentConfig(_Strict):
    """``teacherlm train student``: one multi-task training run on (augmented) data."""

    model: str = Field(description="Start model: local path, s3:// URI or hub id.")
    data: str = Field(description="Training data: JSONL or Parquet, local or s3://.")
    output: str = Field(description="Output dir or s3://bucket/prefix (model, card, metrics, checkpoints).")
    name: str | None = Field(None, description="Model name for the card (default: the output's last part).")
    texts: TextsConfig = Field(default_factory=TextsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    launch: LaunchConfig = Field(default_factory=LaunchConfig)
    track: bool = Field(True, description="Log to MLflow (node 0 only).")


class TeacherStage(_Strict):
    """One stage of the teacher recipe; it starts from the previous stage's weights."""

    name: str = Field(description="Lower-case letters, digits and dashes; names the stage's output dir.")
    data: str | None = Field(None, description="Stage data (default: the previous stage's).")
    fields: list[FieldName] | None = Field(None, description="Override texts.fields for this stage.")
    weights: dict[str, float] | None = Field(None, description="Override texts.weights for this stage.")
    specialise: bool = Field(
        False, description="Train one single-field teacher per field, each from the previous weights."
    )
    max_steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)
    lr: float | None = Field(None, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _STAGE_NAME.match(value):
            raise ValueError(f"{value!r} must be lower-case letters, digits and dashes")
        return value


class TeacherConfig(_Strict):
    """``teacherlm train teacher``: stage 1 multi-task, stage 2 personalisation, optional specialisation."""

    model: str = Field(description="Start model of stage 1: local path, s3:// URI or hub id.")
    output: str = Field(description="Output root; stage N writes under <output>/<N>-<name>/.")
    name: str = "teacher"
    texts: TeacherTextsConfig = Field(default_factory=TeacherTextsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    launch: LaunchConfig = Field(default_factory=LaunchConfig)
    stages: list[TeacherStage] = Field(min_length=1)
    track: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> TeacherConfig:
        problems = []
        names = [s.name for s in self.stages]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"stages: the name {dup!r} is used more than once")
        if self.stages[0].data is None:
            problems.append("stages.0.data: the first stage needs data")
        for i, stage in enumerate(self.stages):
            if stage.specialise and i != len(self.stages) - 1:
                problems.append(
                    f"stages.{i}.specialise: only the last stage can branch into single-field teachers"
                )
            fields = stage.fields if stage.fields is not None else self.texts.fields
            kinds = (["plain"] if self.texts.include_plain else []) + list(fields)
            if not kinds:
                problems.append(f"stages.{i}.fields: no training texts left for this stage")
            if stage.specialise and not fields:
                problems.append(f"stages.{i}.specialise: needs at least one field")
            if stage.weights is not None:
                problems += [f"stages.{i}.{p}" for p in _weight_problems(stage.weights, kinds)]
        if problems:
            raise ValueError("; ".join(problems))
        return self


_CONFIG_DIR = ("configs", "train")


def shipped_config_path(name: str) -> Path:
    """Path of a config shipped with the package (``student_tiny``, ``deepspeed/zero2``...)."""
    root = resources.files("teacherlm_core").joinpath(*_CONFIG_DIR)
    return Path(str(root.joinpath(f"{name}.yaml")))


def shipped_configs() -> list[str]:
    """Names of every shipped training config (DeepSpeed ones as ``deepspeed/<name>``)."""
    root = Path(str(resources.files("teacherlm_core").joinpath(*_CONFIG_DIR)))
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def _read_yaml(spec: str) -> tuple[dict[str, Any], str]:
    from .. import storage

    path = spec
    if not storage.is_remote(spec) and not os.path.isfile(spec) and shipped_config_path(spec).is_file():
        path = str(shipped_config_path(spec))
    try:
        text = storage.read_text(path)
    except Exception as exc:
        raise ConfigError(
            spec, [f"cannot read the config ({exc}); shipped configs: {', '.join(shipped_configs())}"]
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(spec, [f"not valid YAML: {exc}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(spec, ["a config must be a YAML mapping of keys to values"])
    return raw, spec


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[leaf] = value


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "is required"
        # A model-level check names its own sub-paths ("weights.x: ..."); join them onto the location.
        for part in msg.split("; "):
            head, sep, rest = part.partition(": ")
            if sep and re.fullmatch(r"[\w.]+", head) and loc:
                problems.append(f"{loc}.{head}: {rest}")
            elif loc:
                problems.append(f"{loc}: {part}")
            else:
                problems.append(part)
    return list(dict.fromkeys(problems))


def load_config(
    kind: Literal["student", "teacher"],
    spec: str | os.PathLike[str] | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> StudentConfig | TeacherConfig:
    """Load a config from a YAML file (local, s3:// or a shipped name) and apply dotted overrides.

    Args:
        kind: ``"student"`` or ``"teacher"``.
        spec: the YAML config; a dict; or ``None`` for flags only.
        overrides: ``{"train.max_steps": 8, "model": "runs/tiny"}``; ``None`` values are ignored
            (the launch settings go through :func:`with_launch`).

    Raises:
        ConfigError: every problem at once, each with its field path.
    """
    model = StudentConfig if kind == "student" else TeacherConfig
    if spec is None:
        raw, source = {}, "<flags>"
    elif isinstance(spec, dict):
        raw, source = dict(spec), "<dict>"
    else:
        raw, source = _read_yaml(os.fspath(spec))
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


RecipeConfigT = TypeVar("RecipeConfigT", "StudentConfig", "TeacherConfig")


def with_launch(
    cfg: RecipeConfigT,
    *,
    nproc_per_node: int | None = None,
    nnodes: int | None = None,
    node_rank: int | None = None,
    master_addr: str | None = None,
    master_port: int | None = None,
    deepspeed: str | None = None,
    seed: int | None = None,
) -> RecipeConfigT:
    """``cfg`` with the launch settings and the training seed given (``None`` keeps the config's).

    The one way the command line and the pipeline stages set where ranks run: typed fields, the
    whole config validated again.

    Raises:
        ConfigError: every problem at once, each with its field path (``launch.master_port: ...``).
    """
    raw = cfg.model_dump()
    given = {
        "nproc_per_node": nproc_per_node,
        "nnodes": nnodes,
        "node_rank": node_rank,
        "master_addr": master_addr,
        "master_port": master_port,
        "deepspeed": deepspeed,
    }
    raw["launch"] |= {k: v for k, v in given.items() if v is not None}
    if seed is not None:
        raw["train"]["seed"] = seed
    try:
        return type(cfg).model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("launch settings", _problems(exc)) from None
