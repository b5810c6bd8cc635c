"""The most any buyer can earn against a rule seller: a ceiling for the RLVR reward, played, not assumed.

A :class:`~negolens.agents.rule_agent.RuleAgent` seller never offers a price below its bottom
line (its own prices concede from its anchor toward the bottom) and never accepts one below it
(it accepts an offer no lower than its own next price, or — in its last two turns — no lower
than the bottom). So no deal with it is cheaper than its bottom line, and no buyer earns more
than the paper's reward at that price; when the bottom line is above the buyer's budget every
deal overshoots, so no buyer that keeps to its budget earns more than 0 (no deal). The bottom is
the seller's cost, or its target for the ``unyielding`` persona (AmazonHistoryPrice's target is
the price, above the buyer's budget of 0.8 × price: no within-budget deal exists at all).

:class:`Clairvoyant` is the buyer that attains this ceiling: it is told the seller's bottom line
and names it every turn (the budget instead when the bottom is above it); the seller takes it
in its last-chance turn. :func:`ceiling` plays it through the runner against the same seller, so
the figure is a played dialogue's reward, checked by the environment's own guards and metrics —
a learned buyer's reward against a rule seller can be read as a share of it.

A second, lower bound says what a buyer earns without reading the seller: :class:`HoldShare`
names one fixed share of its budget at every turn, and :func:`share_curve` plays a grid of
shares. Against a rule seller, whose concessions do not depend on the buyer, such a buyer
closes exactly when its number is at or above the seller's bottom line; the best share is what
holding one share of the budget can earn, and the gap from it to :func:`ceiling` is what a
buyer earns only by knowing more about the bottom line than its budget tells it (the seller's
concessions reveal it).

Examples
--------
>>> from negolens.agents.builtin import builtin_scenarios
>>> recs = ceiling(builtin_scenarios()[:3], "rule", max_turns=8)
>>> [(r["metrics"]["reward"], r["metrics"]["overshoot"]) for r in recs]
[(1.0, 0.0), (1.0, 0.0), (1.0, 0.0)]
>>> [r["metrics"]["reward"] for r in ceiling(builtin_scenarios()[:3], "rule:unyielding", max_turns=8)]
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from negolens.agents.protocol import Move, Negotiation, format_price
from negolens.agents.rule_agent import RuleAgent
from negolens.errors import NegolensError

__all__ = ["Clairvoyant", "HoldShare", "ceiling", "seller_bottom", "share_curve"]


def seller_bottom(seller: RuleAgent, neg: Negotiation) -> float:
    """The lowest price ``seller`` ever offers or accepts in ``neg``'s scenario, in dollars.

    >>> from negolens.agents.builtin import builtin_scenarios
    >>> s = builtin_scenarios()[0]
    >>> seller_bottom(RuleAgent("seller"), Negotiation(s, 8)) == s.seller_cost
    True
    >>> seller_bottom(RuleAgent("seller", persona="unyielding"), Negotiation(s, 8)) == s.seller_target
    True
    """
    return seller.limits(neg)[1]


@dataclass
class Clairvoyant:
    """A buyer told the rule seller's bottom line: it names that price (rounded up to the cent)
    at every turn, or its budget when the bottom is above the budget, and never accepts.

    Parameters
    ----------
    seller : RuleAgent
        The seller it will face (its bottom line is read from it, per scenario).

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> s = builtin_scenarios()[0]
    >>> Clairvoyant(RuleAgent("seller")).act(Negotiation(s, 8)).price == s.seller_cost
    True
    """

    seller: RuleAgent
    role: str = "buyer"

    def __post_init__(self) -> None:
        if self.seller.role != "seller":
            raise NegolensError("Clairvoyant faces a rule seller: pass RuleAgent('seller', ...)")

    def config(self) -> dict:
        """The agent's settings as a JSON-ready dict."""
        return {"kind": "rule", "role": "buyer", "strategy": "clairvoyant", "seller": self.seller.config()}

    def act(self, neg: Negotiation) -> Move:
        """Name the seller's bottom line (or the budget, if the bottom is above it)."""
        bottom = math.ceil(round(seller_bottom(self.seller, neg) * 100, 6)) / 100
        price = min(bottom, neg.scenario.buyer_budget)
        return Move(f"I can offer {format_price(price)}.", neg.price_act(self.role), price)


