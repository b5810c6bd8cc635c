"""Sweep every head: the effect of ablating it on a decision metric, with statistics.

``sweep_heads(model, points, metric, kind)`` returns one row per (layer, head): the mean change
of the metric over decision points (ablated − clean), a bootstrap 95% CI over points, a
two-sided sign-flip permutation p-value and a Benjamini–Hochberg q-value.

Three ways to compute it, same numbers (tested; ``negolens bench ablation`` measures them):

* :func:`effects_naive` — one full TransformerLens ``run_with_hooks`` forward per head on ``hook_z``;
* :func:`effects_fast`, the exact fast sweep (default) — one clean forward records the residual stream entering each
  layer and the layer's own inputs (mask, rotary embeddings); ablating a head of layer L then
  re-runs only layers L…end, for ``group`` heads at once (the batch replicated, each replica
  ablating another head), with SDPA attention, and computes logits only at the decision
  position and only for the metric's tokens;
* ``screen_top`` with ``screen`` (:mod:`negolens.analysis.screening`) — attribution patching: one forward and one
  backward give, for every head, gradient × (ablated − clean) activation, a first-order estimate of its
  effect (``atp``; ``atp*`` adds GradDrop); only the top-k are then ablated exactly.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from negolens.analysis.ablation import check_kind, reference_means, replacement_values
from negolens.analysis.decisions import act_token
from negolens.analysis.partial import CleanForward
from negolens.autobatch import map_chunks
from negolens.distributed import active_world, gather, is_main, shard
from negolens.errors import NegolensError
from negolens.interventions import Intervention
from negolens.stats import bh_qvalues, bootstrap_ci, sign_flip_pvalues

__all__ = ["LogitDiff", "attribution", "effects_fast", "effects_naive", "layer_effects", "sdpa",
           "summarize_effects", "sweep_heads"]


@dataclass(frozen=True)
class LogitDiff:
    """metric = logit(plus) − logit(minus) at the decision position.

    Examples
    --------
    >>> import torch
    >>> LogitDiff(plus=3, minus=7)(torch.tensor([[2.0, 0.5]]))
    tensor([1.5000])
    """

    plus: int
    minus: int

    @classmethod
    def accept_vs_counter(cls, model) -> "LogitDiff":
        """logit(" accept") − logit(" counter"): how much the model prefers closing over countering."""
        return cls(act_token(model, "accept"), act_token(model, "counter"))

    def tokens(self) -> list[int]:
        """The token ids whose logits the metric reads, in the order ``__call__`` expects."""
        return [self.plus, self.minus]

    def __call__(self, logits_sel: torch.Tensor) -> torch.Tensor:  # [..., 2] → [...]
        """The metric from logits at :meth:`tokens` (last axis)."""
        return logits_sel[..., 0] - logits_sel[..., 1]


def as_metric(model, metric) -> LogitDiff:
    """``"accept"`` → :meth:`LogitDiff.accept_vs_counter`; a :class:`LogitDiff` as is."""
    if isinstance(metric, str):
        if metric != "accept":
            raise NegolensError(f"unknown logit metric {metric!r}; use 'accept' or a LogitDiff "
                                "(the 'offer' metric is measured by negolens.analysis.offer_effects)")
        return LogitDiff.accept_vs_counter(model)
    return metric


def check_points(points) -> None:
    """Raise a clear error when there are no decision points to compute statistics over."""
    if not points:
        raise NegolensError("no decision points: the transcripts hold no turn of this role that faces a "
                            "counterpart price within max_tokens (use more transcripts, the other role, "
                            "or a larger max_tokens)")


@contextmanager
def sdpa(model):
    """Run the HF model with SDPA attention inside the block (patterns are not needed there and
    SDPA is faster than eager on CPUs), restoring the previous implementation after."""
    before = model.hf.config._attn_implementation
    model.hf.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        model.hf.set_attn_implementation(before)


class _Run:
    """One batch's clean forward plus the replacement values of an ablation kind."""

    @torch.inference_mode()
    def __init__(self, model, points, metric, kind: str, means: torch.Tensor | None):
        self.model, self.metric, self.kind = model, metric, check_kind(kind)
        self.forward = CleanForward.record(model, model.batch([p.ids for p in points]), metric.tokens())
        self.batch = self.forward.batch
        self.clean = metric(self.forward.logits)
        self.values = None
        if kind != "zero":
            self.values = replacement_values(model, self.batch, points, self.forward.z, kind, means)

    @torch.inference_mode()
    def ablate(self, layer: int, heads: list) -> torch.Tensor:
        """Metric with each entry of ``heads`` (a head of ``layer``, or a list of heads ablated
        together) ablated in its own replica of the batch: [len(heads), B]."""
        groups = [h if isinstance(h, (list, tuple)) else [h] for h in heads]
        B = self.forward.size
        interventions = [
            Intervention("attn_z", layer, head, self.kind,
                         None if self.values is None else self.values[layer][:, :, head], rows=(j * B, (j + 1) * B))
            for j, group in enumerate(groups) for head in group
        ]
        logits = self.forward.run_from(layer, interventions, replicas=len(groups))
        return self.metric(logits).reshape(len(groups), B)


