"""The data contract: ``Sample``, ``AugmentedSample``, ``Rejected`` and the rules a record follows.

One JSON object a line (or a Parquet file with the same columns). A record that breaks the
contract becomes a :class:`~teacherlm_core.errors.DataError` naming file, line and field; the
caller either stops on it (``on_error="raise"``) or sends it to a :class:`QuarantineWriter`
(``on_error="quarantine"``), so that ``in = out + quarantined`` always holds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from .errors import DataError

__all__ = [
    "FIELDS",
    "MAX_CHOICES",
    "SCHEMA_VERSION",
    "AnnotatedSample",
    "AugmentedSample",
    "NonBlankStr",
    "Rejected",
    "Sample",
    "choices_problem",
    "to_data_error",
]

SCHEMA_VERSION = "1"
FIELDS = ("fundamentals", "chain_of_thought", "common_mistakes")
REQUIRED = ("id", "task", "question", "answer")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonBlankStr = Annotated[str, AfterValidator(_not_blank)]
"""A string with something besides whitespace (the data contract's required text fields)."""

MAX_CHOICES = 26  # the prompt formats letter the options (A) to (Z)


def choices_problem(choices: list[str]) -> str | None:
    """What makes ``choices`` break the data contract (``None``: nothing).

    Two to :data:`MAX_CHOICES` options, none of them blank, no two alike as the prompt shows them
    (runs of whitespace collapsed, ends stripped): an option that appears twice would make the gold
    letter ambiguous, whatever a model answers.
    """
    if len(choices) < 2:
        return f"needs two or more options, got {len(choices)}"
    if len(choices) > MAX_CHOICES:
        return f"{len(choices)} options, but the prompt format can letter at most {MAX_CHOICES}, (A) to (Z)"
    for i, option in enumerate(choices, start=1):
        if not option.strip():
            return f"option {i} is empty"
    seen: dict[str, str] = {}  # as the prompt shows an option (runs of whitespace collapsed) -> the option
    for option in choices:
        shown = " ".join(option.split())
        if (first := seen.get(shown)) == option:
            return f"options are not distinct: {option!r} appears twice"
        if first is not None:
            return f"options are not distinct: {first!r} and {option!r} differ only in whitespace (the prompt shows {shown!r} twice)"
        seen[shown] = option
    return None


class Sample(BaseModel):
    """One question. Unknown fields are kept (``extra="allow"``) and written back out."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    id: NonBlankStr
    task: NonBlankStr
    question: NonBlankStr
    choices: list[str] | None = None
    answer: NonBlankStr

    @model_validator(mode="after")
    def _answer_among_choices(self) -> Sample:
        if self.choices is not None:
            if problem := choices_problem(self.choices):
                raise ValueError(f"choices: {problem}")
            if self.answer not in self.choices:
                raise ValueError(f"answer: {self.answer!r} is not one of the choices")
        return self

    @property
    def answer_index(self) -> int:
        """Index of the gold answer in ``choices`` (multiple choice only)."""
        if self.choices is None:
            raise ValueError(f"sample {self.id!r} has no choices")
        return self.choices.index(self.answer)

    def to_record(self) -> dict[str, Any]:
        """The sample as a plain dict, unknown fields included, ``None`` choices left out."""
        record = self.model_dump()
        if record.get("choices") is None:
            record.pop("choices", None)
        return record


class AnnotatedSample(Sample):
    """A sample with its three explanations, whoever wrote them (annotated seed data)."""

    fundamentals: NonBlankStr
    chain_of_thought: NonBlankStr
    common_mistakes: NonBlankStr


class AugmentedSample(AnnotatedSample):
    """A sample with the teacher's three explanations, and which teacher wrote them."""

    teacher: str


class Rejected(BaseModel):
    """A quarantined record: where it came from, why, and the raw text or record."""

    source: str
    line: int | None
    field: str | None
    reason: str
    raw: Any = None


def to_data_error(path: str, line: int, exc: ValidationError) -> DataError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"]
    if not loc and ": " in msg:  # a model-level check names its field in the message
        field, _, msg = msg.removeprefix("Value error, ").partition(": ")
        return DataError(path, line, field, msg)
    field = ".".join(loc) or None
    if err["type"] == "missing":
        msg = "is missing"
    return DataError(path, line, field, msg.removeprefix("Value error, "))
