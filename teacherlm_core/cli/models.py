"""``teacherlm models``: the named local models (real models shipped inside PyPI wheels).

teacherlm models list
teacherlm models convert smollm2-135m-instruct     # once; prints the directory every command can use
"""

from __future__ import annotations

import typer

from .progress import console

__all__ = ["app"]

app = typer.Typer(
    help="Named local models: real models that ship inside PyPI wheels, converted once to safetensors.",
    no_args_is_help=True,
)


@app.command("list")
def list_models() -> None:
    """The named models, their origin and licence, and whether they are converted yet."""
    from rich.table import Table

    from ..models import MARKER, NAMED, model_cache

    table = Table("name", "origin", "licence", "converted")
    for named in NAMED.values():
        where = model_cache() / named.name
        table.add_row(
            named.name, named.origin, named.licence, str(where) if (where / MARKER).is_file() else "no"
        )
    console.print(table)


@app.command("convert")
def convert(name: str = typer.Argument(..., help="A named model, e.g. smollm2-135m-instruct.")) -> None:
    """Convert a named model once (checksummed) and print its directory; the name itself works everywhere too."""
    from ..errors import ConfigError
    from ..models import NAMED, provenance, resolve_model

    if name not in NAMED:
        raise ConfigError("name", [f"{name!r}: choose one of {', '.join(NAMED)}"])
    path = resolve_model(name)
    origin = provenance(name)
    console.print(
        f"[green]{name}[/] at {path}\n{origin['origin']}; licence {origin['licence']}", soft_wrap=True
    )
