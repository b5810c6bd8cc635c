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

Undefined labels are NaN / None and those positions are left out of that probe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from negolens.agents.transcripts import Transcript

LABELS = ("act", "speaker", "last_offer_ratio", "gap_bucket", "last_offer_by", "deal", "own_target_ratio")
REGRESSION = {"last_offer_ratio", "own_target_ratio"}
GAP_EDGES = (0.05, 0.15, 0.30)
RATIO_CAP = 2.0  # a few labelled prices are typos (10× the list price); ratios are capped at 2


def _bucket(x: float) -> str:
    for edge, name in zip(GAP_EDGES, ("<5%", "5-15%", "15-30%")):
        if x < edge:
            return name
    return ">=30%"


def label_table(meta: pd.DataFrame, transcripts: list[Transcript], role: str) -> pd.DataFrame:
    """``meta`` (from :func:`~negolens.probes.activations.collect`) with one column per label."""
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
        })
    return pd.concat([meta.reset_index(drop=True), pd.DataFrame(out)], axis=1)
