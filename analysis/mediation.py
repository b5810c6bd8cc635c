"""Where anchoring is carried: patching from the high-anchor run into the low-anchor run.

For an :class:`~negolens.analysis.anchoring.AnchorPair` the two prompts differ only in the
counterpart's opening price. A component's **share** of the anchoring effect is

    share = mean(outcome_patched − outcome_low) / mean(outcome_high − outcome_low)

over pairs (a ratio of means, so pairs where the anchors give the same outcome add nothing to
either side), with a bootstrap 95% CI over pairs. "Patched" runs the low-anchor prompt with the
component's activation taken from the high-anchor one.

**Alignment** and the lockstep decoding: :mod:`negolens.analysis.patched_decoding`.

**Components** (:class:`Component`): ``head`` (one head's ``z``), ``attn`` (every head of a
layer), ``resid_after`` (the residual stream entering a layer at the positions after the
price) and ``resid_last`` (entering a layer at the decision position only).

**Two outcomes.** :func:`mediation_screen` uses a differentiable readout at the decision position
(cheap: partial forwards, every head): for each pair, the greedy offers of the two anchors are
decoded, the digits they share are appended to both prompts, and the metric is
logit(high's next digit) − logit(low's next digit) (the end-of-number token where one offer
stops). :func:`offer_shares` then measures the share on the greedy offer itself (log offer /
list): the component is patched in the prompt and, in lockstep, at every generated digit (the
donor run is fed the same digits), so a head that reads the price at each digit is patched there too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from negolens.batching import last_position
from negolens.agents.decoding import token_pieces
from negolens.analysis.anchoring import check_pairs
from negolens.analysis.partial import CleanForward
from negolens.analysis.patched_decoding import (COMPONENT_KINDS, Component, Lockstep, greedy_digits, offer_value, pair_spans,
                                                patches)
from negolens.analysis.sweep import sdpa
from negolens.errors import NegolensError
from negolens.interventions import intervene

__all__ = ["mediation_screen", "offer_shares", "mediating_set"]


def _ratio_ci(delta: np.ndarray, gap: np.ndarray, n_boot: int = 2000, seed: int = 0):
    """Share = mean(delta) / mean(gap) per column of ``delta`` ``[n, k]``, with bootstrap CIs over rows."""
    delta, gap = np.asarray(delta, float), np.asarray(gap, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = delta.mean(axis=0) / gap.mean()
        if len(gap) < 2:
            return share, share.copy(), share.copy()
        idx = np.random.default_rng(seed).integers(0, len(gap), size=(n_boot, len(gap)))
        boot = delta[idx].mean(axis=1) / gap[idx].mean(axis=1)[:, None]  # [n_boot, k]
    return share, np.nanquantile(boot, 0.025, axis=0), np.nanquantile(boot, 0.975, axis=0)


class _PairMetric:
    """Per-row logit difference ``logit(plus[r]) − logit(minus[r])`` over ``tokens`` (replicas stacked)."""

    def __init__(self, plus: list[int], minus: list[int]):
        self.list = sorted(set(plus) | set(minus))
        where = {t: i for i, t in enumerate(self.list)}
        self.plus = [where[t] for t in plus]  # lists: tensors made in inference mode could not enter the AtP graph
        self.minus = [where[t] for t in minus]

    def tokens(self) -> list[int]:
        return self.list

    def __call__(self, sel: torch.Tensor) -> torch.Tensor:  # [R·B, k] → [R·B]
        B = len(self.plus)
        v = sel.reshape(-1, B, sel.shape[-1])
        rows = torch.arange(B, device=v.device)
        plus, minus = (torch.tensor(i, device=v.device) for i in (self.plus, self.minus))
        return (v[:, rows, plus] - v[:, rows, minus]).reshape(-1)


def _screen_inputs(model, chunk, comma: bool = False):
    """Per pair: the greedy offers, the prompts extended by their shared digits, and the metric."""
    eos = model.tokenizer.eos_token_id
    lows = greedy_digits(model, [p.low for p in chunk], comma=comma)
    highs = greedy_digits(model, [p.high for p in chunk], comma=comma)
    lo_ids, hi_ids, plus, minus = [], [], [], []
    for pair, a, b in zip(chunk, lows, highs):
        i = 0
        while i < min(len(a), len(b)) and a[i] == b[i]:
            i += 1
        lo_ids.append(list(pair.low.ids) + a[:i])
        hi_ids.append(list(pair.high.ids) + a[:i])
        minus.append(a[i] if i < len(a) else eos)  # a number cut at the digit limit: the end it did not write
        plus.append(b[i] if i < len(b) else eos)
    return lo_ids, hi_ids, _PairMetric(plus, minus)


def _all_components(model, heads: bool) -> list[list[Component]]:
    L, H = model.shape.n_layers, model.shape.n_heads
    if heads:
        return [[Component("head", l, h) for h in range(H)] for l in range(L)]
    return [[Component(k, l) for k in ("attn", "resid_after", "resid_last")] for l in range(L)]


def _atp_deltas(model, group_ivs, graph, B, T) -> dict[int, torch.Tensor]:
    """Per layer: (patched − low) ``z`` ``[B, T, H, d]`` at the patched positions, 0 elsewhere."""
    H, d = model.shape.n_heads, model.shape.d_head
    out = {}
    for iv in group_ivs:
        z = graph.z[iv.layer].detach().reshape(B, T, H, d)
        out[iv.layer] = torch.where(iv.mask[..., None, None], iv.value.to(z.dtype) - z, torch.zeros_like(z))
    return out


def _atp_chunk(model, lo_ids, hi_ids, metric, spans) -> tuple[np.ndarray, np.ndarray]:
    """Attribution-patching estimates ``[B, L·H]`` of every head's patch effect, and the gaps ``[B]``."""
    from negolens.analysis.screening import _Graph  # the layer-by-layer gradient of the AtP screen

    L, H = model.shape.n_layers, model.shape.n_heads
    low = model.batch(lo_ids)
    with torch.inference_mode():
        high = CleanForward.record(model, model.batch(hi_ids), metric.tokens())
    graph = _Graph(model, low, metric)
    B, T, Tc = len(lo_ids), low.input_ids.shape[1], high.batch.input_ids.shape[1]
    ivs = patches(model, [Component("attn", l) for l in range(L)], T, Tc, spans, high.z, {})
    delta = _atp_deltas(model, ivs, graph, B, T)
    est = torch.zeros(B, L, H)
    grad = graph.top_grad()
    for i in reversed(range(L)):
        grad, grad_z = graph.pull(i, grad)
        est[:, i] = (delta[i] * grad_z.reshape(delta[i].shape)).sum(dim=(1, 3)).detach().float().cpu()
    gap = (metric(high.logits) - graph.value.detach()).cpu().numpy()
    return est.reshape(B, L * H).numpy(), gap


