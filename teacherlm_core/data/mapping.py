"""Import mappings: which source columns become ``question``, ``choices`` and ``answer``.

A mapping is a small YAML file (shipped ones live in ``mappings/``; the first comment of each
is the command that uses it)::

    task: ecqa                       # the task name written into every record
    id: q_no                         # id column; leave out to generate "<task>-<split>-<row>"
    question: q_text                 # question column ...
    # question_template: "Is this claim true or false? {sentence}"   # ... or a template over columns
    choices: [q_op1, q_op2, q_op3, q_op4, q_op5]   # several columns, or one list column: choices
    # fixed_choices: ["yes", "no"]   # ... or the same options for every row (yes/no, true/false)
    answer: q_ans
    answer_format: text              # text | index | letter | bool
    keep: {explanation: taskB}       # extra output field: source column, copied as-is
    splits: {train: train, dev: validation}   # source split -> output split (multi-split sources)

``bool`` answers pick the first of two choices for true and the second for false. Loading
validates everything at once and raises one :class:`~teacherlm_core.errors.ConfigError`
listing every problem.
"""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from ..schema import NonBlankStr

__all__ = ["BUILTIN_MAPPINGS", "ImportMapping", "builtin_mapping_path", "load_mapping"]

BUILTIN_MAPPINGS = ("ecqa", "strategyqa", "creak", "mmlu")
RESERVED = ("id", "task", "split", "question", "choices", "answer")


class ImportMapping(BaseModel):
    """A validated mapping from a source's columns to the data contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: NonBlankStr
    question: str | None = None
    question_template: str | None = None
    choices: str | list[str] | None = None
    fixed_choices: list[str] | None = None
    answer: NonBlankStr
    answer_format: Literal["text", "index", "letter", "bool"] = "text"
    index_base: Literal[0, 1] = 0
    id: str | None = None
    keep: dict[str, str] = {}
    splits: dict[str, Literal["train", "validation", "test"]] | None = None
    hub_config: str | None = None
    hub_revision: str | None = None
    description: str = ""

    @field_validator("choices", mode="before")
    @classmethod
    def _choices_shape(cls, value: Any) -> Any:
        if (
            value is None
            or isinstance(value, str)
            or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            return value
        raise ValueError("must be a list column's name or a list of column names")

    @model_validator(mode="after")
    def _consistent(self) -> ImportMapping:
        problems = cross_field_problems(self.model_dump())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def template_columns(self) -> list[str]:
        """Columns named by ``question_template``'s ``{placeholders}``."""
        if not self.question_template:
            return []
        return [f for _, f, _, _ in string.Formatter().parse(self.question_template) if f]

    def required_columns(self) -> list[str]:
        """Every column a row must have (``keep`` columns are optional)."""
        cols = [self.id] if self.id else []
        cols += [self.question] if self.question else self.template_columns()
        cols += [self.choices] if isinstance(self.choices, str) else list(self.choices or [])
        cols.append(self.answer)
        return list(dict.fromkeys(c for c in cols if c))


def cross_field_problems(raw: dict[str, Any]) -> list[str]:
    """Checks across fields, written defensively so they also run on an invalid raw mapping."""
    problems = []
    question, template = raw.get("question"), raw.get("question_template")
    if bool(question) == bool(template):
        problems.append("give exactly one of 'question' (a column) and 'question_template'")
    if isinstance(template, str) and template:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            problems.append(f"question_template: {exc}")
        else:
            if not [f for f in fields if f]:
                problems.append("question_template: names no {column}")
    choices, fixed = raw.get("choices"), raw.get("fixed_choices")
    if (choices is None) == (fixed is None):
        problems.append("give exactly one of 'choices' (columns) and 'fixed_choices' (a list of options)")
    if isinstance(choices, list) and len(choices) < 2:
        problems.append("choices: a list of columns needs two or more")
    if isinstance(fixed, list) and (
        len(fixed) < 2 or len(set(fixed)) != len(fixed) or not all(str(f).strip() for f in fixed)
    ):
        problems.append("fixed_choices: needs two or more distinct, non-empty options")
    if raw.get("answer_format") == "bool":
        two = (isinstance(fixed, list) and len(fixed) == 2) or (
            isinstance(choices, list) and len(choices) == 2
        )
        if not two:
            problems.append("answer_format: 'bool' needs exactly two choices (first = true, second = false)")
    keep = raw.get("keep")
    if isinstance(keep, dict):
        problems += [f"keep.{k}: '{k}' is a reserved output field" for k in keep if k in RESERVED]
    return problems


def builtin_mapping_path(name: str) -> Path:
    """Path of a shipped mapping (``ecqa``, ``strategyqa``, ``creak``, ``mmlu``)."""
    return Path(str(resources.files("teacherlm_core.data").joinpath("mappings", f"{name}.yaml")))


def load_mapping(spec: str | Path | dict[str, Any]) -> tuple[ImportMapping, str]:
    """Load and validate a mapping from a YAML path, a built-in name or a dict.

    Returns:
        ``(mapping, source)``: the source is the file path, ``builtin:<name>`` or ``<dict>``.

    Raises:
        ConfigError: listing every problem at once (unknown keys, wrong types, conflicts).
    """
    if isinstance(spec, dict):
        raw, source = spec, "<dict>"
    else:
        path = Path(spec)
        if not path.is_file() and str(spec) in BUILTIN_MAPPINGS:
            path, source = builtin_mapping_path(str(spec)), f"builtin:{spec}"
        else:
            source = str(spec)
        if not path.is_file():
            raise ConfigError(
                source, [f"no such mapping file, and not a built-in mapping ({', '.join(BUILTIN_MAPPINGS)})"]
            )
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise ConfigError(source, ["a mapping file must be a YAML mapping of keys to values"])
    try:
        return ImportMapping.model_validate(raw), source
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, raw)) from None


def _problems(exc: ValidationError, raw: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    field_errors = False
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:  # the model-level check: several problems joined
            problems += msg.split("; ")
            continue
        field_errors = True
        if err["type"] == "extra_forbidden":
            msg = f"unknown key (known: {', '.join(ImportMapping.model_fields)})"
        elif err["type"] == "missing":
            msg = "is required"
        problems.append(f"{loc}: {msg}")
    if field_errors:  # the model-level check did not run; run it on the raw values
        problems += cross_field_problems(raw)
    return list(dict.fromkeys(problems))
