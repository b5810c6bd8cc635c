"""The anchoring study end to end: behaviour, per-layer and per-head mediation, the ≥ 50% set.

:func:`run_anchoring` is what ``negolens ablate --anchoring`` runs:

1. :func:`~negolens.analysis.anchoring.anchoring_pairs` — dialogues that differ only in the
   counterpart's opening price (× ``factors``);
2. :func:`~negolens.analysis.anchoring.anchoring_effect` — the anchoring coefficient of the
   greedy next offer, with a bootstrap CI over dialogues;
3. :func:`~negolens.analysis.mediation.mediation_screen` per layer (``attn``, ``resid_after``,
   ``resid_last``) and per head, on the next-digit logit difference;
4. :func:`~negolens.analysis.mediation.offer_shares` — the share of the greedy-offer effect for
   the ``top`` heads and layers of the screen, each alone;
5. :func:`~negolens.analysis.mediation.mediating_set` — heads added in screen order until
   their joint share of the offer effect reaches ``set_share``;
6. with ``final_n``: whole negotiations against a rule seller opening at target × factor
   (:func:`anchoring_final`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from negolens.analysis.anchoring import AnchoringEffect, anchoring_effect, anchoring_pairs, check_pairs, coefficient_table
from negolens.analysis.mediation import mediating_set, mediation_screen, offer_shares
from negolens.analysis.patched_decoding import Component
from negolens.config import option

__all__ = ["AnchoringConfig", "AnchoringResult", "run_anchoring", "anchoring_final"]


@dataclass
class AnchoringConfig:
    """Settings of :func:`run_anchoring` (and of ``negolens ablate --anchoring``).

    Examples
    --------
    >>> AnchoringConfig.quick().n, AnchoringConfig().factors
    (2, (0.8, 1.2))
    """

    role: str = option("buyer", "whose decisions: buyer | seller")
    n: int = option(16, "anchoring: dialogue pairs (decision points per anchor)")
    factors: tuple[float, ...] = option((0.8, 1.2), "anchoring: multipliers of the counterpart's opening price "
                                                    "(lowest and highest are patched between)")
    reply: str = option("", "anchoring: the viewer's message before 'ACTION: offer $' (default none)")
    max_tokens: int = option(512, "longest decision-point prompt, in tokens")
    comma: bool = option(False, "anchoring: a ',' after a digit continues the offer ($9,000 read as 9000; the "
                                "agents' decoder has no comma and would stop at $9)")
    heads: bool = option(True, "anchoring: screen every head too (not only layers)")
    head_screen: str = option("exact", "anchoring: per-head screen: exact (a partial forward per layer) | atp "
                                       "(attribution patching: one forward + backward; ranks, offer shares stay exact)")
    top: int = option(5, "top heads (and layers) whose greedy-offer share is measured")
    max_set: int = option(8, "anchoring: largest head set tried for the ≥ set-share mediating set")
    set_share: float = option(0.5, "anchoring: share of the offer effect the mediating set must carry")
    final_n: int = option(0, "anchoring: also play this many built-in negotiations per anchor (final price)")
    final_max_turns: int = option(8, "anchoring: turn limit of those negotiations")
    pair_batch: int = option(4, "anchoring: pairs per forward")
    seed: int = option(0, "seed of the bootstrap")

    @classmethod
    def quick(cls, **overrides) -> "AnchoringConfig":
        """Tiny-scale preset: 2 pairs, 2 top components, sets of at most 3 heads."""
        return cls(**{"n": 2, "top": 2, "max_set": 3, **overrides})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "AnchoringConfig":
        """Raise :class:`~negolens.errors.NegolensError` naming the valid values for any bad setting."""
        from negolens.agents.protocol import check_turn_limit
        from negolens.errors import NegolensError, at_least, choice

        choice(self.role, ("buyer", "seller"), "role")
        choice(self.head_screen, ("exact", "atp"), "head_screen")
        for name in ("n", "top", "max_set", "max_tokens", "pair_batch"):
            at_least(getattr(self, name), 1, name)
        at_least(self.final_n, 0, "final_n")
        if self.final_n:
            check_turn_limit(self.final_max_turns)
            if self.role != "buyer":
                raise NegolensError("final_n plays the model as the buyer against a rule seller: use role='buyer' "
                                    "or final_n=0")
        if len(set(self.factors)) < 2 or min(self.factors, default=0) <= 0:
            raise NegolensError(f"factors must be at least two different positive numbers (e.g. 0.8,1.2), "
                                f"not {self.factors!r}")
        if not 0 < self.set_share <= 1:
            raise NegolensError(f"set_share must be in (0, 1], not {self.set_share!r}")
        return self


@dataclass
class AnchoringResult:
    """Every table :func:`run_anchoring` computed (``None`` where a step did not run).

    Attributes
    ----------
    config
        The settings used.
    effect
        The behavioural coefficient and the offers (:class:`~negolens.analysis.anchoring.AnchoringEffect`).
    skipped
        Transcripts not used, by reason.
    layers
        Per-layer screen (:func:`~negolens.analysis.mediation.mediation_screen` with ``heads=False``).
    heads
        Per-head screen.
    shares
        Greedy-offer shares of the top heads and layers, each alone.
    mediating_set
        The head sets tried, smallest first; the last row is the answer.
    final
        Whole negotiations per anchor (``final_n``), with the summary in ``.attrs["summary"]``.
    """

    config: AnchoringConfig
    effect: AnchoringEffect
    skipped: dict
    layers: pd.DataFrame
    heads: pd.DataFrame | None = None
    shares: pd.DataFrame | None = None
    mediating_set: pd.DataFrame | None = None
    final: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by its file stem (``anchoring_effect``, ``anchoring_offers``, ``anchoring_layers`` …).

        Returns
        -------
        dict of str to pandas.DataFrame
        """
        out = {"anchoring_effect": self.effect.summary.assign(
                   skipped=";".join(f"{k}: {v}" for k, v in self.skipped.items())),
               "anchoring_offers": self.effect.offers, "anchoring_layers": self.layers}
        for name in ("heads", "shares", "mediating_set"):
            if getattr(self, name) is not None:
                out[f"anchoring_{name}"] = getattr(self, name)
        if self.final is not None:
            out["anchoring_final"] = self.final
            out["anchoring_final_effect"] = self.final.attrs["summary"]
        return out


