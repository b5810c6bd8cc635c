"""Activation patching between paired prompts, per head and per layer.

A pair is the same decision point rendered two ways — e.g. the buyer's own budget raised
(:func:`budget_pairs`), so only the private numbers in its system prompt differ. Patching head
(l, h) runs the *corrupted* prompt with that head's ``z`` taken from the *clean* one
(right-aligned: positions count back from the decision, so the shared dialogue lines up) and
reports how much of the clean–corrupted metric gap it restores:
``(metric_patched − metric_corrupt) / (metric_clean − metric_corrupt)`` averaged over pairs.
Layer patching replaces all heads of the layer at once. Uses the partial forwards of
:mod:`negolens.analysis.partial` (re-running only the layers from the patch on).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from negolens.analysis.decisions import decision_points
from negolens.analysis.partial import CleanForward
from negolens.analysis.sweep import _Run, as_metric
from negolens.errors import NegolensError

__all__ = ["budget_pairs", "patch_heads"]


def budget_pairs(model, transcripts, role: str = "buyer", factor: float = 1.5, metric: str = "accept", **kw):
    """(clean, corrupted) decision points: the same turns, the viewer's budget/target × ``factor``.

    Extra keywords (``max_tokens``, ``limit``) go to :func:`~negolens.analysis.decision_points`.
    """

    def scaled(tr):
        s = tr.scenario
        new = dataclasses.replace(s, buyer_budget=round(s.buyer_budget * factor, 2), buyer_target=round(s.buyer_target * factor, 2)) \
            if role == "buyer" else dataclasses.replace(s, seller_cost=round(s.seller_cost * factor, 2))
        return dataclasses.replace(tr, scenario=new)

    clean = decision_points(model, transcripts, role, metric, **kw)
    corrupt = decision_points(model, [scaled(t) for t in transcripts], role, metric, **kw)
    keyed = {(p.transcript, p.turn): p for p in corrupt}
    return [(p, keyed[(p.transcript, p.turn)]) for p in clean if (p.transcript, p.turn) in keyed]


class _PatchRun(_Run):
    """A corrupted run whose replacement values are the clean run's z, right-aligned."""

    @torch.inference_mode()
    def __init__(self, model, corrupt_points, clean_points, metric):
        donor = CleanForward.record(model, model.batch([p.ids for p in clean_points]), metric.tokens())
        super().__init__(model, corrupt_points, metric, "zero", None)
        self.kind = "patch"
        B, T = self.batch.input_ids.shape
        Tc = donor.batch.input_ids.shape[1]
        H, d = model.shape.n_heads, model.shape.d_head
        self.donor_metric = metric(donor.logits)
        self.values = {}
        n = min(T, Tc)
        real = (donor.batch.attention_mask[:, -n:].bool() & self.batch.attention_mask[:, -n:].bool())[..., None, None]
        for layer, z in self.forward.z.items():
            mine = z.reshape(B, T, H, d).clone()
            theirs = donor.z[layer].reshape(B, Tc, H, d)
            mine[:, -n:] = torch.where(real, theirs[:, -n:], mine[:, -n:])
            self.values[layer] = mine


def patch_heads(model, pairs, metric=None, layers_only: bool = False, batch_size: int = 4) -> pd.DataFrame:
    """Fraction of the clean–corrupt gap restored by patching each head (or each whole layer).

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    pairs
        (clean, corrupted) decision points, e.g. from :func:`budget_pairs`.
    metric
        A :class:`~negolens.analysis.sweep.LogitDiff`; default accept − counter.
    layers_only
        Patch all heads of a layer at once (one row per layer, ``head`` is None).
    batch_size
        Pairs per forward.

    Returns
    -------
    pandas.DataFrame
        ``layer, head, restored`` (mean patched − corrupt over mean gap), ``delta`` (mean patched −
        corrupt), ``gap`` (mean clean − corrupt), ``n_pairs``.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> pairs = budget_pairs(model, example_transcripts(4), "buyer", factor=1.5, limit=8)
    >>> table = patch_heads(model, pairs, layers_only=True)
    >>> len(pairs), list(table.columns)
    (4, ['layer', 'head', 'restored', 'delta', 'gap', 'n_pairs'])
    """
    if not pairs:
        raise NegolensError("no (clean, corrupted) pairs to patch: budget_pairs found no decision points")
    metric = as_metric(model, metric or "accept")
    L, H = model.shape.n_layers, model.shape.n_heads
    restored, gaps = [], []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        run = _PatchRun(model, [c for _, c in chunk], [p for p, _ in chunk], metric)
        gap = (run.donor_metric - run.clean).cpu().numpy()
        res = np.zeros((len(chunk), L, 1 if layers_only else H))
        for l in range(L):
            if layers_only:  # every head of the layer patched together, in one replica
                res[:, l, 0] = (run.ablate(l, [list(range(H))])[0] - run.clean).cpu().numpy()
            else:
                res[:, l] = (run.ablate(l, list(range(H))) - run.clean[None]).cpu().numpy().T
        restored.append(res)
        gaps.append(gap)
    res, gap = np.concatenate(restored), np.concatenate(gaps)
    frac = res.mean(axis=0) / gap.mean()
    rows = [{"layer": l, "head": (None if layers_only else h), "restored": float(frac[l, h]),
             "delta": float(res[:, l, h].mean()), "gap": float(gap.mean()), "n_pairs": len(gap)}
            for l in range(L) for h in range(res.shape[2])]
    return pd.DataFrame(rows)
