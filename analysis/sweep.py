"""Sweep every head: the effect of ablating it on a decision metric, with statistics.

``sweep_heads(model, points, metric, kind)`` returns one row per (layer, head): the mean change
of the metric over decision points (ablated − clean), a bootstrap 95% CI over points, a
two-sided sign-flip permutation p-value and a Benjamini–Hochberg q-value.

Three ways to compute it, same numbers (tested; ``negolens bench ablation`` measures them):

* ``naive_sweep`` — one full TransformerLens ``run_with_hooks`` forward per head on ``hook_z``;
* the exact fast sweep (default) — one clean forward records the residual stream entering each
  layer and the layer's own inputs (mask, rotary embeddings); ablating a head of layer L then
  re-runs only layers L…end, for ``group`` heads at once (the batch replicated, each replica
  ablating another head), with SDPA attention, and computes logits only at the decision
  position and only for the metric's tokens;
* ``screen`` — attribution patching: one forward and one backward give, for every head,
  gradient × (ablated − clean) activation, a first-order estimate of its effect; only the top-k
  are then ablated exactly.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from negolens.analysis.ablation import CLASSES, o_proj, position_classes
from negolens.analysis.decisions import act_token
from negolens.stats import bh_qvalues, bootstrap_ci, sign_flip_pvalues


@dataclass(frozen=True)
class LogitDiff:
    """metric = logit(plus) − logit(minus) at the decision position."""

    plus: int
    minus: int

    @classmethod
    def accept_vs_counter(cls, model) -> "LogitDiff":
        return cls(act_token(model, "accept"), act_token(model, "counter"))

    def tokens(self) -> list[int]:
        return [self.plus, self.minus]

    def __call__(self, logits_sel: torch.Tensor) -> torch.Tensor:  # [..., 2] → [...]
        return logits_sel[..., 0] - logits_sel[..., 1]


@contextmanager
def sdpa(model):
    """Run the HF model with SDPA attention inside the block (patterns are not needed there;
    ~1.6× faster than eager on these CPUs), restoring the previous implementation after."""
    before = model.hf.config._attn_implementation
    model.hf.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        model.hf.set_attn_implementation(before)


def _expand(v, B: int, k: int):
    if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == B:
        return v.repeat(k, *([1] * (v.dim() - 1)))
    if isinstance(v, tuple):
        return tuple(_expand(x, B, k) for x in v)
    return v


class _Run:
    """One batch's clean forward, recorded for partial re-runs."""

    @torch.inference_mode()
    def __init__(self, model, points, metric, kind: str, means: torch.Tensor | None):
        self.model, self.metric, self.kind = model, metric, kind
        self.batch = model.batch([p.ids for p in points])
        layers = model.hf.model.layers
        self.inputs, self.z, handles = {}, {}, []
        for i, layer in enumerate(layers):
            handles.append(layer.register_forward_pre_hook(
                lambda m, a, kw, i=i: self.inputs.__setitem__(i, (a[0] if a else kw["hidden_states"], kw)), with_kwargs=True))
            handles.append(o_proj(model, i).register_forward_pre_hook(lambda m, a, i=i: self.z.__setitem__(i, a[0])))
        try:
            b = self.batch
            out = model.hf(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                           use_cache=False, logits_to_keep=1)
        finally:
            for h in handles:
                h.remove()
        self.clean = metric(out.logits[:, -1, metric.tokens()].float())
        self.values = self._values(points, means) if kind != "zero" else None

    def _values(self, points, means):
        """Replacement z per layer: [L] of [B, T, H, d] (mean: by position class; resample: donor row)."""
        B, T = self.batch.input_ids.shape
        cls = torch.full((B, T), CLASSES.index("scaffold"), dtype=torch.long)
        for r, p in enumerate(points):
            cls[r, self.batch.pad[r]:] = position_classes(self.model, p.ids)
        H, d = self.model.shape.n_heads, self.model.shape.d_head
        out = {}
        for layer, z in self.z.items():
            mean = means[layer][cls].to(z.dtype)  # [B, T, H, d]
            if self.kind == "mean":
                out[layer] = mean
            else:  # resample: the next point's own output, right-aligned; mean where the donor is padding
                donor = z.reshape(B, T, H, d).roll(1, dims=0)
                real = self.batch.attention_mask.roll(1, dims=0).bool()[..., None, None]
                out[layer] = torch.where(real, donor, mean)
        return out

    @torch.inference_mode()
    def ablate(self, layer: int, heads: list) -> torch.Tensor:
        """Metric with each entry of ``heads`` (a head of ``layer``, or a list of heads ablated
        together) ablated in its own replica: [len(heads), B]."""
        heads = [h if isinstance(h, (list, tuple)) else [h] for h in heads]
        k, B = len(heads), self.batch.input_ids.shape[0]
        d = self.model.shape.d_head
        hidden, _ = self.inputs[layer]
        h = hidden.repeat(k, 1, 1)

        def hook(module, args):
            z = args[0].clone()
            for j, group in enumerate(heads):
                rows = slice(j * B, (j + 1) * B)
                for head in group:
                    sl = slice(head * d, (head + 1) * d)
                    z[rows, :, sl] = 0.0 if self.values is None else self.values[layer][:, :, head]
            return (z,)

        handle = o_proj(self.model, layer).register_forward_pre_hook(hook)
        try:
            for i in range(layer, len(self.model.hf.model.layers)):
                kw = {key: _expand(v, B, k) for key, v in self.inputs[i][1].items()}
                h = self.model.hf.model.layers[i](h, **kw)
                h = h[0] if isinstance(h, tuple) else h
        finally:
            handle.remove()
        final = self.model.hf.model.norm(h[:, -1])
        logits = final @ self.model.hf.lm_head.weight[self.metric.tokens()].T
        return self.metric(logits.float()).reshape(k, B)


