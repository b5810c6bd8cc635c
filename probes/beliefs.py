"""What the buyer believes about the seller's hidden floor: belief probes with a leakage control.

The seller's cost is private: the buyer can only infer it from how the seller's prices move.
This module supplies the pieces of that probe study (the causal half is
:mod:`negolens.analysis.beliefs`):

* :func:`varied_cost_dialogues` — rule buyer vs rule seller on scenarios whose seller cost is
  drawn per dialogue, so the cost varies and the environment knows it (the rule seller concedes
  from the list price toward its cost, so its prices carry the cost);
* :func:`mask_seller_prices` — the **leakage control**: the same transcripts with every seller
  price (its :attr:`Utterance.price` and every price in its text) replaced by one constant, the
  list price, so nothing the seller says carries the cost any more;
* :func:`fit_beliefs` — the belief labels of :data:`BELIEF_LABELS` (defined in
  :mod:`negolens.probes.labels`: seller cost, zone of possible agreement, the seller's last
  concession, all / list price, at the buyer's own turns) probed per layer on the buyer's
  residual stream (GroupKFold by dialogue, mean baseline, control task, bootstrap CIs over
  dialogues), once on the dialogues and once on their leakage control. The control's
  activations come from the masked text but its labels from the true transcripts: a probe that
  still scores there reads something other than the seller's prices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from negolens.agents.protocol import format_price
from negolens.agents.transcripts import Transcript, Utterance
from negolens.config import option
from negolens.errors import NegolensError
from negolens.prices import find_prices
from negolens.probes.activations import cached_collect
from negolens.probes.fit import ProbeConfig, parse_layers
from negolens.probes.labels import PROBE_LABELS, label_table
from negolens.probes.linear import LinearProbe
from negolens.probes.sweep import layer_sweep, undefined_reason

__all__ = ["BELIEF_LABELS", "CONDITIONS", "BeliefConfig", "BeliefProbes", "varied_cost_dialogues",
           "mask_seller_prices", "fit_beliefs"]

BELIEF_LABELS = ("seller_cost_ratio", "zopa_ratio", "seller_concession")
"""The belief labels (all / list price; see :mod:`negolens.probes.labels`)."""
CONDITIONS = ("dialogues", "leakage control")
"""The two inputs every belief probe is fitted on: the transcripts, and their seller prices masked."""


@dataclass
class BeliefConfig:
    """Settings of the belief dialogues (:func:`varied_cost_dialogues`).

    Examples
    --------
    >>> BeliefConfig().cost_low < BeliefConfig().cost_high
    True
    >>> BeliefConfig.quick().n_dialogues < BeliefConfig().n_dialogues
    True
    """

    n_dialogues: int = option(96, "rule-vs-rule dialogues to probe (built-in scenarios, cycled)")
    max_turns: int = option(8, "the agents' horizon (the rule seller concedes to its cost by the last turn)")
    turns: int = option(5, "turns kept per dialogue: every dialogue has this shape (ones that end earlier are redrawn)")
    cost_low: float = option(0.4, "lowest seller cost drawn, as a fraction of the list price")
    cost_high: float = option(0.9, "highest seller cost drawn, as a fraction of the list price")
    buyer: str = option("rule:aggressive", "the buyer of the belief dialogues (its prices ignore the seller's)")
    seller: str = option("rule", "the seller of the belief dialogues (an agent spec: rule, rule:passive …)")
    seed: int = option(0, "seed of the cost draws")

    @classmethod
    def quick(cls, **overrides) -> "BeliefConfig":
        """A fast preset: fewer, shorter dialogues."""
        return cls(**{"n_dialogues": 24, **overrides})

    def __post_init__(self) -> None:
        from negolens.errors import at_least

        at_least(self.n_dialogues, 2, "n_dialogues")
        at_least(self.turns, 3, "turns (the buyer must face a seller price)")
        at_least(self.max_turns, self.turns, "max_turns (at least turns)")
        if not 0 < self.cost_low < self.cost_high < 1:
            raise NegolensError(f"seller costs must satisfy 0 < cost_low < cost_high < 1 (fractions of the list "
                                f"price), got {self.cost_low} and {self.cost_high}")


def varied_cost_dialogues(config: BeliefConfig | None = None, *, progress: bool = False) -> list[Transcript]:
    """Negotiations whose seller cost varies: built-in scenarios (cycled) with a drawn cost each.

    Each dialogue's seller cost is drawn uniformly in ``[cost_low, cost_high]`` × list price
    (rounded to cents); everything else is the built-in scenario, so the buyer's budget stays
    0.9 × list and ``zopa_ratio`` is 0.9 − ``seller_cost_ratio`` here. The dialogues are played
    by :func:`negolens.agents.negotiate` (instant with rule agents) and cut to their first
    ``config.turns`` turns; a dialogue that ends (or accepts) before its last kept turn is
    replaced by a fresh draw, so every dialogue has the same shape and how long a dialogue
    lasts says nothing about its cost.

    Parameters
    ----------
    config : BeliefConfig, optional
        How many dialogues, how long, which costs and agents; default ``BeliefConfig()``.
    progress : bool
        Show the runner's progress bar.

    Returns
    -------
    list of Transcript
        ``config.n_dialogues`` transcripts of ``config.turns`` turns, ids ``builtin-XX-cN``.

    Raises
    ------
    NegolensError
        When too few dialogues last ``config.turns`` turns (raise ``cost_low`` or use fewer turns).

    Examples
    --------
    >>> items = varied_cost_dialogues(BeliefConfig(n_dialogues=4))
    >>> len(items), len({round(t.scenario.seller_cost / t.scenario.list_price, 3) for t in items})
    (4, 4)
    >>> {len(t.turns) for t in items}
    {5}
    """
    from negolens.agents import load_scenarios, load_transcripts, negotiate

    config = config or BeliefConfig()
    base = load_scenarios("builtin", 36)
    rng = np.random.default_rng(config.seed)
    kept: list[Transcript] = []
    drawn = 0
    for _ in range(5):  # redraw the dialogues that ended early, a few times
        want = config.n_dialogues - len(kept)
        ratios = rng.uniform(config.cost_low, config.cost_high, want)
        scenarios = []
        for r in ratios:
            sc = base[drawn % len(base)]
            scenarios.append(dataclasses.replace(sc, id=f"{sc.id}-c{drawn}", seller_cost=round(float(r) * sc.list_price, 2)))
            drawn += 1
        records = negotiate(config.buyer, config.seller, scenarios, max_turns=config.max_turns, seed=config.seed,
                            progress=progress)
        for tr in load_transcripts(records):
            head = tr.turns[: config.turns]
            if len(head) == config.turns and all(u.intent not in ("accept", "reject", "quit") for u in head[:-1]):
                kept.append(dataclasses.replace(tr, turns=head, deal=None, deal_price=None))
        if len(kept) >= config.n_dialogues:
            return kept[: config.n_dialogues]
    raise NegolensError(f"only {len(kept)} of {config.n_dialogues} belief dialogues lasted {config.turns} turns: "
                        "raise cost_low, lower turns or use a more stubborn buyer")


def mask_seller_prices(transcripts: Sequence[Transcript], price: float | None = None) -> list[Transcript]:
    """The leakage control: every seller price, in the text and in ``Utterance.price``, set to a constant.

    Parameters
    ----------
    transcripts : sequence of Transcript
        Dialogues.
    price : float, optional
        The constant in dollars; default each scenario's list price (the seller "always asks
        the list price").

    Returns
    -------
    list of Transcript
        Copies with the same ids, scenarios and buyer turns; every price mention in a seller
        turn (:func:`negolens.prices.find_prices`) is rewritten as the constant.

    Examples
    --------
    >>> from negolens.agents import example_transcripts
    >>> masked = mask_seller_prices(example_transcripts(1))[0]
    >>> [(u.text, u.price) for u in masked.turns[:2]]
    [('I offer $245.', 245.0), ('I can sell it for $350.', 350.0)]
    """
    out = []
    for tr in transcripts:
        const = float(price if price is not None else tr.scenario.list_price)
        turns = [u if u.role != "seller" else _masked(u, const) for u in tr.turns]
        out.append(dataclasses.replace(tr, turns=turns, meta={**tr.meta, "leakage_control": const}))
    return out


def _masked(u: Utterance, const: float) -> Utterance:
    text, shown = u.text, format_price(const)
    for m in reversed(find_prices(text)):
        text = text[: m.start] + shown + text[m.end:]
    return dataclasses.replace(u, text=text, price=None if u.price is None else const)


@dataclass
class BeliefProbes:
    """What :func:`fit_beliefs` found.

    Attributes
    ----------
    curves : DataFrame
        One row per (condition, label, layer): ``condition`` (from :data:`CONDITIONS`),
        ``label``, then the columns of :func:`~negolens.probes.sweep.layer_sweep` (``score`` is
        out-of-fold R² with its 95% CI over dialogues, ``baseline`` the training-mean
        predictor's R² — chance).
    probes : dict of str to LinearProbe
        Per label, the probe fitted on every position of the dialogues at its best layer.
    layers : dict of str to int
        Per label, that best layer (highest R² on the dialogues).
    skipped : dict of str to str
        Labels not probed, with the reason.
    """

    curves: pd.DataFrame
    probes: dict[str, LinearProbe] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> list[str]:
        """One line per label: best-layer R² with CI on the dialogues vs the leakage control, and chance."""
        lines = [f"{label:>18} skipped: {why}" for label, why in self.skipped.items()]
        for label, layer in self.layers.items():
            at = self.curves[(self.curves.label == label) & (self.curves.layer == layer)].set_index("condition")
            d = at.loc["dialogues"]
            control = (f"leakage control {at.loc['leakage control'].score:.3f} [{at.loc['leakage control'].ci_low:.3f}, "
                       f"{at.loc['leakage control'].ci_high:.3f}]  ") if "leakage control" in at.index else ""
            lines.append(f"{label:>18} layer {layer:>2}: R² {d.score:.3f} [{d.ci_low:.3f}, {d.ci_high:.3f}]  {control}"
                         f"chance {d.baseline:.3f}  (n = {int(d.n)} positions, {int(d.n_dialogues)} dialogues)")
        return lines


def fit_beliefs(model, transcripts: Sequence[Transcript], labels: Sequence[str] = BELIEF_LABELS, *,
                config: ProbeConfig | None = None, control_price: float | None = None, leakage_control: bool = True,
                cache: str | Path | None = None, progress: bool = True) -> BeliefProbes:
    """Belief probes on the buyer's residual stream, per layer, on the dialogues and on their leakage control.

    Parameters
    ----------
    model : NegoModel
        The buyer model; it reads the transcripts teacher-forced in the buyer's view.
    transcripts : sequence of Transcript
        Dialogues whose seller cost is known (e.g. :func:`varied_cost_dialogues`); positions
        where a label is undefined (Craigslist's cost) are left out of its probe.
    labels : sequence of str
        From :data:`BELIEF_LABELS` (any regression label of ``PROBE_LABELS`` read ``before_reply`` works).
    config : ProbeConfig, optional
        Layers, folds, ``max_tokens``, batch size and seed; its ``labels`` are not used.
    control_price : float, optional
        The leakage control's constant seller price (default: each list price).
    leakage_control : bool
        Also fit every probe on the leakage control (``False``: the dialogues only).
    cache : str or Path, optional
        A folder for the activations (``dialogues/`` and ``leakage_control/`` under it).
    progress : bool
        Show progress bars.

    Returns
    -------
    BeliefProbes

    Raises
    ------
    NegolensError
        An unknown label, no transcripts, or every label undefined.

    Examples
    --------
    Three turns: the buyer faces one seller ask, so there is no concession to probe yet.

    >>> from negolens.testing import tiny_model
    >>> items = varied_cost_dialogues(BeliefConfig(n_dialogues=6, turns=3))
    >>> result = fit_beliefs(tiny_model(), items, config=ProbeConfig(n_splits=3, max_tokens=1024), progress=False)
    >>> sorted(result.curves.condition.unique()), sorted(result.layers)
    (['dialogues', 'leakage control'], ['seller_cost_ratio', 'zopa_ratio'])
    >>> result.skipped
    {'seller_concession': 'undefined: no positions where the label is defined'}
    """
    config = config or ProbeConfig()
    labels = [labels] if isinstance(labels, str) else list(labels)
    for label in labels:
        if PROBE_LABELS.get(label) != ("before_reply", "regression"):
            raise NegolensError(f"belief label {label!r} unknown: choose from {', '.join(BELIEF_LABELS)}")
    transcripts = list(transcripts)
    if not transcripts:
        raise NegolensError("no transcripts to probe: pass dialogues with a known seller cost "
                            "(e.g. varied_cost_dialogues())")
    layers = parse_layers(config.layers, model.shape.n_layers)
    inputs = {"dialogues": transcripts}
    if leakage_control:
        inputs["leakage control"] = mask_seller_prices(transcripts, control_price)
    curves, probes, best, skipped = [], {}, {}, {}
    for condition, items in inputs.items():
        folder = None if cache is None else Path(cache) / condition.replace(" ", "_")
        acts, _ = cached_collect(model, items, "buyer", folder, batch_size=config.batch_size,
                                 max_tokens=config.max_tokens, progress=progress)
        table = label_table(acts.meta, transcripts, "buyer")  # the TRUE labels, also for the control
        for label in labels:
            sel = ((table.rule == "before_reply") & table[label].notna()).to_numpy()
            y, groups = table.loc[sel, label].to_numpy(dtype=float), table.loc[sel, "dialogue"].to_numpy()
            reason = undefined_reason(y, groups)
            if reason:
                skipped[label] = reason
                continue
            curve = layer_sweep(acts.acts[sel], y, groups, table.loc[sel, "token_id"].to_numpy(), "regression",
                                layers=layers, n_splits=config.n_splits, seed=config.seed, progress=progress)
            curve.insert(0, "label", label)
            curve.insert(0, "condition", condition)
            curves.append(curve)
            if condition == "dialogues":
                best[label] = int(curve.loc[curve.score.idxmax(), "layer"])
                probes[label] = LinearProbe("regression").fit(acts.acts[sel, best[label]].astype(np.float32), y)
    if not curves:
        raise NegolensError("no belief label is defined on these transcripts (" + "; ".join(
            f"{k}: {v}" for k, v in skipped.items()) + "): use dialogues with a known seller cost")
    return BeliefProbes(pd.concat(curves, ignore_index=True), probes, best,
                        {k: v for k, v in skipped.items() if k not in best})
