"""Work spread over processes: one model copy per GPU, the rows split between them.

Launch any negolens script or verb under ``torchrun`` or ``accelerate launch`` (both set
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``)::

    torchrun --nproc-per-node 4 -m negolens.cli negotiate --scenarios craigslist-test ...
    accelerate launch --num-processes 4 -m negolens.cli attention --transcripts craigslist-dev ...

Each process loads the model on its own GPU (``device="auto"`` is ``cuda:LOCAL_RANK`` there,
``LOCAL_RANK`` modulo the GPUs when there are fewer GPUs than processes)
and, inside :func:`sharded` (the verbs above enter it; so can a script), takes every ``size``-th row (:func:`shard`: dialogues to negotiate, transcripts to record
attention on, decision points to sweep heads at), and :func:`gather` hands every process the
whole result in the original order, so the statistics that follow (bootstrap CIs, permutation
tests) see all rows and come out the same as in one process. Only the main process writes the
output files. Without those variables, or outside :func:`sharded`, every process does all the
rows — as a GRPO process does with its own rollouts, which must never be split further. The process
group is created on first use: NCCL when every process of a machine has a GPU of its own, gloo
otherwise (:func:`backend`; the tests run two CPU processes with gloo).
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

from negolens.loading import DEVICE_ENV

__all__ = ["World", "world", "init", "backend", "sharded", "active_world", "shard", "gather", "barrier", "is_main", "shutdown",
           "shutdown_at_exit"]

T = TypeVar("T")
_SHARDED: ContextVar[bool] = ContextVar("negolens_sharded", default=False)


@dataclass(frozen=True)
class World:
    """This process's place among the launched processes.

    Examples
    --------
    >>> World(rank=1, size=2, local_rank=1).main
    False
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is the process that writes files (rank 0)."""
        return self.rank == 0


def world() -> World:
    """The launch environment (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``); one process when unset.

    Examples
    --------
    >>> import os
    >>> world().size if "WORLD_SIZE" not in os.environ else 1
    1
    """
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return World(rank, size, int(os.environ.get("LOCAL_RANK", rank)))


def is_main() -> bool:
    """Whether this process writes the output files (always true in a single process)."""
    return world().main


def init() -> World:
    """Join the process group when launched with several processes (idempotent); return :func:`world`.

    A joined group is destroyed when the interpreter exits (:func:`shutdown`, registered with
    :mod:`atexit` by :func:`shutdown_at_exit`): a gloo group left to C++ static destruction
    can abort the process at exit ("terminate called without an active exception", pytorch
    issue #190489) after the work itself finished.
    """
    w = world()
    if w.size > 1 and not dist.is_initialized():
        name = backend(int(os.environ.get("LOCAL_WORLD_SIZE", w.size)),
                       torch.cuda.device_count() if torch.cuda.is_available() else 0, os.environ.get(DEVICE_ENV, ""))
        dist.init_process_group(name, rank=w.rank, world_size=w.size)
        if name == "nccl":
            torch.cuda.set_device(w.local_rank)
    shutdown_at_exit()
    return world()


def backend(local_size: int, gpus: int, device: str = "") -> str:
    """The process group's backend, the same on every rank of a launch.

    ``"nccl"`` when each of the ``local_size`` processes on this machine has a GPU of its own
    and ``device`` (``$NEGOLENS_DEVICE``) does not send the models to the CPU; ``"gloo"``
    otherwise. Every rank must pick the same backend, so the answer depends on nothing that
    differs between the ranks of a machine (not the rank itself): with two processes on one
    GPU both now join gloo, where rank 0 used to wait in NCCL for a rank 1 that waited in gloo.

    Assumes what torchrun and ``accelerate launch`` set up: every machine of a launch has the
    same number of GPUs and every process sees all of them (``LOCAL_WORLD_SIZE`` set). To run
    the processes of a GPU machine on its CPU, set ``NEGOLENS_DEVICE=cpu``; a verb's
    ``--device cpu`` alone does not reach this choice. Two processes sharing one GPU with
    their models on it ran to the end over gloo (one GPU run of the tests' ``cuda`` variants).

    Parameters
    ----------
    local_size : int
        Processes on this machine (``$LOCAL_WORLD_SIZE``).
    gpus : int
        CUDA devices this process sees (0 without CUDA).
    device : str
        ``$NEGOLENS_DEVICE`` (``""`` when unset).

    Returns
    -------
    str
        ``"nccl"`` or ``"gloo"``.

    Examples
    --------
    >>> backend(local_size=2, gpus=2), backend(local_size=2, gpus=1), backend(2, 0)
    ('nccl', 'gloo', 'gloo')
    >>> backend(local_size=2, gpus=8, device="cpu")
    'gloo'
    """
    on_cpu = device.strip().lower().startswith("cpu")
    return "nccl" if gpus >= local_size and gpus > 0 and not on_cpu else "gloo"


def shutdown_at_exit() -> None:
    """Have :func:`shutdown` run at interpreter exit if a process group is joined (idempotent).

    :func:`init` calls it; so does GRPO training, whose group ``accelerate`` creates.

    Examples
    --------
    >>> shutdown_at_exit()  # one process: no group, nothing registered
    """
    if dist.is_available() and dist.is_initialized():
        atexit.unregister(shutdown)  # registered once however often this runs
        atexit.register(shutdown)


def shutdown() -> None:
    """Leave the process group if one is joined (idempotent; a no-op in a single process).

    Call it when a script's distributed work is done; :func:`init` also registers it to run
    at interpreter exit.

    Examples
    --------
    >>> shutdown()
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def sharded():
    """Inside this block, :func:`shard` splits rows between the launched processes.

    Joins the process group when there are several processes; yields :func:`world`.

    Examples
    --------
    >>> with sharded() as w:
    ...     w.size if "WORLD_SIZE" not in os.environ else 1
    1
    """
    token = _SHARDED.set(True)
    try:
        yield init()
    finally:
        _SHARDED.reset(token)


def active_world() -> World:
    """:func:`world` inside :func:`sharded`, else a world of one process (no rows split)."""
    return init() if _SHARDED.get() else World()


def shard(items: Sequence[T]) -> list[tuple[int, T]]:
    """This process's rows as ``(index, item)``: every ``size``-th, starting at ``rank``.

    Outside :func:`sharded` (and in a single process) that is every row.

    Examples
    --------
    >>> shard(["a", "b", "c"])
    [(0, 'a'), (1, 'b'), (2, 'c')]
    """
    w = active_world()
    return [(i, items[i]) for i in range(w.rank, len(items), w.size)]


def gather(rows: list[tuple[int, T]], n: int) -> list[T]:
    """Every process's ``(index, value)`` rows, as one list of ``n`` values in index order.

    Each process passes the rows it computed for its :func:`shard`; each gets the whole list
    (outside :func:`sharded`, ``rows`` are all there is).

    Examples
    --------
    >>> gather([(1, "y"), (0, "x")], 2)
    ['x', 'y']
    """
    w = active_world()
    everyone = [rows]
    if w.size > 1:
        everyone = [None] * w.size
        dist.all_gather_object(everyone, rows)
    out: list = [None] * n
    seen = 0
    for part in everyone:
        for i, value in part:
            out[i] = value
            seen += 1
    if seen != n:
        raise RuntimeError(f"gathered {seen} rows for {n} indices: processes disagree on the input")
    return out


def barrier() -> None:
    """Inside :func:`sharded`, wait for every process (nothing to wait for in a single process)."""
    if active_world().size > 1:
        dist.barrier()
