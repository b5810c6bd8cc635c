"""Demonstrations from a scripted teacher, in the student's own tokens (behaviour cloning).

Reward-filtered fine-tuning (:mod:`negolens.training.filtered`) keeps the policy's own dialogues
that earned; it shows the policy nothing to avoid, and a small buyer keeps what it already does
(the README's third round: it copies the seller's price, above its budget too). A scripted
buyer that bargains shows both sides of every decision — it accepts the seller's price when it
is low enough and counters when it is not — and never pays above its budget. Two teachers:

* ``rule``, ``rule:aggressive``, ``rule:passive`` — the CoCoA-style concession rule of
  :class:`~negolens.agents.rule_agent.RuleAgent`: anchor under the target, concede toward the
  budget as the deadline nears, accept a price no worse than its own next one. Its prices are
  arithmetic on the budget and the turn.
* ``target`` — :class:`HoldTarget`: name the prompt's target at every turn, accept at or below
  it. Its price is a number the student reads in its own prompt. ``target:deadline`` also takes
  the seller's price in its last turn when that price is within its budget.
* ``floor`` (sellers) — :class:`HoldFloor`: name the prompt's target, accept any price at or
  above the prompt's minimum. Its accept is a comparison of two numbers the student reads.

Warm-starting a policy on expert demonstrations before RL is the standard move (AlphaStar;
"SFT, then RL" for LLM agents); the README measures what each teacher gives a 135M student.
A seller is cloned the same way (``role="seller"``): a rule seller or ``floor`` is the teacher,
the firm buyer (or a rule buyer) its counterpart.

Two pieces make a teacher's dialogue trainable exactly as a sampled one:

* :class:`Teacher` plays the rule with moves the student's decoder can emit: whole-dollar
  prices (rounded down for a buyer, up for a seller: never past the bottom line) and a short
  fixed message.
* :func:`imitate` writes each teacher turn's ``token_ids`` and ``sampled`` flags as the
  student's :class:`~negolens.agents.decoding.TurnDecoder` records them
  (:meth:`~negolens.agents.decoding.TurnDecoder.replay`), so
  :func:`~negolens.training.filtered.rollout_examples` puts the loss on the tokens the student
  would have chosen (words, act, price digits) and on nothing forced.

Examples
--------
>>> from negolens.agents.scenarios import split_scenarios
>>> recs = teacher_dialogues(split_scenarios("builtin", "train")[:2], "rule:aggressive", max_turns=8)
>>> [t["utterance"] for t in recs[0]["turns"] if t["role"] == "buyer"][:2]
['How about this?', 'How about this?']
>>> all(t["price"] == int(t["price"]) for t in recs[0]["turns"] if t["role"] == "buyer" and t["price"])
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from negolens.agents.protocol import PRICE_ACTS, Act, Guards, Move, Negotiation, TurnRecord, format_price
from negolens.agents.rule_agent import RuleAgent
from negolens.errors import NegolensError

__all__ = ["HoldTarget", "HoldFloor", "Teacher", "teacher_agents", "teacher_dialogues", "imitate"]

WORDS = {Act.ACCEPT: "Deal.", Act.OFFER: "How about this?", Act.COUNTER: "How about this?"}


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
        return Move(f"I can offer {format_price(target)}.", Act.COUNTER if facing is not None else Act.OFFER, target)


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
        act = Act.COUNTER if facing is not None else Act.OFFER
        return Move(f"I can let it go for {format_price(target)}.", act, target)


@dataclass
class Teacher:
    """A rule agent whose moves a student LLM's decoder can emit: whole-dollar prices, short words.

    Parameters
    ----------
    rule : RuleAgent, HoldTarget or HoldFloor
        The scripted strategy.
    student_personality : str
        The personality of the student's prompt, written into the records (the student learns
        to act like the teacher when prompted as it will be evaluated).

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> neg = Negotiation(builtin_scenarios()[0], max_turns=6)
    >>> Teacher(RuleAgent("buyer")).act(neg)     # the rule's $249.38, rounded down
    Move(utterance='How about this?', act=<Act.OFFER: 'offer'>, price=249.0, ...)
    """

    rule: RuleAgent | HoldTarget | HoldFloor
    student_personality: str = "fair"

    @property
    def role(self) -> str:
        """The teacher's role (its rule's)."""
        return self.rule.role

    def config(self) -> dict:
        """The record's agent entry: the student's personality (its prompt) and the teacher's rule."""
        return {"kind": "teacher", "role": self.role, "personality": self.student_personality,
                "teacher": self.rule.config()}

    def act(self, neg: Negotiation) -> Move:
        """The rule's move with the price in whole dollars and the short fixed words."""
        move = self.rule.act(neg)
        price = move.price
        if move.act in PRICE_ACTS:
            price = float(max(1, math.floor(price)) if self.role == "buyer" else math.ceil(price))
        return Move(WORDS.get(move.act, "Hello."), move.act, price)


