"""Scripted strategies a student LLM can be cloned from (:mod:`negolens.training.imitation`).

Each is a rule agent (``act(neg) -> Move``, ``config()``, ``role``) whose moves stand for one
idea a small model might learn to copy:

* :class:`HoldTarget` (``target``) — name the prompt's target at every turn: a number the
  student reads in its own prompt. ``target:deadline`` also takes the seller's price within the
  budget in its last turn.
* :class:`HoldFloor` (``floor``, sellers) — name the target, accept at or above the minimum: a
  comparison of two numbers the student reads.
* :class:`Extrapolate` (``extrapolate``) — anchor low, then in its last turn name the price the
  seller's own concessions lead to at its next turn: the seller's bottom line, read off its
  prices. Against the regulated rule seller, which concedes linearly to its cost and takes any
  price at or above cost in its last turn, this is the way from the best fixed share of the
  budget (:func:`~negolens.agents.oracle.share_curve`) to the ceiling
  (:func:`~negolens.agents.oracle.ceiling`): arithmetic on two prices in the dialogue.

:func:`scripted_agent` turns a teacher spec into one of them, or a :class:`~negolens.agents.rule_agent.RuleAgent`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from negolens.agents.protocol import Act, Move, Negotiation, format_price
from negolens.agents.rule_agent import RuleAgent
from negolens.errors import NegolensError

__all__ = ["HoldTarget", "HoldFloor", "Extrapolate", "scripted_agent"]


@dataclass
class HoldTarget:
    """A firm buyer: offers the prompt's target ("Aim for $X") at every turn, accepts a standing
    price at or below it, never goes above it (so never above the budget).

    Its number is one the student reads in its own prompt: imitating it is copying, not arithmetic.
    Against the regulated rule seller, which concedes toward its cost and accepts any price at or
    above cost in its last two turns, holding the target closes on most mutual-interest products.

    With ``deadline=True`` (spec ``target:deadline``) it also accepts, in its last turn, any
    standing price within its budget: against the rule seller that closes the products whose
    cost is above the target, at the seller's last price — and pays that price where holding the
    target would have closed lower, so it earns less overall (the README: +0.330 against the
    firm buyer's +0.383 on the held-out products).

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> neg = Negotiation(builtin_scenarios()[0], max_turns=6)   # buyer target $262.50
    >>> HoldTarget().act(neg).price
    262.5
    >>> for move in (HoldTarget(), RuleAgent("seller")) * 2:       # to the buyer's last turn
    ...     _ = neg.apply(move.act(neg))
    >>> neg.standing[1], HoldTarget().act(neg).act.value, HoldTarget(deadline=True).act(neg).act.value
    (276.5, 'counter', 'accept')
    """

    role: str = "buyer"
    deadline: bool = False

    def __post_init__(self) -> None:
        if self.role != "buyer":
            raise NegolensError("HoldTarget is a buyer strategy")

    def config(self) -> dict:
        """The agent's settings as a JSON-ready dict."""
        return {"kind": "rule", "role": "buyer", "strategy": "target", **({"deadline": True} if self.deadline else {})}

    def act(self, neg: Negotiation) -> Move:
        """Accept a standing price at or below the target (or, with ``deadline``, within the budget
        in the last own turn); otherwise name the target."""
        target, facing = neg.scenario.buyer_target, neg.facing(self.role)
        if facing is not None and (facing <= target or (self.deadline and neg.last_round
                                                        and facing <= neg.scenario.buyer_budget)):
            return Move("Deal.", Act.ACCEPT)
        return Move(f"I can offer {format_price(target)}.", neg.price_act(self.role), target)


@dataclass
class HoldFloor:
    """A reservation-price seller: names the prompt's target ("Aim for $X") at every turn and
    accepts any standing price at or above its minimum ("Your minimum is $Y").

    The rule seller accepts when the buyer's price reaches its own next concession, a number
    computed from the list price, the cost and the turn — a 135M clone never learned when that
    is (the README's fidelity table: it accepted 0 of 13 times its teacher did). This seller's
    accept compares two numbers that stand in its prompt and the buyer's message, and its
    counter copies one. Whether a clone learns the comparison depends on the dialogues: against
    a buyer that names one number every accept comes at the first turn, and the README's
    Craigslist clone learned that instead (it accepts every first offer).

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> neg = Negotiation(builtin_scenarios()[0], max_turns=6)   # list $350, seller cost $227.50
    >>> _ = neg.apply(Move("I can offer $200.", Act.OFFER, 200.0))
    >>> HoldFloor().act(neg)                                       # under the minimum: name the target
    Move(utterance='I can let it go for $350.', act=<Act.COUNTER: 'counter'>, price=350.0, ...)
    >>> _ = neg.apply(HoldFloor().act(neg)); _ = neg.apply(Move("I can offer $230.", Act.COUNTER, 230.0))
    >>> HoldFloor().act(neg).act                                   # at or above it: take it
    <Act.ACCEPT: 'accept'>
    """

    role: str = "seller"

    def __post_init__(self) -> None:
        if self.role != "seller":
            raise NegolensError("HoldFloor is a seller strategy")

    def config(self) -> dict:
        """The agent's settings as a JSON-ready dict."""
        return {"kind": "rule", "role": "seller", "strategy": "floor"}

    def act(self, neg: Negotiation) -> Move:
        """Accept a standing price at or above the minimum; otherwise name the target."""
        facing = neg.facing(self.role)
        if facing is not None and facing >= neg.scenario.seller_cost:
            return Move("Deal.", Act.ACCEPT)
        target = neg.scenario.seller_target
        return Move(f"I can let it go for {format_price(target)}.", neg.price_act(self.role), target)


@dataclass
class Extrapolate:
    """A buyer that reads the seller's bottom line off its concessions.

    Until its last turn it names ``anchor`` × its budget (whole dollars) and accepts a standing
    price at or below that. In its last turn (:attr:`~negolens.agents.protocol.Negotiation.last_round`),
    having seen two seller prices ``p`` (turn ``i``) and ``q`` (turn ``j > i``), it names the
    seller's price extrapolated along that line to the seller's next turn ``k``,
    ``q - (p - q) / (j - i) * (k - j)``, times ``1 + margin``, rounded up to whole dollars and
    capped at its budget; it accepts a standing price at or below that number. For the fair
    rule seller at 8 turns this is ``2 * p5 - p3`` — exactly its cost, which it accepts in its
    last turn. Without two seller prices by then it names its target.

    Parameters
    ----------
    anchor : float
        The share of the budget named before the last turn, in (0, 1]; low enough that the
        seller does not take it early.
    margin : float
        Relative margin over the extrapolated price, >= 0 (robustness to a student that reads
        the prices inexactly).

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> s = builtin_scenarios()[0]                                 # budget $315, seller cost $227.50
    >>> neg, buyer, seller = Negotiation(s, max_turns=8), Extrapolate(), RuleAgent("seller")
    >>> buyer.act(neg).price                                      # half the budget, whole dollars
    157.0
    >>> for _ in range(3):
    ...     _ = neg.apply(buyer.act(neg)); _ = neg.apply(seller.act(neg))
    >>> [t.price for t in neg.turns if t.role == "seller"], buyer.act(neg).price   # 2 x 262.5 - 297.5
    ([332.5, 297.5, 262.5], 228.0)
    """

    anchor: float = 0.5
    margin: float = 0.0
    role: str = "buyer"

    def __post_init__(self) -> None:
        if self.role != "buyer":
            raise NegolensError("Extrapolate is a buyer strategy")
        if not 0 < self.anchor <= 1:
            raise NegolensError(f"anchor is a share of the budget, in (0, 1]; got {self.anchor}")
        if not self.margin >= 0:
            raise NegolensError(f"margin must be >= 0; got {self.margin}")

    def config(self) -> dict:
        """The agent's settings as a JSON-ready dict."""
        return {"kind": "rule", "role": "buyer", "strategy": "extrapolate", "anchor": self.anchor,
                "margin": self.margin}

    def price(self, neg: Negotiation) -> float:
        """The number it names at this point of ``neg`` (whole dollars)."""
        s = neg.scenario
        seen = [(t.index, t.price) for t in neg.turns if t.role != self.role and t.price is not None]
        if not neg.last_round:
            return float(max(1, math.floor(self.anchor * s.buyer_budget)))
        if len(seen) < 2:
            return float(math.floor(s.buyer_target))
        (i, p), (j, q) = seen[-2:]
        k = len(neg.turns) + 1                                    # the seller's next turn
        guess = (q - (p - q) / (j - i) * (k - j)) * (1 + self.margin)
        return float(max(1, min(math.floor(s.buyer_budget), math.ceil(round(guess, 6)))))

    def act(self, neg: Negotiation) -> Move:
        """Accept a standing price at or below :meth:`price`; otherwise name it."""
        price, facing = self.price(neg), neg.facing(self.role)
        if facing is not None and facing <= price:
            return Move("Deal.", Act.ACCEPT)
        return Move(f"I can offer {format_price(price)}.", neg.price_act(self.role), price)


def scripted_agent(spec: str, role: str) -> RuleAgent | HoldTarget | HoldFloor | Extrapolate:
    """The scripted agent of a teacher spec, for ``role``.

    ``target``, ``target:deadline``, ``extrapolate`` and ``extrapolate:MARGIN`` are buyers,
    ``floor`` a seller; anything else must be a rule agent spec (``rule``, ``rule:aggressive``;
    a seller may carry a persona, ``rule:begging``).

    >>> scripted_agent("extrapolate:0.03", "buyer").margin
    0.03
    >>> scripted_agent("rule:passive", "seller").personality
    'passive'
    """
    from negolens.agents.factory import parse_spec

    if spec in ("target", "target:deadline") and role == "buyer":
        return HoldTarget(deadline=spec == "target:deadline")
    if spec.split(":")[0] == "extrapolate" and role == "buyer":
        margin = spec.partition(":")[2]
        try:
            return Extrapolate(margin=float(margin) if margin else 0.0)
        except ValueError:
            raise NegolensError(f"extrapolate takes a margin, e.g. extrapolate:0.03; got {spec!r}") from None
    if spec == "floor" and role == "seller":
        return HoldFloor()
    kind, personality, persona, _ = parse_spec(spec)
    if kind != "rule" or (persona and role == "buyer"):
        extra = "; or target, extrapolate for the buyer" if role == "buyer" else "; a persona too: rule:begging; or floor"
        raise NegolensError(f"the {role} of teacher dialogues must be a rule agent (rule, rule:aggressive, ...{extra})"
                            f"; got {spec!r}")
    return RuleAgent(role, personality, persona)
