"""Cross-turn KV-cache reuse for the turn decoder.

Turn t+1's prompt of a dialogue is turn t's prompt, the agent's own reply and the counterpart's
answer. Keeping each live dialogue's keys and values after a turn lets the next turn prefill
only the tokens past the longest common prefix with what is cached (about the two newest messages)
instead of the whole conversation.

Batched layout of a step with reuse (row i reuses ``c_i`` cached tokens and adds ``n_i``)::

    cache part  [pad × (C − c_i)] [cached c_i]     new part  [pad × (N − n_i)] [new n_i]

Padding in the middle is masked (attention mask 0) and positions come from the row's own
count, so logits equal a full prefill (tested). Only plain full-attention caches are reused;
sliding-window models (Gemma-3) fall back to a full prefill.

:class:`BufferedCache` also removes the biggest cost of incremental decoding on CPU: HF's
``DynamicCache`` concatenates every layer's keys and values at every step; a buffered layer
writes into preallocated storage that doubles when full.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class BufferedLayer(DynamicLayer):
    """A full-attention cache layer that appends in place into doubling storage."""

    def update(self, key_states, value_states, *args, **kwargs):
        """Append ``[batch, kv_heads, new, d_head]`` keys/values; return all cached so far."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._k = self._v = None
            self._n = 0
        add = key_states.shape[-2]
        if self._k is None or self._n + add > self._k.shape[-2]:
            cap = max(2 * (self._n + add), 256)
            k = key_states.new_empty(*key_states.shape[:-2], cap, key_states.shape[-1])
            v = value_states.new_empty(*value_states.shape[:-2], cap, value_states.shape[-1])
            if self._n:
                k[..., : self._n, :] = self._k[..., : self._n, :]
                v[..., : self._n, :] = self._v[..., : self._n, :]
            self._k, self._v = k, v
        self._k[..., self._n : self._n + add, :] = key_states
        self._v[..., self._n : self._n + add, :] = value_states
        self._n += add
        self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the batch rows ``indices`` (used when finished rows leave the batch)."""
        if self.is_initialized and self._k is not None:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]


class BufferedCache(DynamicCache):
    """A ``DynamicCache`` of :class:`BufferedLayer` (full attention only)."""

    def __init__(self, n_layers: int):
        Cache.__init__(self, layers=[BufferedLayer() for _ in range(n_layers)])


def full_attention_only(config) -> bool:
    """Whether an HF model config uses full attention in every layer (no sliding window)."""
    types = getattr(config, "layer_types", None)
    return getattr(config, "sliding_window", None) is None and (types is None or set(types) <= {"full_attention"})


@dataclass
class Memory:
    """One dialogue's tokens and their per-layer keys/values ``[kv_heads, len, d_head]``."""

    ids: list[int]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]


def reusable(cache) -> bool:
    """Whether ``cache``'s layers are plain full-attention layers whose keys/values can be kept."""
    return all(type(layer) in (DynamicLayer, BufferedLayer) for layer in getattr(cache, "layers", []))


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token-id lists.

    Examples
    --------
    >>> common_prefix([1, 2, 3, 4], [1, 2, 9])
    2
    """
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def stack(memories: list[Memory | None], reuse: list[int], device, n_layers: int) -> tuple[BufferedCache, torch.Tensor]:
    """Left-pad the reused prefixes into one batched cache; returns (cache, cache mask [B, C])."""
    width = max(reuse)
    mask = torch.zeros((len(reuse), width), dtype=torch.long, device=device)
    cache = BufferedCache(n_layers)
    if width == 0:
        return cache, mask
    ref = next(m for m, c in zip(memories, reuse) if c > 0)
    for layer in range(len(ref.keys)):
        shape = (len(reuse), ref.keys[layer].shape[0], width, ref.keys[layer].shape[-1])
        k = torch.zeros(shape, dtype=ref.keys[layer].dtype, device=device)
        v = torch.zeros_like(k)
        for row, (mem, c) in enumerate(zip(memories, reuse)):
            if c:
                k[row, :, width - c :] = mem.keys[layer][:, :c]
                v[row, :, width - c :] = mem.values[layer][:, :c]
        cache.layers[layer].update(k, v)
    for row, c in enumerate(reuse):
        mask[row, width - c :] = 1 if c else 0
    return cache, mask


def split(cache, mask: torch.Tensor, ids: list[list[int]], rows: list[int] | None = None) -> list[Memory]:
    """Memories of batch ``rows`` (default all; ``ids`` aligned with them): positions whose mask is 1."""
    out = []
    rows = list(range(mask.shape[0])) if rows is None else rows
    for n, row in enumerate(rows):
        keep = mask[row].nonzero().squeeze(-1)
        keys = [layer.keys[row][:, keep].clone() for layer in cache.layers]
        values = [layer.values[row][:, keep].clone() for layer in cache.layers]
        if keys and keys[0].shape[1] != len(ids[n]):
            raise RuntimeError("KV memory out of sync with the token ids")
        out.append(Memory(list(ids[n]), keys, values))
    return out
