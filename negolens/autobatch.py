"""Batch sizes that fit: ``batch_size="auto"`` and back-off when an accelerator runs out of memory.

Every loop that pushes several dialogues (or decision points) through the model at once takes a
``batch_size``. A number is used as given until the device runs out of memory; then the chunk
that failed is retried at half the size, and the smaller size is kept for the rest of the loop
(like accelerate's ``find_executable_batch_size``). ``"auto"`` starts from a size that suits the
device — :data:`AUTO_START` on CUDA, the loop's own CPU default elsewhere — and backs off the
same way. Results never depend on the batch size a chunk ran at: the loops are written so that a
row's output depends only on the row (left padding with exact position ids, per-row sampling
seeds), so a retried chunk gives what the first try would have given.

On the CPU there is normally no out-of-memory *exception* (the operating system kills the
process instead), so back-off matters on GPUs; it is tested on the CPU with injected errors.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence, TypeVar

import torch

from negolens.errors import NegolensError

__all__ = ["AUTO", "AUTO_START", "BatchSize", "check_batch_size", "is_oom", "start_size", "chunks", "map_chunks"]

AUTO = "auto"
AUTO_START = 64
"""First batch size ``"auto"`` tries on CUDA (halved on each out-of-memory error)."""

BatchSize = int | str
T = TypeVar("T")
R = TypeVar("R")


def check_batch_size(value, what: str = "batch_size") -> int | str:
    """``value`` as a batch size: an int ≥ 1 or ``"auto"`` (command-line strings like ``"8"`` → 8).

    Examples
    --------
    >>> check_batch_size("8"), check_batch_size(4), check_batch_size("auto")
    (8, 4, 'auto')
    """
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1 or (isinstance(value, float) and value != size):
        raise NegolensError(f"{what} must be a whole number ≥ 1 or 'auto' (the largest that fits, halved "
                            f"on out-of-memory), not {value!r}")
    return size


def is_oom(err: BaseException) -> bool:
    """Whether ``err`` is an accelerator out-of-memory error (CUDA, MPS, XPU)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def start_size(batch_size: int | str, device, cpu_default: int) -> int:
    """The first size to try: the number itself, or for ``"auto"`` :data:`AUTO_START` on CUDA and
    ``cpu_default`` elsewhere.

    Examples
    --------
    >>> start_size("auto", "cpu", 8), start_size("auto", "cuda:0", 8), start_size(3, "cuda", 8)
    (8, 64, 3)
    """
    size = check_batch_size(batch_size)
    if size != AUTO:
        return size
    return AUTO_START if torch.device(device).type == "cuda" else cpu_default


def _free_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def chunks(items: Sequence[T], batch_size: int | str, device="cpu", cpu_default: int = 8,
           log: Callable[[str], None] | None = None) -> Iterator[list[T]]:
    """Yield consecutive chunks of ``items``; the caller reports failures with ``.throw``.

    Prefer :func:`map_chunks` (it does the retrying); this generator is for loops whose body
    has side effects per row (e.g. records written as dialogues end): they catch the
    out-of-memory error, call ``gen.throw(err)`` and receive the rows still to redo at the new
    size from the generator's next chunk.
    """
    size = min(start_size(batch_size, device, cpu_default), max(1, len(items)))
    pos = 0
    while pos < len(items):
        chunk = list(items[pos : pos + size])
        try:
            yield chunk
        except BaseException as err:  # the caller hands back its out-of-memory error
            if not is_oom(err):
                raise
            if size == 1:
                raise NegolensError("out of memory with one row per batch: use a smaller model, fewer tokens "
                                    "(--max-tokens) or a device with more memory") from err
            size = max(1, size // 2)
            _free_cache()
            if log:
                log(f"out of memory: retrying with batch_size={size}")
            continue
        pos += len(chunk)


def map_chunks(fn: Callable[[list[T]], R], items: Sequence[T], batch_size: int | str, device="cpu",
               cpu_default: int = 8, log: Callable[[str], None] | None = None) -> list[R]:
    """``[fn(chunk) for chunk in chunks]`` where a chunk that runs out of memory is retried smaller.

    Parameters
    ----------
    fn : callable
        Runs one chunk (a list of items) and returns its result; must not have side effects
        that a retry would repeat.
    items : sequence
        Everything to process, in order.
    batch_size : int or "auto"
        Rows per chunk to start with (see :func:`start_size`).
    device : str or torch.device
        Where the model runs (decides the ``"auto"`` start).
    cpu_default : int
        The ``"auto"`` start off CUDA.
    log : callable, optional
        Receives one line per back-off.

    Returns
    -------
    list
        One result per chunk that succeeded, in order (chunks shrink after a back-off).

    Examples
    --------
    A device that cannot hold more than two rows at once:

    >>> def run(chunk):
    ...     if len(chunk) > 2:
    ...         raise torch.cuda.OutOfMemoryError("CUDA out of memory")
    ...     return sum(chunk)
    >>> map_chunks(run, [1, 2, 3, 4, 5], batch_size=8)
    [3, 7, 5]
    """
    out = []
    gen = chunks(items, batch_size, device, cpu_default, log)
    chunk = next(gen, None)
    while chunk is not None:
        try:
            result = fn(chunk)
        except BaseException as err:  # noqa: BLE001 — only out-of-memory is retried; the rest re-raises
            if not is_oom(err):
                raise
            chunk = gen.throw(err)  # next try of the same rows, smaller
            continue
        out.append(result)
        chunk = next(gen, None)
    return out