def _scripted(spec: str, role: str) -> RuleAgent | HoldTarget | HoldFloor:
    from negolens.agents.factory import parse_spec

    if spec in ("target", "target:deadline") and role == "buyer":
        return HoldTarget(deadline=spec == "target:deadline")
    if spec == "floor" and role == "seller":
        return HoldFloor()
    kind, personality, persona, _ = parse_spec(spec)
    if kind != "rule" or (persona and role == "buyer"):
        extra = "; or target for the buyer" if role == "buyer" else "; a persona too: rule:begging; or floor"
        raise NegolensError(f"the {role} of teacher dialogues must be a rule agent (rule, rule:aggressive, ...{extra})"
                            f"; got {spec!r}")
    return RuleAgent(role, personality, persona)


def teacher_agents(teacher: str, seller: str = "rule", role: str = "buyer",
                   buyer: str = "target") -> tuple[RuleAgent | HoldTarget, RuleAgent | HoldFloor]:
    """The (buyer, seller) of teacher dialogues: ``teacher`` plays the student's ``role``, a rule
    agent or the firm buyer (``target``) the other side; a spec that is not one is an error.

    ``seller`` is the counterpart of a buyer teacher, ``buyer`` that of a seller teacher.

    >>> teacher_agents("target", "rule:unyielding")[1].persona
    'unyielding'
    >>> buyer, seller = teacher_agents("rule:aggressive", role="seller")
    >>> type(buyer).__name__, seller.role, seller.personality
    ('HoldTarget', 'seller', 'aggressive')
    """
    if role == "buyer":
        return _scripted(teacher, "buyer"), _scripted(seller, "seller")
    if role == "seller":
        return _scripted(buyer, "buyer"), _scripted(teacher, "seller")
    raise NegolensError(f"the student's role is buyer or seller; got {role!r}")


def teacher_dialogues(scenarios, teacher: str = "rule:aggressive", seller: str = "rule", max_turns: int = 8,
                      announce_turns: bool = True, student_personality: str = "fair", role: str = "buyer",
                      buyer: str = "target", counterpart_words: str = "own") -> list[dict]:
    """A scripted agent's negotiations, one per scenario, as run records: by default a scripted
    buyer against a rule seller; with ``role="seller"`` a rule seller against a scripted buyer.

    Parameters
    ----------
    scenarios : list of Scenario
        Training products (keep the held-out ones out: :func:`~negolens.agents.scenarios.split_scenarios`).
    teacher : str
        The student's side: a rule agent spec (``rule``, ``rule:aggressive``, ``rule:passive``;
        a seller may have a persona) or, for a buyer, ``target`` (:class:`HoldTarget`).
    seller, buyer : str
        The counterpart of a buyer teacher (a rule seller, ``rule:unyielding`` too) / of a seller
        teacher (``target`` or a rule buyer).
    max_turns : int
        Turns per dialogue, as the student is trained and evaluated.
    announce_turns : bool
        Both sides see the turns left (``--announce-turns``), as the student will.
    student_personality : str
        The student's prompt personality (:class:`Teacher`).
    role : str
        The student's role: ``buyer`` or ``seller``.
    counterpart_words : {"own", "short"}
        How the counterpart speaks: ``own`` — its rule's sentence ("I can offer $2,565."), as a
        rule agent plays in evaluations; ``short`` — the clones' fixed words and whole dollars
        (:class:`Teacher`), as a counterpart cloned the same way speaks. A clone reads its
        counterpart's words too: a seller trained on one and paired with the other meets
        messages it never saw (the README's Craigslist pair).

    Returns
    -------
    list of dict
        The records :func:`negolens.agents.runner.run_negotiations` returns, with ``metrics``
        (the paper's reward among them — the buyer's).

    Examples
    --------
    >>> from negolens.agents.scenarios import split_scenarios
    >>> rec = teacher_dialogues(split_scenarios("builtin", "train")[:1], "rule", role="seller", max_turns=8)[0]
    >>> [t["utterance"] for t in rec["turns"] if t["role"] == "seller"][:2], rec["seller"]["kind"]
    (['How about this?', 'How about this?'], 'teacher')
    """
    from negolens.agents.runner import RunConfig, run_negotiations

    if counterpart_words not in ("own", "short"):
        raise NegolensError(f"counterpart_words is own or short; got {counterpart_words!r}")
    buyer_agent, seller_agent = teacher_agents(teacher, seller, role, buyer)
    short = counterpart_words == "short"
    if role == "buyer":
        buyer_agent = Teacher(buyer_agent, student_personality)
        seller_agent = Teacher(seller_agent, student_personality) if short else seller_agent
    else:
        seller_agent = Teacher(seller_agent, student_personality)
        buyer_agent = Teacher(buyer_agent, student_personality) if short else buyer_agent
    records = run_negotiations(scenarios, buyer_agent, seller_agent,
                               RunConfig(max_turns=max_turns, announce_turns=announce_turns), progress=False)
    return sorted(records, key=lambda r: r["id"])  # scenario order (ids start with the index), as they were given


