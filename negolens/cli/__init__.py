"""negolens' top layer: the ``negolens`` command line, the one-command study and the benchmarks.

Nothing below imports this package. Every verb is argument parsing (options derived from the
library's config dataclasses, :mod:`negolens.cli.options`), one call of a public library
function, and writing files. Run ``negolens --help`` for the list, ``negolens VERB --help`` for
each.

Errors (:func:`main`): a mistake in the input — an unknown option, a bad value, a missing or
unreadable file, anything raised as :class:`~negolens.errors.NegolensError` — prints ONE line,
``negolens: error: …``, and exits with status 2, with no traceback. Out-of-memory and other
environment errors (``OSError``) are one line too. Anything else is a bug in negolens: it prints
the traceback and a request to report it, and exits with status 1. ``--debug`` (anywhere on the
command line, or ``NEGOLENS_DEBUG=1``) re-raises every error with its full traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

try:  # typer ≥ 0.17 vendors click; its exceptions are not click's
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover — older typer uses click itself
    from click import exceptions as click_exc

from negolens.errors import NegolensError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="negolens — make LLM buyers and sellers haggle, fine-tune them, and open them up.")

DEBUG_FLAG = "--debug"
USER_ERROR, BUG = 2, 1  # exit statuses


@app.callback()
def _root(debug: bool = typer.Option(False, DEBUG_FLAG, help="show the full traceback of any error")) -> None:
    """negolens — make LLM buyers and sellers haggle, fine-tune them, and open them up."""

from negolens.cli import models, world, train, reading, ablate, study, report, bench, metrics, checkpoints  # noqa: E402,F401  (register verbs)

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the command line; a user error is one line and exit status 2 (see the module docstring).

    Parameters
    ----------
    argv
        The arguments (default ``sys.argv[1:]``). ``--debug`` anywhere in them shows tracebacks.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or os.environ.get("NEGOLENS_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        code = app(args=args, prog_name="negolens", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as err:  # `negolens` alone: the help (rich prints it itself)
        if err.format_message().strip():
            typer.echo(err.format_message(), err=True)
        sys.exit(USER_ERROR)
    except typer.Abort:  # EOF at a prompt
        if debug:
            raise
        typer.echo("negolens: aborted", err=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 — every error ends here: one line for the user, a traceback for a bug
        if debug:
            raise
        sys.exit(report_error(err))
    sys.exit(code if isinstance(code, int) else 0)


def report_error(err: BaseException) -> int:
    """Print ``err`` the way :func:`main` does and return the exit status (2: user, 1: bug).

    Examples
    --------
    >>> import contextlib, io
    >>> buf = io.StringIO()
    >>> with contextlib.redirect_stderr(buf):
    ...     report_error(NegolensError("no such file: x.jsonl"))
    2
    >>> buf.getvalue()
    'negolens: error: no such file: x.jsonl\\n'
    """
    line = user_message(err)
    if line is not None:
        typer.echo(f"negolens: error: {line}", err=True)
        return USER_ERROR
    traceback.print_exception(err)
    typer.echo(f"negolens: internal error ({type(err).__name__}: {err}). This is a bug in negolens, not in your "
               "input: please report it with the command line and the traceback above.", err=True)
    return BUG


def user_message(err: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or ``None`` for a bug.

    Examples
    --------
    >>> user_message(NegolensError("bad --n")), user_message(KeyError("score")) is None
    ('bad --n', True)
    >>> user_message(FileNotFoundError(2, "No such file or directory", "x.csv"))
    'No such file or directory: x.csv'
    """
    if isinstance(err, NegolensError):
        return " ".join(str(err).split("\n")).strip() or type(err).__name__
    if isinstance(err, click_exc.UsageError):
        where = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
        return err.format_message().replace("\n", " ") + where
    if isinstance(err, click_exc.ClickException):
        return err.format_message().replace("\n", " ")
    if type(err).__name__ == "OutOfMemoryError" or isinstance(err, MemoryError):
        first = (str(err).splitlines() or [type(err).__name__])[0]
        return f"out of memory ({first}): try a smaller --batch-size or --max-tokens"
    if isinstance(err, OSError) and not isinstance(err, (ConnectionError, TimeoutError)):
        what = err.strerror or str(err) or type(err).__name__
        return f"{what}: {err.filename}" if err.filename else what
    return None
