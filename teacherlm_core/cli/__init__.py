"""The ``teacherlm`` command: one subcommand per stage.

Every subcommand validates its input and turns a :class:`~teacherlm_core.errors.TeacherLMError`
into exit code 2 and one line on stderr naming file, line and field; ``--debug`` shows the
traceback instead. Heavy imports happen inside the commands so ``teacherlm --help`` is instant.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from .. import __version__
from ..errors import TeacherLMError

__all__ = ["app", "main"]

app = typer.Typer(
    name="teacherlm",
    help=(
        "TeacherLM as a batch system: build teacher data, train a teacher, augment any dataset "
        "with fundamentals / chain of thought / common mistakes, train and evaluate students."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"teacherlm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks instead of one-line errors.", envvar="TEACHERLM_DEBUG"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    os.environ["TEACHERLM_DEBUG"] = "1" if debug else os.environ.get("TEACHERLM_DEBUG", "")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from ..redaction import RedactingFilter

    for handler in logging.getLogger().handlers:  # no secret reaches a log line (URL credentials, keys)
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def _register() -> None:
    from . import commands

    commands.register(app)


def main() -> None:
    """Console-script entry point."""
    _register()
    try:
        app()
    except TeacherLMError as exc:
        if os.environ.get("TEACHERLM_DEBUG") == "1":
            raise
        from ..redaction import redact_text

        print(f"error: {redact_text(str(exc))}", file=sys.stderr)  # no URL credentials or keys
        sys.exit(2)
