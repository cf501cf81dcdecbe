"""The ``teacherlm`` command: one subcommand per stage.

Every subcommand validates its input and turns a :class:`~teacherlm_core.errors.TeacherLMError`
into exit code 2 and one line on stderr naming file, line and field; ``--debug`` shows the
traceback instead. The global options (``--debug``, ``--verbose``, ``--no-track``) are accepted
before or after the subcommand. Heavy imports happen inside the commands so ``teacherlm --help``
is instant.
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
    track: bool = typer.Option(
        True,
        "--track/--no-track",
        help="Log runs to MLflow (MLFLOW_TRACKING_URI, else a local store); --no-track: no MLflow call at all.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    os.environ["TEACHERLM_DEBUG"] = "1" if debug else os.environ.get("TEACHERLM_DEBUG", "")
    # vLLM logs its whole engine config at INFO: only with --verbose, like teacherlm's own INFO lines.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    if not track:
        from ..tracking import TRACKING_ENV

        os.environ[TRACKING_ENV] = "off"
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:  # DeepSpeed, imported by transformers on saving a model, announces a CPU machine
        logging.getLogger("DeepSpeed").addFilter(_no_cpu_accelerator_notice)
    from ..redaction import RedactingFilter

    for handler in logging.getLogger().handlers:  # no secret reaches a log line (URL credentials, keys)
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def _no_cpu_accelerator_notice(record: logging.LogRecord) -> bool:
    """Drop DeepSpeed's "Setting accelerator to CPU" warning: on a CPU machine that is no news (the
    training ranks say DS_ACCELERATOR=cpu and never print it); every other DeepSpeed line stays."""
    return "Setting accelerator to CPU" not in record.getMessage()


def _register() -> None:
    from . import commands

    commands.register(app)


# Options of the whole command, accepted anywhere on the line (moved before the subcommand).
GLOBAL_FLAGS = ("--debug", "--verbose", "-v", "--track", "--no-track")


def hoist_global_flags(argv: list[str]) -> list[str]:
    """``argv`` (without the program name) with the global flags moved before the subcommand.

    ``teacherlm evaluate ... --debug`` then means ``teacherlm --debug evaluate ...``. A flag the
    subcommand declares itself (``train student --no-track`` overrides its config) stays where it
    is; nothing after a ``--`` moves.
    """
    end = argv.index("--") if "--" in argv else len(argv)
    root = command = typer.main.get_command(app)
    for token in argv[:end]:  # the subcommand the line names (``augment plan``: plan)
        if token in getattr(command, "commands", {}):  # a group (typer ships its own click)
            command = command.commands[token]
    own = set() if command is root else {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    move = [a for a in argv[:end] if a in GLOBAL_FLAGS and a not in own]
    keep = [a for a in argv[:end] if a not in move]
    return list(dict.fromkeys(move)) + keep + argv[end:]


def main() -> None:
    """Console-script entry point: exit 0, 2 with one ``error:`` line (a usage error or a
    :class:`~teacherlm_core.errors.TeacherLMError`), 1 on Ctrl-C's abort or (with ``--debug``) a traceback."""
    _register()
    args = hoist_global_flags(sys.argv[1:])
    try:
        # Not standalone: a usage error comes here, to be said in one line like every other error.
        rc = typer.main.get_command(app).main(args=args, prog_name="teacherlm", standalone_mode=False)
    except TeacherLMError as exc:
        if os.environ.get("TEACHERLM_DEBUG") == "1":
            raise
        from ..redaction import redact_text

        print(f"error: {redact_text(str(exc))}", file=sys.stderr)  # no URL credentials or keys
        sys.exit(2)
    except typer.TyperException as exc:  # click's usage errors (typer ships its own click)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `teacherlm data`: its help
            typer.echo(ctx.get_help())
            sys.exit(getattr(exc, "exit_code", 2))  # click's code for a command line that asks nothing
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