def effects_fast(model, points, metric, kind: str = "zero", heads=None, batch_size: int = 4, group: int = 3,
                 means=None, progress: bool = True) -> np.ndarray:
    """Per-point effects [n_points, L, H] (NaN for heads not swept), exact, fast path."""
    with sdpa(model):
        return _effects_fast(model, points, metric, kind, heads, batch_size, group, means, progress)


def _effects_fast(model, points, metric, kind, heads, batch_size, group, means, progress) -> np.ndarray:
    L, H = model.shape.n_layers, model.shape.n_heads
    heads = heads or [(l, h) for l in range(L) for h in range(H)]
    out = np.full((len(points), L, H), np.nan)
    bar = tqdm(total=len(points) * len(heads), desc="ablations", disable=not progress)
    for start in range(0, len(points), batch_size):
        chunk = points[start : start + batch_size]
        run = _Run(model, chunk, metric, kind, means)
        by_layer: dict[int, list[int]] = {}
        for l, h in heads:
            by_layer.setdefault(l, []).append(h)
        for l, hs in by_layer.items():
            for g in range(0, len(hs), group):
                part = hs[g : g + group]
                delta = (run.ablate(l, part) - run.clean[None]).cpu().numpy()  # [k, B]
                for j, h in enumerate(part):
                    out[start : start + len(chunk), l, h] = delta[j]
                bar.update(len(part) * len(chunk))
    bar.close()
    return out


@torch.inference_mode()
def layer_effects(model, points, metric, kind: str = "zero", batch_size: int = 4, means=None) -> np.ndarray:
    """Per-point effect of ablating ALL heads of each layer at once: [n_points, L]."""
    L, H = model.shape.n_layers, model.shape.n_heads
    out = np.zeros((len(points), L))
    for start in range(0, len(points), batch_size):
        chunk = points[start : start + batch_size]
        run = _Run(model, chunk, metric, kind, means)
        for l in range(L):
            out[start : start + len(chunk), l] = (run.ablate(l, [list(range(H))])[0] - run.clean).numpy()
    return out


@torch.inference_mode()
def effects_naive(model, points, metric, heads=None, batch_size: int = 4, progress: bool = True) -> np.ndarray:
    """The reference: a full TransformerLens forward per head, zeroing it on ``hook_z``."""
    L, H = model.shape.n_layers, model.shape.n_heads
    heads = heads or [(l, h) for l in range(L) for h in range(H)]
    out = np.full((len(points), L, H), np.nan)
    for start in range(0, len(points), batch_size):
        chunk = points[start : start + batch_size]
        b = model.batch([p.ids for p in chunk])
        clean = metric(model.bridge_logits(b)[:, -1, metric.tokens()].float())
        for l, h in tqdm(heads, desc="naive", disable=not progress):
            def zero(z, hook, h=h):
                z[:, :, h] = 0.0
                return z
            logits = model.bridge.run_with_hooks(b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                                                 fwd_hooks=[(f"blocks.{l}.attn.hook_z", zero)])
            out[start : start + len(chunk), l, h] = (metric(logits[:, -1, metric.tokens()].float()) - clean).numpy()
    return out


