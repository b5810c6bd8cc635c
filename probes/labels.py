"""Labels for probe positions, derived from transcripts (no model involved).

For a position at turn ``t`` (``utterance_end``: after turn t's text; ``before_reply``: just
before it — labels there only use turns < t, what the model has seen):

* ``act`` — turn t's dialogue-act intent (Craigslist labels: init-price, counter-price, …).
* ``speaker`` — who speaks turn t (already in the metadata).
* ``last_offer_ratio`` — the latest labelled price seen so far / list price, capped at 2
  (regression).
* ``gap_bucket`` — |last buyer price − last seller price| / list, bucketed (<5%, 5–15%,
  15–30%, ≥30%); undefined until both sides named a price.
* ``last_offer_by`` — who named the latest price.
* ``deal`` — whether the dialogue ends in a deal (from the data's outcome turns).
* ``own_target_ratio`` — the viewer's own private target / list price (regression): does the
  model carry its secret?

Belief labels (:mod:`negolens.probes.beliefs`), defined only in the buyer's view at the buyer's
own turns (``before_reply``: what it believes as it is about to reply), all / list price:

* ``seller_cost_ratio`` — the seller's hidden floor (cost), once the seller has named a price;
  NaN where the data does not know it (Craigslist, imported sets that filled it in);
* ``zopa_ratio`` — the zone of possible agreement, buyer budget − seller cost (same rule);
* ``seller_concession`` — how far the seller's latest asking price came down from its previous
  one; NaN until the seller has asked two prices (an accepted price is not an ask).

Undefined labels are NaN / None and those positions are left out of that probe.
:data:`PROBE_LABELS` is the one list of labels: each with the position rule it is read at and
its task.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from negolens.agents.transcripts import Transcript
from negolens.errors import NegolensError

__all__ = ["PROBE_LABELS", "label_table", "label_spec"]

#: label → (position rule, task): where the probe reads it, and classification or regression.
PROBE_LABELS: dict[str, tuple[str, str]] = {
    "act": ("utterance_end", "classification"),
    "speaker": ("utterance_end", "classification"),
    "last_offer_ratio": ("utterance_end", "regression"),
    "gap_bucket": ("before_reply", "classification"),
    "last_offer_by": ("before_reply", "classification"),
    "deal": ("utterance_end", "classification"),
    "own_target_ratio": ("before_reply", "regression"),
    "seller_cost_ratio": ("before_reply", "regression"),
    "zopa_ratio": ("before_reply", "regression"),
    "seller_concession": ("before_reply", "regression"),
}
GAP_EDGES = (0.05, 0.15, 0.30)
RATIO_CAP = 2.0  # some labelled prices are typos (many times the list price): ratios are capped


def label_spec(label: str) -> tuple[str, str]:
    """``(position rule, task)`` of ``label``; :class:`NegolensError` naming the valid labels if unknown.

    Examples
    --------
    >>> label_spec("act")
    ('utterance_end', 'classification')
    """
    try:
        return PROBE_LABELS[label]
    except KeyError:
        raise NegolensError(f"unknown probe label {label!r}; choose from {', '.join(PROBE_LABELS)}") from None


def _bucket(x: float) -> str:
    for edge, name in zip(GAP_EDGES, ("<5%", "5-15%", "15-30%")):
        if x < edge:
            return name
    return ">=30%"


def _known(tr: Transcript, name: str) -> bool:
    """Whether scenario field ``name`` is the environment's number (not a convention filled in)."""
    return tr.scenario.source != "craigslist" and name not in tr.filled  # Craigslist's cost is 0.7 × list by convention


def _beliefs(tr: Transcript, row, seen, role: str) -> dict:
    """The belief labels of one position (NaN where undefined; see the module docstring)."""
    out = dict.fromkeys(("seller_cost_ratio", "zopa_ratio", "seller_concession"), np.nan)
    if role != "buyer" or row.speaker != "buyer" or row.rule != "before_reply":
        return out
    s = tr.scenario
    asks = [u.price for u in seen if u.role == "seller" and u.price is not None and u.intent != "accept"]
    if asks and _known(tr, "seller_cost"):
        out["seller_cost_ratio"] = s.seller_cost / s.list_price
        if _known(tr, "buyer_budget"):
            out["zopa_ratio"] = (s.buyer_budget - s.seller_cost) / s.list_price
    if len(asks) >= 2:
        out["seller_concession"] = (asks[-2] - asks[-1]) / s.list_price
    return out


def label_table(meta: pd.DataFrame, transcripts: list[Transcript], role: str) -> pd.DataFrame:
    """``meta`` with one column per label of :data:`PROBE_LABELS` (``speaker`` is already in it).

    Parameters
    ----------
    meta : DataFrame
        One row per position, as :func:`~negolens.probes.activations.collect` returns in
        ``ActivationSet.meta`` (columns ``dialogue``, ``turn``, ``rule``, ``speaker``, …).
    transcripts : list of Transcript
        The dialogues the positions come from (matched on ``Transcript.id``).
    role : {"buyer", "seller"}
        Whose view: ``own_target_ratio`` is that role's private target.

    Returns
    -------
    DataFrame
        ``meta``'s columns followed by the label columns; undefined labels are NaN / None.
    """
    by_id = {t.id: t for t in transcripts}
    out = []
    for row in meta.itertuples(index=False):
        tr = by_id[row.dialogue]
        s = tr.scenario
        seen = tr.turns[: row.turn + (1 if row.rule == "utterance_end" else 0)]
        priced = [(u.role, u.price) for u in seen if u.price is not None]
        last = {r: p for r, p in priced}
        target = s.buyer_target if role == "buyer" else s.seller_target
        out.append({
            "act": tr.turns[row.turn].intent,
            "last_offer_ratio": min(priced[-1][1] / s.list_price, RATIO_CAP) if priced else np.nan,
            "gap_bucket": _bucket(abs(last["buyer"] - last["seller"]) / s.list_price) if len(last) == 2 else None,
            "last_offer_by": priced[-1][0] if priced else None,
            "deal": None if tr.deal is None else ("deal" if tr.deal else "no deal"),
            "own_target_ratio": target / s.list_price,
            **_beliefs(tr, row, seen, role),
        })
    columns = [k for k in PROBE_LABELS if k not in meta.columns]
    return pd.concat([meta.reset_index(drop=True), pd.DataFrame(out, columns=columns)], axis=1)
