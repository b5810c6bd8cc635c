"""Activation patching between paired prompts, per head and per layer.

A pair is the same decision point rendered two ways — e.g. the buyer's own budget raised
(:func:`budget_pairs`), so only the private numbers in its system prompt differ. Patching head
(l, h) runs the *corrupted* prompt with that head's ``z`` taken from the *clean* one
(right-aligned: positions count back from the decision, so the shared dialogue lines up) and
reports how much of the clean–corrupted metric gap it restores:
``(metric_patched − metric_corrupt) / (metric_clean − metric_corrupt)`` averaged over pairs.
Layer patching replaces all heads of the layer at once. Uses the fast exact path of
:mod:`negolens.analysis.sweep` (re-running only the layers after the patch).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from negolens.analysis.decisions import decision_points
from negolens.analysis.sweep import LogitDiff, _Run


def budget_pairs(model, transcripts, role: str = "buyer", factor: float = 1.5, metric: str = "accept", **kw):
    """(clean, corrupted) decision points: the same turns, the viewer's budget/target × ``factor``."""
    from negolens.agents.transcripts import Transcript

    def scaled(tr):
        s = tr.scenario
        new = dataclasses.replace(s, buyer_budget=round(s.buyer_budget * factor, 2), buyer_target=round(s.buyer_target * factor, 2)) \
            if role == "buyer" else dataclasses.replace(s, seller_cost=round(s.seller_cost * factor, 2))
        return Transcript(tr.id, new, tr.turns, tr.deal)

    clean = decision_points(model, transcripts, role, metric, **kw)
    corrupt = decision_points(model, [scaled(t) for t in transcripts], role, metric, **kw)
    keyed = {(p.transcript, p.turn): p for p in corrupt}
    return [(p, keyed[(p.transcript, p.turn)]) for p in clean if (p.transcript, p.turn) in keyed]


class _PatchRun(_Run):
    """A corrupted run whose replacement values are the clean run's z, right-aligned."""

    def __init__(self, model, corrupt_points, clean_points, metric):
        donor = _Run(model, clean_points, metric, "zero", None)
        super().__init__(model, corrupt_points, metric, "zero", None)
        B, T = self.batch.input_ids.shape
        Tc = donor.batch.input_ids.shape[1]
        H, d = model.shape.n_heads, model.shape.d_head
        self.donor_metric = donor.clean
        self.values = {}
        for layer, z in self.z.items():
            mine = z.reshape(B, T, H, d).clone()
            theirs = donor.z[layer].reshape(B, Tc, H, d)
            n = min(T, Tc)
            real = donor.batch.attention_mask[:, -n:].bool()[..., None, None] & self.batch.attention_mask[:, -n:].bool()[..., None, None]
            mine[:, -n:] = torch.where(real, theirs[:, -n:], mine[:, -n:])
            self.values[layer] = mine


def patch_heads(model, pairs, metric=None, layers_only: bool = False, batch_size: int = 4) -> pd.DataFrame:
    """Fraction of the clean–corrupt gap restored per head (or per layer with ``layers_only``)."""
    metric = metric or LogitDiff.accept_vs_counter(model)
    L, H = model.shape.n_layers, model.shape.n_heads
    restored, gaps = [], []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        run = _PatchRun(model, [c for _, c in chunk], [p for p, _ in chunk], metric)
        gap = (run.donor_metric - run.clean).numpy()
        res = np.zeros((len(chunk), L, 1 if layers_only else H))
        for l in range(L):
            if layers_only:
                res[:, l, 0] = _layer_patch(run, l).numpy() - run.clean.numpy()
            else:
                res[:, l] = (run.ablate(l, list(range(H))) - run.clean[None]).numpy().T
        restored.append(res)
        gaps.append(gap)
    res, gap = np.concatenate(restored), np.concatenate(gaps)
    frac = res.mean(axis=0) / gap.mean()
    rows = [{"layer": l, "head": (None if layers_only else h), "restored": float(frac[l, h]),
             "delta": float(res[:, l, h].mean()), "gap": float(gap.mean()), "n_pairs": len(gap)}
            for l in range(L) for h in range(res.shape[2])]
    return pd.DataFrame(rows)


@torch.inference_mode()
def _layer_patch(run: _Run, layer: int) -> torch.Tensor:
    """Metric with every head of ``layer`` patched at once."""
    model, d, H = run.model, run.model.shape.d_head, run.model.shape.n_heads
    B = run.batch.input_ids.shape[0]
    from negolens.analysis.ablation import o_proj

    def hook(module, args):
        return (run.values[layer].reshape(B, -1, H * d).to(args[0].dtype),)

    handle = o_proj(model, layer).register_forward_pre_hook(hook)
    try:
        h, _ = run.inputs[layer]
        for i in range(layer, len(model.hf.model.layers)):
            h = model.hf.model.layers[i](h, **run.inputs[i][1])
            h = h[0] if isinstance(h, tuple) else h
    finally:
        handle.remove()
    logits = model.hf.model.norm(h[:, -1]) @ model.hf.lm_head.weight[run.metric.tokens()].T
    return run.metric(logits.float())
