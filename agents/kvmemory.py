"""Cross-turn KV-cache reuse for the turn decoder.

Turn t+1's prompt of a dialogue is turn t's prompt, the agent's own reply and the counterpart's
answer. Keeping each live dialogue's keys and values after a turn lets the next turn prefill
only the tokens past the longest common prefix with what is cached — typically 40–80 tokens
instead of the whole 200–600-token conversation.

Batched layout of a step with reuse (row i reuses ``c_i`` cached tokens and adds ``n_i``)::

    cache part  [pad × (C − c_i)] [cached c_i]     new part  [pad × (N − n_i)] [new n_i]

Padding in the middle is masked (attention mask 0) and positions come from the row's own
count, so logits equal a full prefill (tested). Only plain full-attention caches are reused;
sliding-window models (Gemma-3) fall back to a full prefill.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


@dataclass
class Memory:
    """One dialogue's tokens and their per-layer keys/values ``[kv_heads, len, d_head]``."""

    ids: list[int]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]


def reusable(cache) -> bool:
    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", []))


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def stack(memories: list[Memory | None], reuse: list[int], device) -> tuple[DynamicCache | None, torch.Tensor]:
    """Left-pad the reused prefixes into one batched cache; returns (cache, cache mask [B, C])."""
    width = max(reuse)
    mask = torch.zeros((len(reuse), width), dtype=torch.long, device=device)
    if width == 0:
        return None, mask
    ref = next(m for m, c in zip(memories, reuse) if c > 0)
    layers = []
    for layer in range(len(ref.keys)):
        shape = (len(reuse), ref.keys[layer].shape[0], width, ref.keys[layer].shape[-1])
        k = torch.zeros(shape, dtype=ref.keys[layer].dtype, device=device)
        v = torch.zeros_like(k)
        for row, (mem, c) in enumerate(zip(memories, reuse)):
            if c:
                k[row, :, width - c :] = mem.keys[layer][:, :c]
                v[row, :, width - c :] = mem.values[layer][:, :c]
        layers.append((k, v))
    for row, c in enumerate(reuse):
        mask[row, width - c :] = 1 if c else 0
    return DynamicCache(ddp_cache_data=layers), mask


def split(cache, mask: torch.Tensor, ids: list[list[int]]) -> list[Memory]:
    """Per-row memories from a batched cache: keep the positions whose mask is 1."""
    out = []
    for row in range(mask.shape[0]):
        keep = mask[row].nonzero().squeeze(-1)
        keys = [layer.keys[row][:, keep].clone() for layer in cache.layers]
        values = [layer.values[row][:, keep].clone() for layer in cache.layers]
        if keys and keys[0].shape[1] != len(ids[row]):
            raise RuntimeError("KV memory out of sync with the token ids")
        out.append(Memory(list(ids[row]), keys, values))
    return out
