"""Negotiation metrics: AgreeMate's nine, the RLVR paper's, and their fixes. Pure functions.

Per dialogue (:func:`dialogue_metrics`, from a runner record), with P the deal price, L the list
price, T_b / T_s the buyer's / seller's targets, B the buyer's budget, C the seller's cost:

* ``deal`` — 1 if ``accept`` answered a standing offer. Agreement rate = its mean.
* ``position`` — x = (P − T_b) / (T_s − T_b), clipped to [0, 1]: 0 = the buyer's target, 1 =
  the seller's. Undefined (``None``, counted, never 0) when T_s − T_b ≤ 0 or there is no deal.
* ``fairness`` — 1 − |2x − 1| ∈ [0, 1] (1 = split the difference). AgreeMate's is unbounded.
* ``bias`` — 2x − 1 ∈ [−1, 1] (+1: the seller got everything, −1: the buyer did).
* ``discount`` — 1 − P / L on deals (AgreeMate's relative efficiency, normalised by L).
* ``bargained_ratio`` — P / L on deals (RLVR).
* ``length`` — number of turns.
* ``first_offer_ratio_{role}`` — the role's first price / L.
* ``aggressiveness_{role}`` — how far the opening price is from L in the role's favour,
  normalised by L and clipped to [−1, 1] (buyer: 1 − first/L; seller: first/L − 1).
* ``concession_rate_{role}`` — mean step of the role's successive prices toward the
  counterpart, divided by L (AgreeMate uses raw dollars, incomparable across items); undefined
  with fewer than two prices.
* ``probing_ratio_{role}`` — share of the role's turns that are ``inquire`` acts.
* ``overshoot`` — the buyer offered or accepted above B.
* ``reward`` — RLVR, for the buyer: overshoot or a buyer protocol failure → −1; deal →
  clip((B − P) / max(|B − C|, 1), −1, 1) (the guard avoids dividing by a near-zero gap); no
  deal, quit or turn limit → 0.

:func:`summarize` reports each metric's mean over the dialogues where it is defined, with n, the
number undefined, and a bootstrap 95% CI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from negolens.agents.protocol import PRICE_ACTS as _PRICE_ACTS
from negolens.stats import bootstrap_ci

PRICE_ACTS = tuple(a.value for a in _PRICE_ACTS)


def _clip(v: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, v))


def _prices(turns: list[dict], role: str) -> list[float]:
    return [t["price"] for t in turns if t["role"] == role and t["act"] in PRICE_ACTS and t["price"] is not None]


def rlvr_reward(deal_price: float | None, budget: float, cost: float, overshoot: bool, failed: bool) -> float:
    """The RLVR buyer reward in [−1, 1]: the share of the budget–cost gap the buyer kept.

    Parameters
    ----------
    deal_price
        Deal price in dollars, ``None`` without a deal (reward 0).
    budget, cost
        The buyer's budget and the seller's cost, in dollars.
    overshoot, failed
        The buyer offered above budget / caused a protocol failure (reward −1).

    Examples
    --------
    >>> rlvr_reward(280.0, budget=315.0, cost=227.5, overshoot=False, failed=False)   # 35 / 87.5
    0.4
    >>> rlvr_reward(None, 315.0, 227.5, overshoot=True, failed=False)
    -1.0
    """
    if overshoot or failed:
        return -1.0
    if deal_price is None:
        return 0.0
    return _clip((budget - deal_price) / max(abs(budget - cost), 1.0), -1.0, 1.0)


def dialogue_metrics(rec: dict) -> dict:
    """Every metric for one finished dialogue record (``None`` where undefined).

    Parameters
    ----------
    rec
        A dialogue record as the runner writes it (:meth:`Negotiation.to_record
        <negolens.agents.protocol.Negotiation.to_record>`).

    Returns
    -------
    dict
        Metric name → value; the module docstring defines each one. Ratios are fractions of
        the list price, ``length`` is in turns, ``deal``/``overshoot`` are 0/1.

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> from negolens.agents.protocol import Act, Move, Negotiation
    >>> neg = Negotiation(builtin_scenarios()[0])   # list $350; targets: buyer $262.50, seller $350
    >>> _ = neg.apply(Move("How about $280?", Act.OFFER, 280.0))
    >>> _ = neg.apply(Move("Deal.", Act.ACCEPT))
    >>> m = dialogue_metrics(neg.to_record())
    >>> m["deal"], m["bargained_ratio"], m["position"], m["reward"]
    (1.0, 0.8, 0.2, 0.4)
    >>> m["concession_rate_buyer"] is None   # one buyer price: no step to measure
    True
    """
    s, turns = rec["scenario"], rec["turns"]
    L, P = s["list_price"], rec.get("deal_price")
    deal = rec["outcome"] == "deal"
    gap = s["seller_target"] - s["buyer_target"]
    x = _clip((P - s["buyer_target"]) / gap, 0.0, 1.0) if deal and gap > 0 else None
    overshoot = any(t["overshoot"] for t in turns if t["role"] == "buyer")
    m = {
        "deal": float(deal),
        "position": x,
        "fairness": None if x is None else 1.0 - abs(2 * x - 1),
        "bias": None if x is None else 2 * x - 1,
        "discount": 1.0 - P / L if deal else None,
        "bargained_ratio": P / L if deal else None,
        "length": float(len(turns)),
        "overshoot": float(overshoot),
        "protocol_failure": float(rec["outcome"] == "protocol_failure"),
        "reward": rlvr_reward(P if deal else None, s["buyer_budget"], s["seller_cost"], overshoot,
                              rec.get("failed_by") == "buyer"),
    }
    for role, sign in (("buyer", 1.0), ("seller", -1.0)):
        prices = _prices(turns, role)
        first = prices[0] if prices else None
        m[f"first_offer_ratio_{role}"] = None if first is None else first / L
        m[f"aggressiveness_{role}"] = None if first is None else _clip(sign * (1 - first / L), -1, 1)
        steps = [sign * (b - a) / L for a, b in zip(prices, prices[1:])]
        m[f"concession_rate_{role}"] = float(np.mean(steps)) if steps else None
        own = [t for t in turns if t["role"] == role]
        m[f"probing_ratio_{role}"] = sum(t["act"] == "inquire" for t in own) / len(own) if own else None
    return m


def summarize(records: list[dict], metrics: list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per metric: mean, 95% CI, n (defined), undefined.

    Parameters
    ----------
    records
        Dialogue records (a stored ``"metrics"`` entry is used when present).
    metrics
        Which metrics, in order (default: all of :func:`dialogue_metrics`).
    seed
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric``, ``mean`` (over the dialogues where it is defined), ``ci_low`` /
        ``ci_high`` (percentile bootstrap 95% CI of that mean), ``n`` (dialogues where it is
        defined) and ``undefined`` (dialogues where it is not, e.g. ``position`` without a deal).

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> from negolens.agents.protocol import Act, Move, Negotiation
    >>> deal, walk = Negotiation(builtin_scenarios()[0]), Negotiation(builtin_scenarios()[0])
    >>> _ = deal.apply(Move("How about $280?", Act.OFFER, 280.0)), deal.apply(Move("Deal.", Act.ACCEPT))
    >>> _ = walk.apply(Move("Bye.", Act.QUIT))
    >>> summarize([deal.to_record(), walk.to_record()], metrics=["deal", "position"])
         metric  mean  ci_low  ci_high  n  undefined
    0      deal   0.5     0.0      1.0  2          0
    1  position   0.2     0.2      0.2  1          1
    """
    per = [r.get("metrics") or dialogue_metrics(r) for r in records]
    names = metrics or (list(per[0]) if per else [])
    rows = []
    for name in names:
        vals = [p[name] for p in per if p.get(name) is not None]
        lo, hi = bootstrap_ci(vals, seed=seed)
        rows.append({"metric": name, "mean": float(np.mean(vals)) if vals else float("nan"),
                     "ci_low": lo, "ci_high": hi, "n": len(vals), "undefined": len(per) - len(vals)})
    return pd.DataFrame(rows)
