"""The negotiation protocol: acts, the state machine, and the environment's guards.

Every turn is an utterance plus one *act*: ``offer``/``counter`` (with a price), ``accept``,
``reject``, ``quit``, or a talk act (``greet``, ``inquire``, ``inform``). A deal exists only when
``accept`` answers the counterpart's standing offer; the deal price is that offer.

The environment, not the prompt, enforces the hard limits:

* **regulated seller** — a seller offer below its cost, or a seller accepting a price below
  its cost, is *blocked*: recorded, but it neither stands nor makes a deal;
* **buyer budget guard** — a buyer offer (or accepted price) above budget is an *overshoot*
  (RLVR reward −1); with ``budget_guard="block"`` it is also blocked.

Bad output (no act, missing or absurd price, an act that is illegal in the state) is a
recorded *protocol failure* that ends the dialogue — never an exception.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from enum import Enum

from negolens.agents.scenarios import Scenario
from negolens.errors import NegolensError, choice

ROLES = ("buyer", "seller")
BUDGET_GUARDS = ("record", "block")
MAX_TURNS = 100  # hard cap on any dialogue's length: no setting can make a loop over turns unbounded


class Act(str, Enum):
    """A protocol act. The value is what the ``ACTION:`` line says (``Act("offer")``)."""

    OFFER = "offer"
    COUNTER = "counter"
    ACCEPT = "accept"
    REJECT = "reject"
    QUIT = "quit"
    GREET = "greet"
    INQUIRE = "inquire"
    INFORM = "inform"


PRICE_ACTS = frozenset({Act.OFFER, Act.COUNTER})
TALK_ACTS = frozenset({Act.GREET, Act.INQUIRE, Act.INFORM})
MAX_PRICE_FACTOR = 100.0  # a price above 100 × list is absurd, not an offer


def other(role: str) -> str:
    """The counterpart of ``role``: ``other("buyer") == "seller"`` and vice versa."""
    return "seller" if role == "buyer" else "buyer"


def check_turn_limit(max_turns) -> int:
    """``max_turns`` if it is an integer in ``1 .. MAX_TURNS``, else a :class:`NegolensError`.

    Every dialogue ends after at most :data:`MAX_TURNS` turns, so a loop over turns is bounded
    whatever the settings.

    Examples
    --------
    >>> check_turn_limit(12)
    12
    >>> check_turn_limit(0)
    Traceback (most recent call last):
    ...
    negolens.errors.NegolensError: max_turns must be an integer from 1 to 100, not 0
    """
    if isinstance(max_turns, bool) or not isinstance(max_turns, numbers.Integral) or not 1 <= max_turns <= MAX_TURNS:
        raise NegolensError(f"max_turns must be an integer from 1 to {MAX_TURNS}, not {max_turns!r}")
    return int(max_turns)


def format_price(price: float) -> str:
    """A price as the dialogue writes it: dollars, cents only if any, no thousands separator.

    The one format of every price an agent reads (its budget or minimum, the list price, the
    other side's offers) and the one an LLM agent writes: its constrained decoder emits digits
    and a dot only (:mod:`negolens.agents.decoding`). With ``$1,165`` in the prompt the agent
    could not write back the number it read — an untuned model stops at the comma (``$9,000``
    offered as 9), and run 15's buyer kept its own numbers under $1,000 on products listed above
    it; the README's run 16 measures the change.

    Examples
    --------
    >>> format_price(1250), format_price(7.5), format_price(1199.99)
    ('$1250', '$7.50', '$1199.99')
    """
    return f"${price:.0f}" if float(price).is_integer() else f"${price:.2f}"


def format_action(act: Act | None, price: float | None = None) -> str:
    """The public action line: ``ACTION: offer $250``.

    Examples
    --------
    >>> format_action(Act.OFFER, 250)
    'ACTION: offer $250'
    >>> format_action(Act.ACCEPT), format_action(None)
    ('ACTION: accept', 'ACTION: none')
    """
    if act is None:
        return "ACTION: none"
    return f"ACTION: {act.value} {format_price(price)}" if act in PRICE_ACTS and price is not None else f"ACTION: {act.value}"


@dataclass
class Move:
    """What an agent produced for one turn (before the environment applies it)."""

    utterance: str
    act: Act | None
    price: float | None = None
    reasoning: str | None = None  # chain of thought: never shown to the counterpart
    failure: str | None = None  # set by the agent when its output could not be read
    prompt_tokens: int = 0
    new_tokens: int = 0
    token_ids: list[int] | None = None  # LLM agents: the message's tokens exactly as generated
    sampled: list[int] | None = None  # per token of ``token_ids``: 1 if the policy chose it, 0 if forced


@dataclass
class TurnRecord:
    """One turn as the environment recorded it (the unit of a transcript).

    ``act`` is the act's string value; ``price`` is in dollars (for ``accept``, the accepted
    standing price); ``blocked`` names the guard that stopped the move (``"below_cost"``,
    ``"over_budget"``); ``overshoot`` marks a buyer price above budget; ``failure`` names a
    protocol failure (``"no_action"``, ``"illegal_accept"``, ``"missing_price"`` …);
    ``turns_left`` is the number of turns the dialogue has after this one, set only when the
    negotiation announces its deadline (``Negotiation.announce_turns``; both sides then see it
    after every message, :meth:`note`);
    ``prompt_tokens`` / ``new_tokens`` count the tokens the agent read and wrote; for an LLM
    agent, ``token_ids`` are its message's tokens exactly as generated and ``sampled`` marks the
    ones its policy chose (the agent reads its own turns back as these ids, and RL trains on
    them: :func:`~negolens.agents.prompts.view_ids`).
    """

    index: int
    role: str
    utterance: str
    act: str | None
    price: float | None
    reasoning: str | None = None
    blocked: str | None = None
    overshoot: bool = False
    failure: str | None = None
    prompt_tokens: int = 0
    new_tokens: int = 0
    token_ids: list[int] | None = None
    sampled: list[int] | None = None
    turns_left: int | None = None

    def note(self) -> str:
        """The environment's annotation appended to the action line, or ``""``: the guard that
        blocked the move (``" [blocked: below cost]"``) and, in a negotiation that announces its
        deadline, the turns left after this one (``" [turns left: 2]"``).

        Examples
        --------
        >>> TurnRecord(5, "seller", "No.", "counter", 80.0, turns_left=2).note()
        ' [turns left: 2]'
        """
        blocked = f" [blocked: {self.blocked.replace('_', ' ')}]" if self.blocked else ""
        return blocked + (f" [turns left: {self.turns_left}]" if self.turns_left is not None else "")

    def public_text(self) -> str:
        """What the counterpart sees: the utterance and the action line (never the reasoning)."""
        act = Act(self.act) if self.act else None
        line = format_action(act, self.price) + self.note()
        return f"{self.utterance}\n{line}" if self.utterance else line


@dataclass
class Guards:
    """The environment's hard limits (see the module docstring).

    ``regulated_seller``: block seller prices below cost. ``budget_guard``: ``"record"`` marks
    a buyer price above budget as an overshoot; ``"block"`` also blocks it.
    """

    regulated_seller: bool = True
    budget_guard: str = "record"  # "record" | "block"

    def __post_init__(self) -> None:
        choice(self.budget_guard, BUDGET_GUARDS, "budget_guard")


@dataclass
class Negotiation:
    """State of one dialogue. ``apply`` is the only way it changes.

    ``standing`` is the ``(role, price)`` of the offer on the table; ``outcome`` is ``"deal"``,
    ``"quit"``, ``"turn_limit"`` or ``"protocol_failure"`` once the dialogue ends.

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> neg = Negotiation(builtin_scenarios()[0], max_turns=6)   # a bike listed at $350
    >>> neg.apply(Move("How about $250?", Act.OFFER, 250.0)).public_text().splitlines()
    ['How about $250?', 'ACTION: offer $250']
    >>> neg.apply(Move("Deal.", Act.ACCEPT)).price
    250.0
    >>> neg.outcome, neg.deal_price
    ('deal', 250.0)
    """

    scenario: Scenario
    max_turns: int = 12
    first: str = "buyer"
    guards: Guards = field(default_factory=Guards)
    turns: list[TurnRecord] = field(default_factory=list)
    standing: tuple[str, float] | None = None  # (role, price) of the offer on the table
    outcome: str | None = None  # deal | quit | turn_limit | protocol_failure
    deal_price: float | None = None
    failed_by: str | None = None
    announce_turns: bool = False  # every message is followed by the turns left (TurnRecord.turns_left)

    def __post_init__(self) -> None:
        check_turn_limit(self.max_turns)
        choice(self.first, ROLES, "first speaker")

    @property
    def done(self) -> bool:
        """Whether the dialogue has ended (``outcome`` is set)."""
        return self.outcome is not None

    @property
    def to_move(self) -> str:
        """The role whose turn it is (roles alternate, starting with ``first``)."""
        return self.first if len(self.turns) % 2 == 0 else other(self.first)

    def facing(self, role: str) -> float | None:
        """The counterpart's standing price that ``role`` faces (dollars), or ``None`` when the
        offer on the table is ``role``'s own or there is none."""
        return self.standing[1] if self.standing is not None and self.standing[0] != role else None

    def price_act(self, role: str) -> Act:
        """The act by which ``role`` names a price now: a counter to a standing price it faces,
        otherwise an offer."""
        return Act.COUNTER if self.facing(role) is not None else Act.OFFER

    @property
    def last_round(self) -> bool:
        """Whether the dialogue is in its last two turns: the mover has no later turn."""
        return len(self.turns) >= self.max_turns - 2

    def legal_acts(self, role: str) -> list[Act]:
        """Acts legal for ``role`` now: accept/counter/reject need the counterpart's standing offer."""
        acts = [Act.OFFER, Act.QUIT, *TALK_ACTS]
        if self.facing(role) is not None:
            acts += [Act.COUNTER, Act.ACCEPT, Act.REJECT]
        return acts

    def apply(self, move: Move) -> TurnRecord:
        """Apply the mover's move; returns the turn as recorded."""
        if self.done:
            raise RuntimeError("negotiation already finished")
        role = self.to_move
        rec = TurnRecord(
            index=len(self.turns), role=role, utterance=move.utterance.strip(), act=move.act.value if move.act else None,
            price=move.price, reasoning=move.reasoning, failure=move.failure,
            prompt_tokens=move.prompt_tokens, new_tokens=move.new_tokens, token_ids=move.token_ids,
            sampled=move.sampled,
            turns_left=self.max_turns - len(self.turns) - 1 if self.announce_turns else None,
        )
        self.turns.append(rec)
        rec.failure = rec.failure or self._invalid(role, move)
        if rec.failure:
            self.outcome, self.failed_by = "protocol_failure", role
            return rec
        if move.act in PRICE_ACTS:
            self._guard(rec, role, move.price)
            if not rec.blocked:
                self.standing = (role, move.price)
        elif move.act is Act.ACCEPT:
            rec.price = self.standing[1]
            self._guard(rec, role, rec.price)
            if not rec.blocked:
                self.outcome, self.deal_price = "deal", rec.price
        elif move.act is Act.REJECT:
            self.standing = None
        elif move.act is Act.QUIT:
            self.outcome = "quit"
        if not self.done and len(self.turns) >= self.max_turns:
            self.outcome = "turn_limit"
        return rec

    def _guard(self, rec: TurnRecord, role: str, price: float) -> None:
        """Apply the guards to ``role`` offering or accepting ``price``: set ``rec.blocked`` / ``rec.overshoot``."""
        s = self.scenario
        if role == "seller" and self.guards.regulated_seller and price < s.seller_cost:
            rec.blocked = "below_cost"
        elif role == "buyer" and price > s.buyer_budget:
            rec.overshoot = True
            if self.guards.budget_guard == "block":
                rec.blocked = "over_budget"

    def _invalid(self, role: str, move: Move) -> str | None:
        if move.act is None:
            return "no_action"
        if move.act not in self.legal_acts(role):
            return f"illegal_{move.act.value}"
        if move.act in PRICE_ACTS:
            p = move.price
            if p is None:
                return "missing_price"
            if not math.isfinite(p) or p <= 0 or p > MAX_PRICE_FACTOR * self.scenario.list_price:
                return "absurd_price"
        return None

    def to_record(self) -> dict:
        """The dialogue as a JSON-ready dict: scenario, settings, turns and outcome.

        This is the record the runner writes and :func:`~negolens.agents.metrics.dialogue_metrics`
        reads.
        """
        return {
            "scenario": self.scenario.to_dict(),
            "max_turns": self.max_turns,
            "first": self.first,
            "guards": asdict(self.guards),
            "announce_turns": self.announce_turns,
            "turns": [asdict(t) for t in self.turns],
            "outcome": self.outcome,
            "deal_price": self.deal_price,
            "failed_by": self.failed_by,
        }