def _all_heads(model) -> list[tuple[int, int]]:
    return [(l, h) for l in range(model.shape.n_layers) for h in range(model.shape.n_heads)]


def effects_fast(model, points, metric, kind: str = "zero", heads=None, batch_size: int | str = 4, group: int = 3,
                 means=None, progress: bool = True) -> np.ndarray:
    """Per-point effect of ablating each head, exact, on the fast path (partial re-runs).

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    points
        Decision points (:func:`negolens.analysis.decision_points`).
    metric
        A :class:`LogitDiff` (or ``"accept"``).
    kind
        ``zero`` | ``mean`` | ``resample`` (the latter two need ``means``).
    heads
        (layer, head) pairs to ablate; default every head.
    batch_size
        Points per clean forward, or ``"auto"`` (halved and retried on out-of-memory:
        :mod:`negolens.autobatch`).
    group
        Heads re-run together (one replica of the batch each).
    means
        :func:`~negolens.analysis.ablation.reference_means`, for ``mean``/``resample``.
    progress
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        ``[n_points, n_layers, n_heads]``: ablated − clean metric; NaN for heads not swept.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis import decision_points, LogitDiff
    >>> model = tiny_model()
    >>> points = decision_points(model, example_transcripts(4), limit=4)
    >>> effects_fast(model, points, LogitDiff.accept_vs_counter(model), progress=False).shape
    (4, 2, 4)
    """
    check_kind(kind)
    check_points(points)
    metric = as_metric(model, metric)
    if kind != "zero" and means is None:
        raise NegolensError(f"{kind} ablation needs means= (negolens.analysis.reference_means)")
    with sdpa(model):
        return _effects_fast(model, points, metric, kind, heads, batch_size, group, means, progress)


def _effects_fast(model, points, metric, kind, heads, batch_size, group, means, progress) -> np.ndarray:
    L, H = model.shape.n_layers, model.shape.n_heads
    heads = heads or _all_heads(model)
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)
    out = np.full((len(points), L, H), np.nan)
    bar = tqdm(total=len(points) * len(heads), desc="ablations", disable=not progress or not is_main())
    def sweep(part: list) -> None:  # (index, point) rows; retried smaller on out-of-memory
        idx, chunk = [i for i, _ in part], [p for _, p in part]
        run = _Run(model, chunk, metric, kind, means)
        for l, hs in by_layer.items():
            for g in range(0, len(hs), group):
                heads_g = hs[g : g + group]
                delta = (run.ablate(l, heads_g) - run.clean[None]).cpu().numpy()  # [k, B]
                for j, h in enumerate(heads_g):
                    out[idx, l, h] = delta[j]
                bar.update(len(heads_g) * len(chunk))

    mine = shard(list(points))  # this process's decision points when launched as several
    map_chunks(sweep, mine, batch_size, model.device, cpu_default=4, log=tqdm.write)
    bar.close()
    if active_world().size > 1:
        out = np.stack(gather([(i, out[i]) for i, _ in mine], len(points)))
    return out


@torch.inference_mode()
def layer_effects(model, points, metric, kind: str = "zero", batch_size: int | str = 4, means=None) -> np.ndarray:
    """Per-point effect of ablating ALL heads of each layer at once: ``[n_points, n_layers]``.

    Arguments as for :func:`effects_fast`.
    """
    check_points(points)
    metric = as_metric(model, metric)
    L, H = model.shape.n_layers, model.shape.n_heads
    out = np.zeros((len(points), L))

    def sweep(part: list) -> None:  # (index, point) rows; retried smaller on out-of-memory
        run = _Run(model, [p for _, p in part], metric, kind, means)
        for l in range(L):
            out[[i for i, _ in part], l] = (run.ablate(l, [list(range(H))])[0] - run.clean).cpu().numpy()

    map_chunks(sweep, list(enumerate(points)), batch_size, model.device, cpu_default=4, log=tqdm.write)
    return out


@torch.inference_mode()
def effects_naive(model, points, metric, heads=None, batch_size: int = 4, progress: bool = True) -> np.ndarray:
    """The reference: a full TransformerLens forward per head, zeroing it on ``hook_z``.

    Same output as :func:`effects_fast` with ``kind="zero"`` (to float precision), much slower.
    """
    check_points(points)
    metric = as_metric(model, metric)
    L, H = model.shape.n_layers, model.shape.n_heads
    heads = heads or _all_heads(model)
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
                                                 fwd_hooks=[(model.sites.hook_name("attn_z", l), zero)])
            out[start : start + len(chunk), l, h] = (metric(logits[:, -1, metric.tokens()].float()) - clean).cpu().numpy()
    return out


