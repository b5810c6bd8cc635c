"""Head ablations on the per-head attention output ``z`` — before the output projection.

Heads are only separable before the output projection (after it their outputs are summed), so
ablations act on ``z`` (TransformerLens' ``hook_z``) through
:func:`negolens.interventions.intervene`: the same mechanism works for a plain forward, for
generation in the negotiation runner, and for the partial forwards of the fast sweep. Kinds
(:data:`ABLATION_KINDS`):

* ``zero`` — the head's output set to 0;
* ``mean`` — replaced by its mean over a reference corpus, per position class (template
  scaffolding, price, verb, other content): :func:`reference_means`;
* ``resample`` — replaced by the same head's output on another decision point (the batch
  rolled by one, right-aligned — positions count back from the decision), the mean where the
  donor is shorter: :func:`replacement_values`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from negolens.autobatch import map_chunks
from negolens.errors import NegolensError
from negolens.interventions import ablations, capture, intervene

__all__ = ["ABLATION_KINDS", "CLASSES", "ablated", "check_kind", "position_classes", "reference_means",
           "replacement_values"]

CLASSES = ("scaffold", "price", "verb", "other")
"""Position classes of :func:`position_classes` (mean ablation averages per class)."""

ABLATION_KINDS = ("zero", "mean", "resample")
"""How a head can be ablated in a sweep."""


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`ABLATION_KINDS`, else a :class:`NegolensError` listing them."""
    if kind not in ABLATION_KINDS:
        raise NegolensError(f"unknown ablation kind {kind!r}; use one of {', '.join(ABLATION_KINDS)}")
    return kind


@contextmanager
def ablated(model, heads: list[tuple[int, int]], values: dict | None = None, kind: str | None = None) -> Iterator[None]:
    """Ablate the given (layer, head) pairs for every forward inside the block — generation included.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    heads
        (layer, head) pairs.
    values
        Replacement per pair, broadcastable to ``[batch, pos, d_head]``; ``None``: zero ablation.
    kind
        Label of the replacement (``mean``, ``resample``, ``patch``); default ``zero`` without
        ``values``, ``mean`` with them.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> model = tiny_model()
    >>> batch = model.batch([[5, 6, 7, 8]])
    >>> with ablated(model, [(0, 0), (1, 3)]):
    ...     logits = model.logits(batch)
    """
    kind = kind or ("zero" if values is None else "mean")
    with intervene(model, ablations(heads, kind, values)):
        yield


def position_classes(model, ids: list[int]) -> torch.Tensor:
    """Class index per token of a rendered prompt (see :data:`CLASSES`)."""
    from negolens.chat import tokens_overlapping
    from negolens.lexicon import VERB_RE
    from negolens.prices import find_prices

    text = model.tokenizer.decode(ids)
    enc = model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"] if enc["input_ids"] == ids else [(0, 0)] * len(ids)
    cls = torch.full((len(ids),), CLASSES.index("other"), dtype=torch.long)
    special = set(model.tokenizer.all_special_ids)
    for i, t in enumerate(ids):
        if t in special:
            cls[i] = CLASSES.index("scaffold")
    for p in find_prices(text):
        cls[tokens_overlapping(offsets, p.start, p.end)] = CLASSES.index("price")
    for m in VERB_RE.finditer(text):
        cls[tokens_overlapping(offsets, m.start(), m.end())] = CLASSES.index("verb")
    return cls


def batch_classes(model, batch, points) -> torch.Tensor:
    """Position class per batch cell ``[batch, pos]`` (left padding counts as scaffold), on the batch's device."""
    cls = torch.full(batch.input_ids.shape, CLASSES.index("scaffold"), dtype=torch.long)
    for r, p in enumerate(points):
        cls[r, batch.pad[r]:] = position_classes(model, p.ids)
    return cls.to(batch.input_ids.device)


@torch.inference_mode()
def reference_means(model, points, batch_size: int | str = 4) -> torch.Tensor:
    """Mean ``z`` per (layer, position class, head) over ``points``.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    points
        Decision points (anything with ``.ids``) to average over.
    batch_size
        Points per forward, or ``"auto"`` (halved and retried on out-of-memory).

    Returns
    -------
    torch.Tensor
        ``[n_layers, len(CLASSES), n_heads, d_head]`` (float32, on the CPU; summed on the model's device).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from negolens.testing import tiny_model
    >>> model = tiny_model()
    >>> tuple(reference_means(model, [SimpleNamespace(ids=[5, 6, 7])]).shape)
    (2, 4, 4, 16)
    """
    L, H, d = model.shape.n_layers, model.shape.n_heads, model.shape.d_head

    def part(chunk: list) -> tuple[torch.Tensor, torch.Tensor]:  # one forward; retried smaller on out-of-memory
        sums = torch.zeros((L, len(CLASSES), H, d), device=model.device)
        counts = torch.zeros((len(CLASSES),), device=model.device)
        batch = model.batch([p.ids for p in chunk])
        cls = batch_classes(model, batch, chunk)
        cls[batch.attention_mask == 0] = -1  # padding is in no class
        with capture(model, "attn_z") as grabbed:
            model.logits(batch)
        for c in range(len(CLASSES)):
            sel = cls == c
            counts[c] += sel.sum()
            for layer in range(L):
                sums[layer, c] += grabbed[layer][sel].float().reshape(-1, H, d).sum(0)
        return sums, counts

    parts = map_chunks(part, list(points), batch_size, model.device, cpu_default=4)
    sums, counts = sum(p[0] for p in parts), sum(p[1] for p in parts)
    return (sums / counts.clamp(min=1)[None, :, None, None]).cpu()


def replacement_values(model, batch, points, z: dict, kind: str, means: torch.Tensor) -> dict[int, torch.Tensor]:
    """Replacement ``z`` per layer for a mean or resample ablation: ``{layer: [batch, pos, n_heads, d_head]}``.

    ``mean``: the reference mean of the cell's position class. ``resample``: the next point's
    own ``z`` (the batch rolled by one, right-aligned), the mean where the donor is padding.
    ``z`` is the clean run's ``z`` per layer (``[batch, pos, n_heads·d_head]``).
    """
    if check_kind(kind) == "zero":
        raise NegolensError("zero ablation needs no replacement values")
    B, T = batch.input_ids.shape
    H, d = model.shape.n_heads, model.shape.d_head
    cls = batch_classes(model, batch, points)
    out = {}
    for layer, zl in z.items():
        mean = means[layer].to(device=zl.device, dtype=zl.dtype)[cls.to(zl.device)]  # [B, T, H, d]
        if kind == "mean":
            out[layer] = mean
        else:
            donor = zl.reshape(B, T, H, d).roll(1, dims=0)
            real = batch.attention_mask.roll(1, dims=0).bool()[..., None, None]
            out[layer] = torch.where(real, donor, mean)
    return out
