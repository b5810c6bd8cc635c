"""Where negolens keeps things: the model cache and the data directory.

Both are configurable, never hard-coded into the code that uses them:

* model cache: ``$NEGOLENS_CACHE/models`` (default ``~/.cache/negolens/models``);
* data: ``$NEGOLENS_DATA``, else the first of ``./data``, ``../shared/data`` that exists.
  With no data directory negolens still runs on its built-in scenarios.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NEGOLENS_CACHE"
DATA_ENV = "NEGOLENS_DATA"


def cache_root() -> Path:
    """Root of negolens' on-disk cache (models, wheels)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "negolens"


def models_dir() -> Path:
    """Directory holding one converted HF model directory per zoo name."""
    return cache_root() / "models"


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data directory to read shared datasets from, or ``None`` if there is none.

    Precedence: ``explicit`` argument, then ``$NEGOLENS_DATA``, then ``./data`` and
    ``../shared/data`` relative to the working directory.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    for candidate in (Path("data"), Path("..") / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None