def mediation_screen(model, pairs, heads: bool = True, batch_size: int = 4, seed: int = 0,
                     method: str = "exact", comma: bool = False) -> pd.DataFrame:
    """Share of the anchoring effect on the next-digit logit difference, per head or per layer.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    pairs
        :class:`~negolens.analysis.anchoring.AnchorPair` list (:func:`~negolens.analysis.anchoring_pairs`).
    heads
        One row per head (``head``); ``False``: per layer, the ``attn``, ``resid_after`` and
        ``resid_last`` components.
    batch_size
        Pairs per forward.
    seed
        Seed of the bootstrap.
    method
        ``exact`` (a partial forward per layer, every head in its own replica) | ``atp``
        (heads only: attribution patching, Σ_pos (z_high − z_low) · ∂metric/∂z at the low run —
        a first-order estimate from one forward and one backward per batch, through every path
        as in :mod:`negolens.analysis.screening`; for ranking, not for reporting).
    comma
        Offers may contain thousands separators (:func:`~negolens.analysis.patched_decoding.greedy_digits`).

    Returns
    -------
    pandas.DataFrame
        ``component, kind, layer, head, share, ci_low, ci_high, delta`` (mean patched − low),
        ``gap`` (mean high − low), ``n_pairs``, ``n_moved`` (pairs where the anchor moves the
        metric at all: the share and its CI rest on these), ``aligned`` (pairs whose prices have
        as many tokens), ``method``.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis.anchoring import anchoring_pairs
    >>> model = tiny_model()
    >>> table = mediation_screen(model, anchoring_pairs(model, example_transcripts(4)), heads=False)
    >>> len(table), sorted(set(table.kind))
    (6, ['attn', 'resid_after', 'resid_last'])
    """
    check_pairs(pairs)
    if method not in ("exact", "atp"):
        raise NegolensError(f"unknown screen method {method!r}; use exact or atp")
    if method == "atp" and not heads:
        raise NegolensError("the atp screen estimates heads only: use heads=True or method='exact'")
    pairs = list(pairs)
    groups = _all_components(model, heads)
    deltas, gaps, aligned = [], [], 0
    with sdpa(model):
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            with torch.inference_mode():
                lo_ids, hi_ids, metric = _screen_inputs(model, chunk, comma)
            spans = [pair_spans(a, b) for a, b in zip(lo_ids, hi_ids)]
            aligned += sum(s[2] for s in spans)
            if method == "atp":
                delta, gap = _atp_chunk(model, lo_ids, hi_ids, metric, spans)
            else:
                with torch.inference_mode():
                    delta, gap = _exact_chunk(model, groups, lo_ids, hi_ids, metric, spans)
            deltas.append(delta)
            gaps.append(gap)
    delta, gap = np.concatenate(deltas), np.concatenate(gaps)
    share, lo, hi = _ratio_ci(delta, gap, seed=seed)
    moved = int((np.abs(gap) > 1e-6).sum())
    comps = [c for g in groups for c in g]
    return pd.DataFrame([{"component": c.name, "kind": c.kind, "layer": c.layer, "head": c.head,
                          "share": float(share[j]), "ci_low": float(lo[j]), "ci_high": float(hi[j]),
                          "delta": float(delta[:, j].mean()), "gap": float(gap.mean()), "n_pairs": len(gap),
                          "n_moved": moved, "aligned": aligned, "method": method} for j, c in enumerate(comps)])


