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
* ``extrapolate`` — :class:`Extrapolate`: anchor at half the budget, then in its last turn name
  the seller's bottom line read off its last two prices (``2 * p5 - p3`` against the fair rule
  seller at 8 turns). Its last price is arithmetic on two numbers in the dialogue.

The scripted strategies live in :mod:`negolens.training.scripted`.

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

from negolens.agents.protocol import PRICE_ACTS, Act, Guards, Move, Negotiation, TurnRecord
from negolens.agents.rule_agent import RuleAgent
from negolens.errors import NegolensError
from negolens.training.scripted import Extrapolate, HoldFloor, HoldTarget, scripted_agent

__all__ = ["HoldTarget", "HoldFloor", "Extrapolate", "Teacher", "teacher_agents", "teacher_dialogues", "imitate"]

WORDS = {Act.ACCEPT: "Deal.", Act.OFFER: "How about this?", Act.COUNTER: "How about this?"}


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

    rule: RuleAgent | HoldTarget | HoldFloor | Extrapolate
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
        return scripted_agent(teacher, "buyer"), scripted_agent(seller, "seller")
    if role == "seller":
        return scripted_agent(buyer, "buyer"), scripted_agent(teacher, "seller")
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
