"""Phase labels of a GRPO run from its per-step behaviour statistics (``steps.jsonl``).

The RLVR paper (arXiv 2604.09855) reads a buyer's training in four phases: **naive** (deals
readily, often above its budget), **aggressive anchoring** (opening offers far below the
budget), **deadlock** (no one moves: dialogues run to the turn limit without deals) and
**persuasion** (deals within budget again, now with real surplus). A fifth state the paper does
not name, **walkaway**, is a buyer that ends dialogues early without a deal (it quits): the
stall cost's cheapest way out of a deadlock (run 26). :func:`label_phases` puts
one of these labels on every logged step, with transparent thresholds on the quantities
:func:`~negolens.training.rollouts.step_stats` logs, applied to a trailing running mean over
``window`` steps (so a label uses only the step and the ones before it). The rules, checked in
this order (the first that holds wins; :class:`PhaseRules` holds every threshold):

1. ``deadlock`` — deal rate ≤ ``deadlock_deal_max`` and mean length ≥
   ``deadlock_length_frac`` × the turn limit (``max_turns``; default: the longest logged length);
2. ``walkaway`` — deal rate ≤ ``deadlock_deal_max``, mean length ≤ ``walkaway_length_frac`` ×
   the turn limit and reward ≥ ``walkaway_reward_min`` (short dialogues without deals that cost
   nothing: quits, not protocol failures, which cost −1);
3. ``persuasion`` — deal rate ≥ ``deal_min``, overshoot rate ≤ ``persuasion_overshoot_max``,
   reward ≥ ``persuasion_reward_min`` and deal price / list ≤ ``persuasion_bargained_max``;
4. ``anchoring`` — first offer / budget ≤ ``anchor_max``;
5. ``naive`` — deal rate ≥ ``deal_min`` and (overshoot rate ≥ ``naive_overshoot_min`` or
   first offer / budget ≥ ``naive_first_min``);
6. otherwise ``transition``.

A missing quantity (NaN: no deal to take a price from, no offer at all) makes every rule that
reads it false. :func:`phase_spans` turns the labels into contiguous spans (for shading figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from negolens.config import option
from negolens.errors import NegolensError

__all__ = ["PHASES", "PhaseRules", "PHASE_QUANTITIES", "label_phases", "phase_spans"]

PHASES = ("naive", "anchoring", "deadlock", "persuasion", "walkaway", "transition")
"""Phase labels, the paper's four in its order, then ``walkaway`` (quits without deals, not one of the
paper's) and ``transition`` (none of the rules holds)."""

PHASE_QUANTITIES = ("reward", "deal_rate", "bargained_ratio", "overshoot_rate", "first_offer_budget_ratio", "length")
"""The per-step quantities the rules read (the columns of ``steps.jsonl`` they need)."""


@dataclass
class PhaseRules:
    """Thresholds of :func:`label_phases` (module docstring: the order the rules are checked in).

    Examples
    --------
    >>> PhaseRules().anchor_max, PhaseRules(window=1).window
    (0.6, 1)
    """

    window: int = option(3, "trailing running-mean window over steps before labelling (1: raw steps)")
    deal_min: float = option(0.5, "naive and persuasion: deal rate at least this")
    naive_overshoot_min: float = option(0.2, "naive: overshoot rate at least this (or a first offer near budget)")
    naive_first_min: float = option(0.8, "naive: first offer / budget at least this (or frequent overshoots)")
    anchor_max: float = option(0.6, "anchoring: first offer / budget at most this")
    deadlock_deal_max: float = option(0.2, "deadlock: deal rate at most this")
    deadlock_length_frac: float = option(0.75, "deadlock: mean length at least this share of the turn limit")
    walkaway_length_frac: float = option(0.5, "walkaway: deal rate as deadlock's and mean length at most this "
                                         "share of the turn limit")
    walkaway_reward_min: float = option(-0.1, "walkaway: mean reward at least this (a quit earns 0, a protocol "
                                        "failure -1)")
    persuasion_overshoot_max: float = option(0.1, "persuasion: overshoot rate at most this")
    persuasion_reward_min: float = option(0.1, "persuasion: mean reward at least this")
    persuasion_bargained_max: float = option(0.95, "persuasion: deal price / list at most this")

    def __post_init__(self) -> None:
        from negolens.errors import at_least

        at_least(self.window, 1, "window")