@dataclass
class HoldShare:
    """A buyer that names ``share`` × its budget (to the cent) at every turn and never accepts.

    Parameters
    ----------
    share : float
        The share of the budget it names, in (0, 1]: it never pays above its budget.

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> s = builtin_scenarios()[0]                       # budget $315
    >>> HoldShare(0.8).act(Negotiation(s, 8)).price
    252.0
    """

    share: float
    role: str = "buyer"

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise NegolensError(f"share is a share of the budget, in (0, 1]; got {self.share}")

    def config(self) -> dict:
        """The agent's settings as a JSON-ready dict."""
        return {"kind": "rule", "role": "buyer", "strategy": "share", "share": self.share}

    def act(self, neg: Negotiation) -> Move:
        """Name the share of the budget."""
        price = round(self.share * neg.scenario.buyer_budget, 2)
        return Move(f"I can offer {format_price(price)}.", neg.price_act(self.role), price)


def share_curve(scenarios, seller: str = "rule", shares=(0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
                max_turns: int = 8, announce_turns: bool = True):
    """Mean reward, deal rate and overshoot of :class:`HoldShare` buyers, one row per share, played
    against ``seller`` on ``scenarios`` through the runner (its guards and metrics).

    Parameters
    ----------
    scenarios : list of Scenario
        The products.
    seller : str
        Any seller spec the runner plays (``rule``, ``rule:aggressive``, ...); rule sellers are
        deterministic, so the curve is exact.
    shares : sequence of float
        Shares of the budget, each in (0, 1].
    max_turns, announce_turns
        As the evaluated buyer plays.

    Returns
    -------
    pandas.DataFrame
        Columns ``share``, ``reward``, ``deal``, ``overshoot`` (means over ``scenarios``), ``n``.

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> curve = share_curve(builtin_scenarios()[:4], "rule", shares=(0.7, 0.8, 1.0))  # costs at 0.72 x budget
    >>> curve[["share", "reward", "deal"]].round(2).values.tolist()       # under the cost / 28% over it / all of it
    [[0.7, 0.0, 0.0], [0.8, 0.72, 1.0], [1.0, 0.0, 1.0]]
    """
    import pandas as pd

    from negolens.agents.factory import make_agent
    from negolens.agents.runner import RunConfig, run_negotiations

    rows, config = [], RunConfig(max_turns=max_turns, announce_turns=announce_turns)
    opponent = make_agent(seller, "seller", models={})
    for share in shares:
        recs = run_negotiations(scenarios, HoldShare(share), opponent, config, progress=False)
        m = pd.DataFrame([r["metrics"] for r in recs])
        rows.append({"share": share, "reward": m["reward"].mean(), "deal": m["deal"].mean(),
                     "overshoot": m["overshoot"].mean(), "n": len(recs)})
    return pd.DataFrame(rows)


def ceiling(scenarios, seller: str = "rule", max_turns: int = 8, announce_turns: bool = True,
            first: str = "buyer") -> list[dict]:
    """The :class:`Clairvoyant` buyer's negotiations against a rule seller: per scenario, the most
    reward any buyer can earn there while keeping to its budget.

    Parameters
    ----------
    scenarios : list of Scenario
        The products (e.g. the held-out ones a buyer is evaluated on).
    seller : str
        A rule seller spec: ``rule``, ``rule:aggressive``, ``rule:unyielding``, ... (an LLM seller
        has no bottom line to read, so it has no ceiling here).
    max_turns, announce_turns, first
        As the evaluated buyer plays (:class:`~negolens.agents.runner.RunConfig`).

    Returns
    -------
    list of dict
        Run records with ``metrics`` (``reward`` is the ceiling, ``overshoot`` is 0), in the
        order of ``scenarios``.

    Raises
    ------
    NegolensError
        When ``seller`` is not a rule seller.
    """
    from negolens.agents.factory import parse_spec
    from negolens.agents.runner import RunConfig, run_negotiations

    kind, personality, persona, _ = parse_spec(seller)
    if kind != "rule":
        raise NegolensError(f"a ceiling needs a rule seller (rule, rule:aggressive, rule:unyielding, ...), whose "
                            f"bottom line is known; got {seller!r}")
    rule = RuleAgent("seller", personality, persona)
    records = run_negotiations(scenarios, Clairvoyant(rule), rule,
                               RunConfig(max_turns=max_turns, announce_turns=announce_turns, first=first),
                               progress=False)
    return sorted(records, key=lambda r: r["id"])
