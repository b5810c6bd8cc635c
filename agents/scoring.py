"""negolens' metrics on any transcripts (imported or not), grouped, beside the metrics a tool stored.

:func:`transcript_metrics` turns a :class:`~negolens.agents.Transcript` into the record
:func:`~negolens.agents.metrics.dialogue_metrics` reads and returns every metric, undefined
(``None``) where the data cannot support it: without a known outcome (``deal``, ``reward``),
when a number it needs was not given but filled in by convention
(:attr:`Transcript.filled <negolens.agents.Transcript>`: the list price for the ratios, both
targets for ``position`` / ``fairness`` / ``bias``, budget and cost for ``overshoot`` /
``reward``), and ``protocol_failure`` outside negolens' own runs. Imported dialogue-act labels
are mapped onto negolens' acts for the metrics (price acts such as AgreeMate's ``init-price``
/ ``counter-price`` → ``offer``, ``intro`` → ``greet``, ``inquiry`` → ``inquire``); the
transcript keeps its own labels.

:func:`metrics_table` summarises them per group of metadata (e.g. per buyer model), with n and
bootstrap CIs, and — for AgreeMate files — puts the metrics AgreeMate stored in the same rows
beside them, with a note wherever the definitions differ (:data:`STORED_METRICS`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from negolens.agents.metrics import dialogue_metrics, summarize
from negolens.agents.transcripts import Transcript
from negolens.stats import bootstrap_ci

__all__ = ["transcript_metrics", "metrics_table", "STORED_METRICS"]

_OWN_ACTS = {"offer", "counter", "accept", "reject", "quit", "greet", "inquire", "inform"}
_ALIASES = {"intro": "greet", "greeting": "greet", "inquiry": "inquire", "question": "inquire", "ask": "inquire"}
_PRICE_ACTS = ("offer", "counter", "accept")
_RUNNER_OUTCOMES = {"deal", "quit", "turn_limit", "protocol_failure"}
_NEEDS = {  # metric → scenario fields it needs (undefined when one was filled in)
    "list_price": ("discount", "bargained_ratio", "first_offer_ratio_", "aggressiveness_", "concession_rate_"),
    "buyer_target": ("position", "fairness", "bias"),
    "seller_target": ("position", "fairness", "bias"),
    "buyer_budget": ("overshoot", "reward"),
    "seller_cost": ("reward",),
}

#: AgreeMate's stored columns: (its column, negolens metric beside it or None, note on the difference).
STORED_METRICS = (
    ("bias", "bias", "negolens: 2x-1 clipped to [-1, 1], +1 = the seller got all (x = (P-T_b)/(T_s-T_b)); "
                     "AgreeMate: 1-2x, unclipped, + favours the buyer"),
    ("fairness", "fairness", "negolens: 1-|2x-1| in [0, 1]; AgreeMate: 1-|its bias|, unbounded below"),
    ("aggressiveness", "discount", "same quantity, 1-P/L on deals; negolens' aggressiveness_{role} is the opening "
                                   "offer's distance from L"),
    ("dialogue_length", "length", "same: turns"),
    ("concession_rate", None, "AgreeMate: dollars per turn over both sides' prices (not comparable across items; "
                              "its formula changed between versions); negolens: concession_rate_{role}, each side's "
                              "mean step toward the other / L"),
    ("probing_ratio", None, "AgreeMate: one value per dialogue; negolens: probing_ratio_{role}, each side's share "
                            "of inquire acts"),
    ("rel_efficiency", None, "AgreeMate: fairness / dialogue length; no negolens counterpart"),
    ("rel_eff", None, "AgreeMate: fairness / dialogue length; no negolens counterpart"),
    ("bias_cond_dialogue_length", None, "AgreeMate: bias / dialogue length; no negolens counterpart"),
)


def _act(intent: str | None, price: float | None) -> str:
    """negolens' act for an imported dialogue-act label (price acts need a price)."""
    a = (intent or "").strip().lower()
    a = _ALIASES.get(a, a)
    if a in _OWN_ACTS and (a not in ("offer", "counter") or price is not None):
        return a
    return "offer" if price is not None else "inform"


def _record(tr: Transcript) -> dict:
    """The runner-shaped record of ``tr`` (what :func:`dialogue_metrics` reads)."""
    s, meta = tr.scenario, tr.meta
    failed_by = meta.get("failed_by")
    turns = []
    for i, u in enumerate(tr.turns):
        act = _act(u.intent, u.price)
        price = u.price if act in _PRICE_ACTS else None
        last_failed = failed_by is not None and i == len(tr.turns) - 1
        over = u.role == "buyer" and price is not None and price > s.buyer_budget and not last_failed
        turns.append({"role": u.role, "act": act, "price": price, "overshoot": over})
    if meta.get("outcome") in _RUNNER_OUTCOMES:
        outcome = meta["outcome"]
    else:
        outcome = "unknown" if tr.deal is None else ("deal" if tr.deal else "no_deal")
    if outcome == "deal" and tr.deal_price is None:
        outcome = "deal_unknown_price"
    return {"scenario": s.to_dict(), "turns": turns, "outcome": outcome, "deal_price": tr.deal_price,
            "failed_by": failed_by}


