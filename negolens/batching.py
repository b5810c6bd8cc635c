"""Left-padded batches with correct attention masks and position ids.

Decoder-only generation appends on the right, so batches are padded on the LEFT. Padding must
not shift positions: ``position_ids`` count only real tokens (RoPE models otherwise see every
padded row at the wrong positions), and ``attention_mask`` hides pad tokens from every query.
With both set, a padded row's logits equal the unpadded sequence's (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

__all__ = ["Batch", "left_pad", "last_position"]


@dataclass
class Batch:
    """A left-padded batch. ``pad[b]`` pad tokens precede sequence ``b``'s real tokens."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    position_ids: Int[Tensor, "batch pos"]
    lengths: list[int]

    @property
    def pad(self) -> list[int]:
        """Number of pad tokens in front of each sequence (``width - length`` per row)."""
        width = self.input_ids.shape[1]
        return [width - n for n in self.lengths]

    def to(self, device: str | torch.device) -> "Batch":
        """A copy of the batch with every tensor on ``device`` (e.g. ``"cpu"``, ``"cuda"``)."""
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.position_ids.to(device),
            list(self.lengths),
        )


def left_pad(sequences: list[list[int]], pad_id: int) -> Batch:
    """Stack token-id lists into a left-padded :class:`Batch`.

    Parameters
    ----------
    sequences
        One list of token ids per row; none may be empty.
    pad_id
        Token id written into the padding (masked out, so its value does not matter).

    Returns
    -------
    Batch
        ``input_ids``, ``attention_mask`` (1 = real token) and ``position_ids`` (0 at each
        row's first real token), all ``[batch, max length]``.

    Examples
    --------
    >>> b = left_pad([[5, 6, 7], [8]], pad_id=0)
    >>> b.input_ids.tolist()
    [[5, 6, 7], [0, 0, 8]]
    >>> b.position_ids.tolist()
    [[0, 1, 2], [0, 0, 0]]
    >>> b.pad
    [0, 2]
    """
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("left_pad needs at least one sequence, and no empty sequence")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, mask, positions, [len(s) for s in sequences])


def last_position(device: str | torch.device = "cpu") -> Int[Tensor, "1"]:
    """``logits_to_keep`` for the last position only, as the index tensor ``[-1]`` rather than ``1``.

    Hugging Face models slice ``hidden[:, -1:, :]`` for ``logits_to_keep=1``: for more than one
    row a non-contiguous view, for which PyTorch's CPU matmul broadcasts the unembedding over the
    batch (a ``batch x d_model x vocab`` copy). An index tensor gathers contiguous rows instead.
    The logits are bit-for-bit the same (tested); measured here with 16 rows and SmolLM2's 49k
    vocabulary, the head takes 8 ms instead of 2.8 s in bfloat16 (24 ms instead of 138 ms in
    float32).

    Parameters
    ----------
    device
        The model's device (the index lives next to the hidden states).

    Returns
    -------
    torch.Tensor
        ``tensor([-1])``, long, on ``device``.

    Examples
    --------
    >>> last_position().tolist()
    [-1]
    """
    return torch.tensor([-1], dtype=torch.long, device=device)
