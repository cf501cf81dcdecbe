"""``python -m teacherlm_core`` is the ``teacherlm`` command."""

from .cli import main

main()