def label_phases(steps: pd.DataFrame | list[dict], rules: PhaseRules | None = None,
                 max_turns: float | None = None) -> pd.DataFrame:
    """One phase label per logged GRPO step, from its smoothed behaviour statistics.

    A pure function: the same table and rules give the same labels.

    Parameters
    ----------
    steps : DataFrame or list of dict
        Per-step statistics (:func:`~negolens.training.grpo.read_steps` or ``steps.jsonl`` read
        as a table): a ``step`` column and the :data:`PHASE_QUANTITIES`.
    rules : PhaseRules, optional
        Thresholds and the smoothing window; default ``PhaseRules()``.
    max_turns : float, optional
        The runs' turn limit (``GRPORunConfig.max_turns``); default: the longest mean length
        logged (a deadlocked run reaches it).

    Returns
    -------
    DataFrame
        One row per step, sorted by step: ``step``, each quantity smoothed (trailing mean over
        ``rules.window`` steps), and ``phase`` (one of :data:`PHASES`).

    Raises
    ------
    NegolensError
        When ``step`` or a quantity is missing.

    Examples
    --------
    >>> rows = [{"step": 1, "reward": -0.9, "deal_rate": 1.0, "bargained_ratio": 0.95, "overshoot_rate": 0.9,
    ...          "first_offer_budget_ratio": 0.9, "length": 4.0},
    ...         {"step": 2, "reward": 0.0, "deal_rate": 0.0, "bargained_ratio": float("nan"), "overshoot_rate": 0.0,
    ...          "first_offer_budget_ratio": 0.4, "length": 8.0}]
    >>> label_phases(rows, PhaseRules(window=1)).phase.tolist()
    ['naive', 'deadlock']
    """
    rules = rules or PhaseRules()
    df = pd.DataFrame(steps)
    missing = [c for c in ("step", *PHASE_QUANTITIES) if c not in df]
    if missing:
        raise NegolensError(f"steps lack {', '.join(missing)}: pass the per-step log of a GRPO run "
                            "(negolens.training.read_steps(RUN_DIR) or RUN_DIR/steps.jsonl)")
    df = df.sort_values("step").reset_index(drop=True)
    out = pd.DataFrame({"step": df.step.astype(int)})
    for q in PHASE_QUANTITIES:
        out[q] = pd.to_numeric(df[q], errors="coerce").rolling(rules.window, min_periods=1).mean()
    limit = float(max_turns) if max_turns is not None else float(pd.to_numeric(df.length, errors="coerce").max())
    out["phase"] = [_phase(row, rules, limit) for row in out.itertuples(index=False)]
    return out


def _phase(row, r: PhaseRules, limit: float) -> str:
    """The first rule that holds (NaN compares false everywhere)."""
    if row.deal_rate <= r.deadlock_deal_max and row.length >= r.deadlock_length_frac * limit:
        return "deadlock"
    if (row.deal_rate <= r.deadlock_deal_max and row.length <= r.walkaway_length_frac * limit
            and row.reward >= r.walkaway_reward_min):
        return "walkaway"
    if (row.deal_rate >= r.deal_min and row.overshoot_rate <= r.persuasion_overshoot_max
            and row.reward >= r.persuasion_reward_min and row.bargained_ratio <= r.persuasion_bargained_max):
        return "persuasion"
    if row.first_offer_budget_ratio <= r.anchor_max:
        return "anchoring"
    if row.deal_rate >= r.deal_min and (row.overshoot_rate >= r.naive_overshoot_min
                                        or row.first_offer_budget_ratio >= r.naive_first_min):
        return "naive"
    return "transition"


def phase_spans(labels: pd.DataFrame) -> pd.DataFrame:
    """Contiguous runs of one phase: ``phase``, ``start`` and ``end`` step (inclusive), ``steps``.

    Parameters
    ----------
    labels : DataFrame
        :func:`label_phases`' output (``step`` and ``phase`` columns).

    Returns
    -------
    DataFrame
        One row per span, in step order.

    Examples
    --------
    >>> labels = pd.DataFrame({"step": [1, 2, 3, 4], "phase": ["naive", "naive", "deadlock", "deadlock"]})
    >>> phase_spans(labels).values.tolist()
    [['naive', 1, 2, 2], ['deadlock', 3, 4, 2]]
    """
    rows = []
    for step, phase in zip(labels.step.astype(int), labels.phase):
        if rows and rows[-1]["phase"] == phase:
            rows[-1]["end"], rows[-1]["steps"] = step, rows[-1]["steps"] + 1
        else:
            rows.append({"phase": phase, "start": step, "end": step, "steps": 1})
    return pd.DataFrame(rows, columns=["phase", "start", "end", "steps"])