class _PrefixCache:
    """The low run's keys/values of the unpatched prefix, per layer and replicated; ``update``
    returns prefix + new without storing (each suffix re-run starts from the same prefix)."""

    def __init__(self, cache, replicas: int):
        self.keys = [layer.keys.repeat(replicas, 1, 1, 1) for layer in cache.layers]
        self.values = [layer.values.repeat(replicas, 1, 1, 1) for layer in cache.layers]

    def update(self, keys, values, layer_idx, *args, **kwargs):
        return torch.cat([self.keys[layer_idx], keys], dim=2), torch.cat([self.values[layer_idx], values], dim=2)


def _suffix_kwargs(kwargs: dict, batch, P: int, cache) -> dict:
    """A layer's recorded keyword inputs cut to the positions from ``P`` on, over the prefix ``cache``."""
    out = {}
    for key, v in kwargs.items():
        if key == "past_key_values":
            v = cache
        elif key == "attention_mask":
            if v is None:  # SDPA without padding relies on is_causal, which would align the suffix wrongly
                T = batch.attention_mask.shape[1]
                q = torch.arange(P, T, device=batch.attention_mask.device)
                k = torch.arange(T, device=batch.attention_mask.device)
                v = (k[None, :] <= q[:, None])[None, None] & batch.attention_mask.bool()[:, None, None, :]
            else:
                v = v[:, :, P:, :]
        elif key == "position_embeddings":
            v = tuple(x[:, P:] for x in v)
        elif key == "position_ids":
            v = v[:, P:]
        elif key == "cache_position" and torch.is_tensor(v):
            v = v[P:]
        out[key] = v
    return out


class _Suffix:
    """Partial re-runs over the last ``K`` positions only (the patched span), the prefix's keys and
    values reused: equal to :meth:`CleanForward.run_from` (tested) and ~T/K times cheaper."""

    def __init__(self, model, low: CleanForward, K: int):
        self.model, self.low, self.K = model, low, K
        b = low.batch
        self.P = b.input_ids.shape[1] - K
        out = model.hf(input_ids=b.input_ids[:, : self.P], attention_mask=b.attention_mask[:, : self.P],
                       position_ids=b.position_ids[:, : self.P], use_cache=True, logits_to_keep=last_position(model.device))
        self.cache = out.past_key_values

    def run_from(self, layer: int, interventions, replicas: int = 1) -> torch.Tensor:
        from negolens.analysis.partial import _expand

        sites, low, B = self.model.sites, self.low, self.low.size
        cache = _PrefixCache(self.cache, replicas)
        h = low.inputs[layer][0][:, self.P :].repeat(replicas, 1, 1)
        with intervene(self.model, interventions):
            for i in range(layer, sites.n_layers):
                kw = _suffix_kwargs(low.inputs[i][1], low.batch, self.P, cache)
                h = sites.layer(i)(h, **{k: _expand(v, B, replicas) for k, v in kw.items()})
                h = h[0] if isinstance(h, tuple) else h
        return sites.logits_at(h[:, -1], low.tokens).float()


SUFFIX_FAMILIES = ("llama", "qwen2")
"""Families whose layers take the prefix cache as is (no sliding-window masks): suffix re-runs."""


