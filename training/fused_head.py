"""TRL's fused LM head on the CPU: score only the positions that carry a label.

TRL's ``GRPOTrainer`` turns hidden states into per-token log-probabilities with a chunked,
fused LM head (``trl.trainer.utils.add_fused_lm_head``): the vocabulary is walked in tiles, so
the ``positions x vocab`` logits never exist at once. Where Triton runs (CUDA, XPU) it first
keeps only the labelled positions (the completion). Elsewhere it scores *every* position and
masks the prompt's afterwards, so that tile shapes stay fixed for compilers such as XLA. On a
CPU that is only waste: a negotiation's prompt is ~250 tokens and the buyer's dialogue ~40,
so the head (and its fp32 casts, exponentials and backward) does ~7x the work it needs.

:func:`scored_positions_only` makes TRL take its compact path on the CPU too, for the duration
of a ``with`` block; the log-probabilities of the labelled positions are the same (each row's
log-softmax is its own), the prompt's are zero either way. :func:`~negolens.training.grpo.train_grpo`
trains inside it (on CUDA it changes nothing). It changes one private TRL function for the duration
of the block, so it does nothing on a TRL without it (the head then scores every position,
as before). The swap is process-wide: other threads using TRL's head meanwhile get the compact
path too (exact, as above); blocks in several threads that end out of order are not supported.
"""

from __future__ import annotations

import contextlib

__all__ = ["scored_positions_only"]


@contextlib.contextmanager
def scored_positions_only():
    """Inside the block, TRL's fused LM head scores only the labelled positions on the CPU too.

    Yields
    ------
    bool
        Whether TRL's head was switched (``False`` on a TRL without the fused head).

    Examples
    --------
    >>> from negolens.training.fused_head import scored_positions_only
    >>> import torch, trl.trainer.utils as tu
    >>> with scored_positions_only() as switched:
    ...     switched, tu._use_triton(torch.device("cpu"))
    (True, True)
    >>> tu._use_triton(torch.device("cpu"))
    False
    """
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:  # pragma: no cover - without TRL there is no head to switch
        yield False
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None:  # pragma: no cover - another TRL: leave its head alone
        yield False
        return

    def compact(device) -> bool:  # only the head's choice of positions reads this name in trl.trainer.utils
        return device.type == "cpu" or original(device)

    trl_utils._use_triton = compact
    try:
        yield True
    finally:
        trl_utils._use_triton = original