def opening(record: dict) -> Negotiation:
    """The negotiation of a dialogue record before its first turn (scenario, length, opener,
    guards, deadline notes), ready to replay the record's moves on."""
    from negolens.agents.scenarios import Scenario

    return Negotiation(Scenario(**record["scenario"]), max_turns=record["max_turns"], first=record["first"],
                       guards=Guards(**record["guards"]), announce_turns=record["announce_turns"])


def imitate(model, records: list[dict], role: str = "buyer", max_utterance_tokens: int = 8) -> list[dict]:
    """Copies of ``records`` whose ``role`` turns carry the ids the student's decoder would emit.

    Each turn's words, act and price are replayed through a
    :class:`~negolens.agents.decoding.TurnDecoder` of ``model``
    (:meth:`~negolens.agents.decoding.TurnDecoder.replay`) with the acts that were legal at
    that point of the dialogue, giving ``token_ids`` and ``sampled`` exactly as a sampled turn
    records them.

    Parameters
    ----------
    model : NegoModel
        The student (its tokenizer and stop tokens).
    records : list of dict
        Dialogue records whose ``role`` turns have no token ids (:func:`teacher_dialogues`).
    role : str
        Whose turns become trainable.
    max_utterance_tokens : int
        The student's message cap, as it will be evaluated.

    Returns
    -------
    list of dict
        New records; feed them to :func:`~negolens.training.filtered.rollout_examples`.

    Raises
    ------
    NegolensError
        When a turn is one the decoder could not emit (a longer message than the cap, a price
        with more digits after the point than the decoder reads): play the teacher with
        :class:`Teacher`.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents.scenarios import split_scenarios
    >>> from negolens.training.filtered import rollout_examples
    >>> played = teacher_dialogues(split_scenarios("builtin", "train")[:1])
    >>> recs = imitate(tiny_model(), played, max_utterance_tokens=40)
    >>> ex = rollout_examples(tiny_model(), recs)[0]
    >>> sum(label != -100 for label in ex.labels) > 0
    True
    """
    from negolens.agents.decoding import TurnDecoder

    decoder = TurnDecoder(model, max_utterance_tokens=max_utterance_tokens)
    enc = lambda text: model.tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    out = []
    for r in records:
        neg = opening(r)
        turns = []
        for t in r["turns"]:
            turn = TurnRecord(**t)
            act = Act(turn.act) if turn.act else None
            if turn.role == role:
                if act is None:
                    raise NegolensError(f"dialogue {r.get('id')}: a {role} turn without an act cannot be imitated")
                price = enc(f"{turn.price:.2f}".rstrip("0").rstrip(".")) if act in PRICE_ACTS else []
                try:
                    turn.token_ids, turn.sampled = decoder.replay(enc(turn.utterance), act, price,
                                                                  neg.legal_acts(role))
                except NegolensError as err:
                    raise NegolensError(f"dialogue {r.get('id')}, turn {turn.index}: {err}") from None
            neg.apply(Move(turn.utterance, act, turn.price if act in PRICE_ACTS else None))
            turns.append({**t, "token_ids": turn.token_ids, "sampled": turn.sampled})
        out.append({**r, "turns": turns})
    return out