def attribution(model, points, metric, batch_size: int | str = 4) -> np.ndarray:
    """Attribution patching for zero ablation: per point and head, Σ_pos −z · ∂metric/∂z.

    A first-order estimate of each head's zero-ablation effect from one forward and one
    backward per batch: ``[n_points, n_layers, n_heads]``. The same as
    :func:`negolens.analysis.screening.atp` with ``kind="zero"`` (which also handles mean/resample).
    """
    from negolens.analysis.screening import atp  # atp builds on this module's metric helpers

    return atp(model, points, metric, "zero", batch_size=batch_size)


def summarize_effects(effects: np.ndarray, n_boot: int = 2000, n_perm: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Tidy table from per-point effects ``[n, L, H]`` (heads with NaN are skipped).

    Returns
    -------
    pandas.DataFrame
        One row per swept head: ``layer, head, effect`` (mean over points), ``ci_low, ci_high``
        (bootstrap 95%), ``p`` (sign-flip permutation), ``q`` (Benjamini–Hochberg), ``n_points``.

    Examples
    --------
    >>> import numpy as np
    >>> table = summarize_effects(np.ones((6, 1, 2)), n_boot=100, n_perm=100)
    >>> list(table.columns)
    ['layer', 'head', 'effect', 'ci_low', 'ci_high', 'p', 'q', 'n_points']
    """
    n, L, H = effects.shape
    if n == 0:
        check_points([])
    flat = effects.reshape(n, L * H)
    done = np.isfinite(flat).all(axis=0)  # a head with an undefined effect is left out: no p over nothing
    p = np.full(L * H, np.nan)
    q = np.full(L * H, np.nan)
    if done.any():
        p[done] = sign_flip_pvalues(flat[:, done], n_perm=n_perm, seed=seed)
        q[done] = bh_qvalues(p[done])
    rows = []
    for idx in np.nonzero(done)[0]:
        lo, hi = bootstrap_ci(flat[:, idx], n_boot=n_boot, seed=seed)
        rows.append({"layer": idx // H, "head": idx % H, "effect": float(flat[:, idx].mean()), "ci_low": lo,
                     "ci_high": hi, "p": float(p[idx]), "q": float(q[idx]), "n_points": n})
    return pd.DataFrame(rows, columns=["layer", "head", "effect", "ci_low", "ci_high", "p", "q", "n_points"])


def screen_heads(model, points, metric, top: int, batch_size: int | str = 4, method: str = "atp", kind: str = "zero",
                 means=None) -> list[tuple[int, int]]:
    """The ``top`` heads by a screening score, largest first.

    ``method`` is one of :data:`negolens.analysis.screening.SCREENS` (scores:
    :func:`negolens.analysis.screening.screen_scores`); ``kind``/``means`` as for :func:`effects_fast`.
    """
    from negolens.analysis.screening import screen_scores  # atp builds on this module's metric helpers

    score = screen_scores(model, points, metric, method, kind, means, batch_size)
    order = np.argsort(-score, axis=None)[:top]
    return [(int(i // model.shape.n_heads), int(i % model.shape.n_heads)) for i in order]


def sweep_heads(model, decision_points, metric="accept", kind: str = "zero", screen_top: int | None = None,
                batch_size: int | str = 4, means=None, seed: int = 0, progress: bool = True,
                screen: str = "atp") -> pd.DataFrame:
    """Effect of ablating each head on ``metric`` at ``decision_points``, with statistics.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    decision_points
        From :func:`negolens.analysis.decision_points`.
    metric
        ``"accept"`` (logit accept − counter) or a :class:`LogitDiff`.
    kind
        ``zero`` | ``mean`` | ``resample`` (see :mod:`negolens.analysis.ablation`).
    screen_top
        Rank heads by the ``screen`` estimate first and ablate only that many exactly.
    batch_size
        Points per forward.
    means
        Reference means for ``mean``/``resample``
        (:func:`~negolens.analysis.ablation.reference_means`); computed on the decision points
        when not given.
    seed
        Seed of the bootstrap and the permutation test.
    progress
        Show a progress bar.
    screen
        With ``screen_top``: the estimate heads are ranked by, one of
        :data:`negolens.analysis.screening.SCREENS` — ``atp`` (attribution patching) or ``atp*``
        (AtP with GradDrop; slower).

    Returns
    -------
    pandas.DataFrame
        One row per (layer, head) swept — see :func:`summarize_effects`.

    Raises
    ------
    NegolensError
        For an unknown ``kind``, metric or ``screen``, or no decision points.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis import decision_points
    >>> model = tiny_model()
    >>> points = decision_points(model, example_transcripts(8), "buyer", limit=8)
    >>> table = sweep_heads(model, points, "accept", kind="mean", progress=False)
    >>> len(table), list(table.sort_values("q").columns[:2])
    (8, ['layer', 'head'])
    """
    check_kind(kind)
    check_points(decision_points)
    metric = as_metric(model, metric)
    if kind != "zero" and means is None:
        means = reference_means(model, decision_points, batch_size)
    heads = None
    if screen_top:
        heads = screen_heads(model, decision_points, metric, screen_top, batch_size, screen, kind, means)
    effects = effects_fast(model, decision_points, metric, kind, heads, batch_size, means=means, progress=progress)
    return summarize_effects(effects, seed=seed)
