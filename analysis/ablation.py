"""Head ablations on the per-head attention output ``z`` — before the output projection.

Heads are only separable before ``o_proj`` (after it their outputs are summed), so ablations
act on its input ``[batch, pos, n_heads·d_head]`` — TransformerLens' ``hook_z`` — through a
forward pre-hook. The same hook works for a plain forward, for generation in the negotiation
runner, and for partial forwards of the fast sweep. Kinds:

* ``zero`` — the head's output set to 0;
* ``mean`` — replaced by its mean over a reference corpus, per position class (template
  scaffolding, price, verb, other content): :func:`reference_means`;
* ``resample`` — replaced by the same head's output on another decision point (the batch
  rolled by one, right-aligned — positions count back from the decision), the mean where the
  donor is shorter.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

CLASSES = ("scaffold", "price", "verb", "other")


def o_proj(model, layer: int):
    return model.hf.model.layers[layer].self_attn.o_proj


@contextmanager
def ablated(model, heads: list[tuple[int, int]], values: dict | None = None):
    """Zero-ablate (or set to ``values[(layer, head)]``, broadcastable to [batch, pos, d_head])
    the given (layer, head) pairs for every forward inside the block — generation included."""
    d = model.shape.d_head
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    handles = []
    for layer, hs in by_layer.items():
        def hook(module, args, hs=hs, layer=layer):
            z = args[0].clone()
            for h in hs:
                sl = slice(h * d, (h + 1) * d)
                z[..., sl] = 0.0 if values is None else values[(layer, h)].to(z.dtype)
            return (z, *args[1:])
        handles.append(o_proj(model, layer).register_forward_pre_hook(hook))
    try:
        yield
    finally:
        for hnd in handles:
            hnd.remove()


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


@torch.inference_mode()
def reference_means(model, points, batch_size: int = 4) -> torch.Tensor:
    """Mean ``z`` per (layer, class, head): [n_layers, len(CLASSES), n_heads, d_head]."""
    L, H, d = model.shape.n_layers, model.shape.n_heads, model.shape.d_head
    sums = torch.zeros((L, len(CLASSES), H, d))
    counts = torch.zeros((len(CLASSES),))
    for start in range(0, len(points), batch_size):
        chunk = points[start : start + batch_size]
        batch = model.batch([p.ids for p in chunk])
        cls = torch.full(batch.input_ids.shape, -1, dtype=torch.long)
        for r, p in enumerate(chunk):
            cls[r, batch.pad[r]:] = position_classes(model, p.ids)
        grabbed = {}
        handles = [o_proj(model, l).register_forward_pre_hook(lambda m, a, l=l: grabbed.__setitem__(l, a[0].detach()))
                   for l in range(L)]
        try:
            model.logits(batch)
        finally:
            for hnd in handles:
                hnd.remove()
        for c in range(len(CLASSES)):
            sel = cls == c
            counts[c] += sel.sum()
            for l in range(L):
                sums[l, c] += grabbed[l][sel].float().reshape(-1, H, d).sum(0)
    return sums / counts.clamp(min=1)[None, :, None, None]
