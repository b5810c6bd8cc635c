"""negolens' top layer: the ``negolens`` command line, the one-command study and the benchmarks.

Nothing below imports this package. Every verb is argument parsing (options derived from the
library's config dataclasses, :mod:`negolens.cli.options`), one call of a public library
function, and writing files. Run ``negolens --help`` for the list, ``negolens VERB --help`` for
each.
"""

from __future__ import annotations

import sys

import typer

from negolens.errors import NegolensError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="negolens — make LLM buyers and sellers haggle, fine-tune them, and open them up.")

from negolens.cli import models, world, train, reading, ablate, study, report, bench  # noqa: E402,F401  (register verbs)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: user errors print one clear line and exit 2, never a traceback."""
    try:
        app()
    except NegolensError as err:
        typer.echo(f"negolens: error: {err}", err=True)
        sys.exit(2)