def attribution(model, points, metric, batch_size: int = 4) -> np.ndarray:
    """Attribution patching for zero ablation: per point and head, Σ_pos −z · ∂metric/∂z. [n, L, H]."""
    L, H, d = model.shape.n_layers, model.shape.n_heads, model.shape.d_head
    out = np.zeros((len(points), L, H))
    for start in range(0, len(points), batch_size):
        chunk = points[start : start + batch_size]
        b = model.batch([p.ids for p in chunk])
        zs, handles = {}, []
        for l in range(L):
            def hook(m, a, l=l):
                z = a[0].detach().requires_grad_(True)
                zs[l] = z
                return (z,)
            handles.append(o_proj(model, l).register_forward_pre_hook(hook))
        try:
            with torch.enable_grad():
                logits = model.hf(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                                  use_cache=False, logits_to_keep=1).logits
                metric(logits[:, -1, metric.tokens()].float()).sum().backward()
        finally:
            for hnd in handles:
                hnd.remove()
        mask = b.attention_mask[..., None, None].to(zs[0].dtype)
        for l in range(L):
            z = zs[l].detach().reshape(*b.input_ids.shape, H, d)
            g = zs[l].grad.reshape(*b.input_ids.shape, H, d)
            out[start : start + len(chunk), l] = ((-z * g) * mask).sum(dim=(1, 3)).float().numpy()
    return out


def summarize_effects(effects: np.ndarray, n_boot: int = 2000, n_perm: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Tidy table from per-point effects [n, L, H] (heads with NaN are skipped)."""
    n, L, H = effects.shape
    flat = effects.reshape(n, L * H)
    done = ~np.isnan(flat).any(axis=0)
    p = np.full(L * H, np.nan)
    p[done] = sign_flip_pvalues(flat[:, done], n_perm=n_perm, seed=seed)
    q = np.full(L * H, np.nan)
    q[done] = bh_qvalues(p[done])
    rows = []
    for idx in np.nonzero(done)[0]:
        lo, hi = bootstrap_ci(flat[:, idx], n_boot=n_boot, seed=seed)
        rows.append({"layer": idx // H, "head": idx % H, "effect": float(flat[:, idx].mean()), "ci_low": lo,
                     "ci_high": hi, "p": float(p[idx]), "q": float(q[idx]), "n_points": n})
    return pd.DataFrame(rows)


def sweep_heads(model, decision_points, metric="accept", kind: str = "zero", screen_top: int | None = None,
                batch_size: int = 4, means=None, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Effect of ablating each head on ``metric`` at ``decision_points`` (see module docstring).

    ``metric``: ``"accept"`` (logit accept − counter) or a :class:`LogitDiff`. ``kind``: zero, mean
    or resample (mean and resample use ``means`` from :func:`~negolens.analysis.ablation.reference_means`,
    computed on the decision points when not given). ``screen_top``: rank heads by attribution
    patching first and ablate only that many exactly.
    """
    from negolens.analysis.ablation import reference_means

    if kind not in ("zero", "mean", "resample"):
        raise ValueError("kind must be 'zero', 'mean' or 'resample'")
    metric = LogitDiff.accept_vs_counter(model) if metric == "accept" else metric
    if kind != "zero" and means is None:
        means = reference_means(model, decision_points, batch_size)
    heads = None
    if screen_top:
        score = np.abs(attribution(model, decision_points, metric, batch_size).mean(axis=0))
        order = np.argsort(-score, axis=None)[:screen_top]
        heads = [(int(i // model.shape.n_heads), int(i % model.shape.n_heads)) for i in order]
    effects = effects_fast(model, decision_points, metric, kind, heads, batch_size, means=means, progress=progress)
    return summarize_effects(effects, seed=seed)
