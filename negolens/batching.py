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


@dataclass
class Batch:
    """A left-padded batch. ``pad[b]`` pad tokens precede sequence ``b``'s real tokens."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    position_ids: Int[Tensor, "batch pos"]
    lengths: list[int]

    @property
    def pad(self) -> list[int]:
        width = self.input_ids.shape[1]
        return [width - n for n in self.lengths]

    def column(self, row: int, index: int) -> int:
        """Padded column of token ``index`` of sequence ``row`` (negative indices count from the end)."""
        n = self.lengths[row]
        if not -n <= index < n:
            raise IndexError(f"token {index} out of range for a sequence of {n} tokens")
        return self.pad[row] + (index % n)

    def to(self, device: str | torch.device) -> "Batch":
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.position_ids.to(device),
            list(self.lengths),
        )


def left_pad(sequences: list[list[int]], pad_id: int) -> Batch:
    """Stack token-id lists into a left-padded :class:`Batch`."""
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