def _exact_chunk(model, groups, lo_ids, hi_ids, metric, spans, suffix: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Exact patch effects ``[B, n_components]`` (one partial forward per group) and the gaps ``[B]``."""
    low = CleanForward.record(model, model.batch(lo_ids), metric.tokens())
    high = CleanForward.record(model, model.batch(hi_ids), metric.tokens())
    base = metric(low.logits)
    gap = (metric(high.logits) - base).cpu().numpy()
    B, T, Tc = len(lo_ids), low.batch.input_ids.shape[1], high.batch.input_ids.shape[1]
    K = max(1, max(sp[0] for sp in spans))
    runner, width = low, T
    if suffix and model.sites.family in SUFFIX_FAMILIES and K < T:
        runner, width = _Suffix(model, low, K), K
    resid = {l: high.inputs[l][0] for l in high.inputs}
    part = []
    for group in groups:
        rows = [(j * B, (j + 1) * B) for j in range(len(group))]
        ivs = patches(model, group, width, Tc, spans, high.z, resid, rows)
        got = metric(runner.run_from(group[0].layer, ivs, replicas=len(group))).reshape(len(group), B)
        part.append((got - base[None]).cpu().numpy().T)  # [B, k]
    return np.concatenate(part, axis=1), gap


def offer_shares(model, pairs, component_sets, batch_size: int = 8, seed: int = 0, comma: bool = False) -> pd.DataFrame:
    """Share of the anchoring effect on the greedy offer (log offer / list) for each set of components.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    pairs
        :class:`~negolens.analysis.anchoring.AnchorPair` list.
    component_sets
        Lists of :class:`Component`, each patched jointly (a single component: a one-element list).
    batch_size
        Pairs per forward.
    seed
        Seed of the bootstrap.
    comma
        Offers may contain thousands separators (:func:`~negolens.analysis.patched_decoding.greedy_digits`).

    Returns
    -------
    pandas.DataFrame
        One row per set: ``components`` (names joined by ``+``), ``size, share, ci_low, ci_high``,
        ``offer_low, offer_high, offer_patched`` (mean log offer / list), ``n_pairs`` (pairs with
        all three offers written), ``n_moved`` (of those, pairs whose two anchors' offers differ).

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis.anchoring import anchoring_pairs
    >>> from negolens.analysis.patched_decoding import Component
    >>> model = tiny_model()
    >>> table = offer_shares(model, anchoring_pairs(model, example_transcripts(2)), [[Component("attn", 1)]])
    >>> table.components.tolist(), int(table.n_pairs.iloc[0])
    (['L1 attn'], 2)
    """
    check_pairs(pairs)
    pairs, sets = list(pairs), [list(s) for s in component_sets]
    for comps in sets:
        for c in comps:
            if c.kind not in COMPONENT_KINDS:
                raise NegolensError(f"unknown component kind {c.kind!r}; use one of {', '.join(COMPONENT_KINDS)}")
    pieces = token_pieces(model.tokenizer)
    values = np.full((len(pairs), 2 + len(sets)), np.nan)  # low, high, one per set
    with sdpa(model):
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            low, high = [p.low for p in chunk], [p.high for p in chunk]
            spans = [pair_spans(list(a.ids), list(b.ids)) for a, b in zip(low, high)]
            lock = Lockstep(model, low, high, spans, comma=comma)
            runs = [lock.run([]), greedy_digits(model, high, comma=comma)] + [lock.run(comps) for comps in sets]
            for j, run in enumerate(runs):
                for r, (pair, toks) in enumerate(zip(chunk, run)):
                    values[start + r, j] = offer_value(pieces, toks, pair.list_price)
    rows = []
    for j, comps in enumerate(sets):
        v = values[:, [0, 1, 2 + j]]
        v = v[np.isfinite(v).all(axis=1)]
        share, lo, hi = _ratio_ci((v[:, 2] - v[:, 0])[:, None], v[:, 1] - v[:, 0], seed=seed)
        rows.append({"components": "+".join(c.name for c in comps), "size": len(comps), "share": float(share[0]),
                     "ci_low": float(lo[0]), "ci_high": float(hi[0]), "offer_low": float(v[:, 0].mean()),
                     "offer_high": float(v[:, 1].mean()), "offer_patched": float(v[:, 2].mean()), "n_pairs": len(v),
                     "n_moved": int((v[:, 1] != v[:, 0]).sum())})
    return pd.DataFrame(rows)


def mediating_set(model, pairs, ranked, target: float = 0.5, max_size: int = 10, batch_size: int = 8,
                  seed: int = 0, comma: bool = False) -> pd.DataFrame:
    """The smallest prefix of ``ranked`` components whose joint patch carries ≥ ``target`` of the offer effect.

    The top 1, 2, … ``max_size`` components of ``ranked`` are each patched jointly
    (:func:`offer_shares`, one pass over the pairs for all prefixes); the answer is the first
    prefix whose share reaches ``target``.

    Returns
    -------
    pandas.DataFrame
        The :func:`offer_shares` rows of the prefixes up to the answer, with ``reached`` (share ≥
        ``target``) — the last row is the answer (or the largest set tried, ``reached`` False).
    """
    ranked = list(ranked)[:max_size]
    if not ranked:
        raise NegolensError("no components to combine: pass the screen's ranking (e.g. mediation_screen(...) rows)")
    table = offer_shares(model, pairs, [ranked[:k] for k in range(1, len(ranked) + 1)], batch_size, seed, comma)
    table["reached"] = table.share >= target
    hit = np.flatnonzero(table.reached.to_numpy())
    return table.iloc[: (hit[0] + 1 if len(hit) else len(table))].reset_index(drop=True)