def _ranked(table: pd.DataFrame, k: int) -> list[Component]:
    best = table.sort_values("share", ascending=False, kind="stable").head(k)
    return [Component(r.kind, int(r.layer), None if pd.isna(r.head) else int(r.head)) for r in best.itertuples()]


def run_anchoring(model, transcripts, config: AnchoringConfig | None = None, progress: bool = False) -> AnchoringResult:
    """The anchoring study on ``model`` (see the module docstring for the steps).

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    transcripts
        :class:`negolens.agents.Transcript` objects (:func:`negolens.agents.load_transcripts`).
    config
        :class:`AnchoringConfig` (default settings when ``None``).
    progress
        Show the final-price negotiations' progress bar.

    Returns
    -------
    AnchoringResult

    Raises
    ------
    NegolensError
        When no transcript gives a pair (the message says what to pass instead).

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> result = run_anchoring(model, example_transcripts(4), AnchoringConfig.quick())
    >>> sorted(result.tables())[:3]
    ['anchoring_effect', 'anchoring_heads', 'anchoring_layers']
    >>> int(result.effect.summary.n_pairs.iloc[0])
    2
    """
    cfg = (config or AnchoringConfig()).validate()
    pairs = anchoring_pairs(model, transcripts, cfg.factors, cfg.role, cfg.reply, cfg.max_tokens, cfg.n)
    check_pairs(pairs)
    effect = anchoring_effect(model, pairs, cfg.pair_batch, cfg.seed, comma=cfg.comma)
    layers = mediation_screen(model, pairs, heads=False, batch_size=cfg.pair_batch, seed=cfg.seed, comma=cfg.comma)
    heads = shares = chosen = None
    top_layers = _ranked(layers[layers.kind == "attn"], cfg.top)
    if cfg.heads:
        heads = mediation_screen(model, pairs, heads=True, batch_size=cfg.pair_batch, seed=cfg.seed,
                                 method=cfg.head_screen, comma=cfg.comma)
        top_heads = _ranked(heads, max(cfg.top, cfg.max_set))
        shares = offer_shares(model, pairs, [[c] for c in top_heads[: cfg.top] + top_layers], cfg.pair_batch, cfg.seed,
                              cfg.comma)
        chosen = mediating_set(model, pairs, top_heads, cfg.set_share, cfg.max_set, cfg.pair_batch, cfg.seed,
                               cfg.comma)
    else:
        shares = offer_shares(model, pairs, [[c] for c in top_layers], cfg.pair_batch, cfg.seed, cfg.comma)
    final = None
    if cfg.final_n:
        from negolens.agents import load_scenarios

        final = anchoring_final(model, load_scenarios("builtin", cfg.final_n), cfg.factors, seed=cfg.seed,
                                progress=progress, max_turns=cfg.final_max_turns)
    return AnchoringResult(cfg, effect, pairs.skipped, layers, heads, shares, chosen, final)


def anchoring_final(model, scenarios, factors=(0.8, 1.2), config=None, seed: int = 0, progress: bool = False,
                    **run) -> pd.DataFrame:
    """Whole negotiations (the model as buyer vs a rule seller that opens at its target × factor).

    The seller opens (``first="seller"``); everything else is identical between arms. The
    coefficient is the slope of log(deal price / list) on log(opening / list) per scenario that
    closes in every arm, averaged, with a bootstrap CI.

    Parameters
    ----------
    model
        The buyer's :class:`negolens.hooked.NegoModel` (or a spec string for
        :func:`negolens.agents.negotiate`).
    scenarios
        :class:`~negolens.agents.scenarios.Scenario` list.
    factors
        Multipliers of the rule seller's opening (its target).
    config
        A :class:`~negolens.agents.runner.RunConfig`; ``**run`` overrides its fields.
    seed
        Seed of the bootstrap.
    progress
        Show the runner's progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per (scenario, factor): ``transcript, factor, opening, log_opening, deal,
        final`` (log deal price / list; NaN without a deal); the summary (as in
        :class:`~negolens.analysis.anchoring.AnchoringEffect`, on ``final``) is in ``.attrs["summary"]``.
    """
    from negolens.agents import negotiate
    from negolens.errors import NegolensError

    scenarios = list(scenarios)
    if not scenarios:
        raise NegolensError("no scenarios for the final-price arm: pass at least one (e.g. load_scenarios('builtin', 8))")
    run = {"first": "seller", **run}
    rows = []
    for f in sorted(factors):
        arm = [dataclasses.replace(s, seller_target=round(s.seller_target * f, 2)) for s in scenarios]
        for s, rec in zip(arm, negotiate(model, "rule", arm, config, progress=progress, **run)):
            price = rec.get("deal_price") if rec.get("outcome") == "deal" else None
            rows.append({"transcript": s.id, "factor": f, "opening": s.seller_target,
                         "log_opening": float(np.log(s.seller_target / s.list_price)), "deal": price is not None,
                         "final": float(np.log(price / s.list_price)) if price else np.nan})
    table = pd.DataFrame(rows)
    _, summary = coefficient_table(table, "final", seed)
    table.attrs["summary"] = summary
    return table