def transcript_metrics(tr: Transcript) -> dict:
    """Every negolens metric of one transcript, ``None`` where the data cannot define it.

    Parameters
    ----------
    tr : Transcript
        From any source (:func:`~negolens.agents.load_transcripts`).

    Returns
    -------
    dict
        The metrics of :func:`~negolens.agents.metrics.dialogue_metrics`; on runner
        transcripts the same values, on imported ones undefined where the module docstring says.

    Examples
    --------
    >>> from negolens.agents import example_transcripts
    >>> m = transcript_metrics(example_transcripts(1)[0])   # outcome unknown
    >>> m["deal"], m["first_offer_ratio_buyer"], m["length"]
    (None, 0.7, 3.0)
    """
    rec = _record(tr)
    m = dialogue_metrics(rec)
    if rec["outcome"] == "deal_unknown_price":
        m["deal"] = 1.0
    if rec["outcome"] == "unknown":
        m["deal"] = m["reward"] = None
    if tr.meta.get("outcome") not in _RUNNER_OUTCOMES:
        m["protocol_failure"] = None
    for field in tr.filled:
        for name in list(m):
            if name.startswith(_NEEDS.get(field, ())):
                m[name] = None
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in m.items()}


def _group_key(tr: Transcript, by: tuple[str, ...]) -> tuple:
    return tuple("(none)" if tr.meta.get(k) is None else tr.meta.get(k) for k in by)


def metrics_table(transcripts: list[Transcript], by: tuple[str, ...] | list[str] = (), metrics: list[str] | None = None,
                  seed: int = 0) -> pd.DataFrame:
    """negolens' metrics per group of transcripts, with n and CIs, beside any metrics the source stored.

    Parameters
    ----------
    transcripts : list of Transcript
        From :func:`~negolens.agents.load_transcripts` (any format).
    by : sequence of str
        ``meta`` keys to group on (e.g. ``("buyer_model",)``); empty: one group.
    metrics : list of str, optional
        Which negolens metrics (default all).
    seed : int
        Seed of the bootstraps.

    Returns
    -------
    pandas.DataFrame
        One row per group and metric: the ``by`` columns, ``metric``, ``mean``, ``ci_low``,
        ``ci_high``, ``n``, ``undefined`` (as :func:`~negolens.agents.summarize`); when the
        transcripts carry stored metrics (AgreeMate), also ``stored_metric``, ``stored_mean``,
        ``stored_ci_low``, ``stored_ci_high``, ``stored_n`` and ``note`` — a stored metric without
        a negolens counterpart gets its own row with an empty ``metric``.

    Examples
    --------
    >>> from negolens.agents import example_transcripts
    >>> items = example_transcripts(4)
    >>> for i, t in enumerate(items):
    ...     t.meta["buyer_model"] = "a" if i < 2 else "b"
    >>> table = metrics_table(items, by=["buyer_model"], metrics=["first_offer_ratio_buyer", "deal"])
    >>> table[["buyer_model", "metric", "mean", "n", "undefined"]]
      buyer_model                   metric  mean  n  undefined
    0           a  first_offer_ratio_buyer   0.7  2          0
    1           a                     deal   NaN  0          2
    2           b  first_offer_ratio_buyer   0.7  2          0
    3           b                     deal   NaN  0          2
    """
    by = tuple(by)
    groups: dict[tuple, list[Transcript]] = {}
    for tr in transcripts:
        groups.setdefault(_group_key(tr, by), []).append(tr)
    has_stored = any(t.meta.get("stored_metrics") for t in transcripts)
    frames = []
    for key, items in groups.items():
        table = summarize([{"metrics": transcript_metrics(t)} for t in items], metrics, seed=seed)
        if has_stored:
            table = _with_stored(table, items, seed)
        for col, value in zip(by, key):
            table.insert(list(by).index(col), col, value)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _with_stored(table: pd.DataFrame, items: list[Transcript], seed: int) -> pd.DataFrame:
    """``table`` with the stored metrics beside their negolens counterparts (or on rows of their own)."""
    stored = [t.meta.get("stored_metrics") or {} for t in items]
    known = {col for col, _, _ in STORED_METRICS}
    names = [col for col, _, _ in STORED_METRICS] + sorted({k for s in stored for k in s} - known)
    table = table.assign(stored_metric=None, stored_mean=np.nan, stored_ci_low=np.nan, stored_ci_high=np.nan,
                         stored_n=0, note="")
    extra = []
    for col in names:
        vals = [s[col] for s in stored if s.get(col) is not None and math.isfinite(s[col])]
        if not vals and col not in {c for s in stored for c in s}:
            continue
        ours, note = next(((o, n) for c, o, n in STORED_METRICS if c == col), (None, "stored by the source; no "
                                                                                     "negolens counterpart"))
        lo, hi = bootstrap_ci(vals, seed=seed)
        row = {"stored_metric": col, "stored_mean": float(np.mean(vals)) if vals else np.nan, "stored_ci_low": lo,
               "stored_ci_high": hi, "stored_n": len(vals), "note": note}
        hit = table.index[table.metric == ours] if ours is not None else []
        if len(hit):
            for k, v in row.items():
                table.at[hit[0], k] = v
        else:
            extra.append({"metric": None, "mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0,
                          "undefined": 0, **row})
    return pd.concat([table, pd.DataFrame(extra)], ignore_index=True) if extra else table
