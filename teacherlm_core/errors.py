"""The exception types of teacherlm.

Every data error names the file, the line (1-based; for Parquet the row) and the field, so a
user can open the file at the right place. The CLI turns a ``TeacherLMError`` into exit code 2
and one line on stderr (a traceback only with ``--debug``).
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "EngineError", "StorageError", "TeacherLMError"]


class TeacherLMError(Exception):
    """Base class: an error the user can fix; the CLI prints it as one line.

    Its text is redacted (:func:`~teacherlm_core.redaction.redact_text`) wherever it is shown: the
    CLI's line, a traceback in a pipeline pod's log, a job's failure reason in the UI.
    """

    def __str__(self) -> str:
        from .redaction import redact_text

        return redact_text(super().__str__())


class DataError(TeacherLMError):
    """A record (or a whole file) that breaks the data contract.

    Attributes:
        path: the file, as the user named it.
        line: 1-based line number (JSONL) or row number (Parquet); ``None`` for the whole file.
        field: the offending field; ``None`` when the problem is not one field.
        reason: what is wrong, in words.
    """

    def __init__(self, path: str, line: int | None, field: str | None, reason: str):
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        super().__init__(self.location() + reason)

    def location(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: " + (f"field '{self.field}': " if self.field else "")


class ConfigError(TeacherLMError):
    """A configuration that failed validation; lists every problem at once."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__(f"{source}: {len(problems)} problem(s): " + "; ".join(problems))


class StorageError(TeacherLMError):
    """A storage URI that cannot be read or written (missing object, bad credentials...)."""


class EngineError(TeacherLMError):
    """An inference engine that cannot start or answer."""
