"""Decision points: the position where an agent is about to act, teacher-forced from transcripts.

For a transcript turn t spoken by ``role``, the prompt is ``role``'s view of turns < t, the
assistant header, turn t's real utterance, and the protocol's action prefix — so the next
token IS the decision:

* ``accept`` metric: prefix ``\\nACTION:``; the metric is logit(" accept") − logit(" counter")
  (first tokens), i.e. how much the model prefers closing over countering here;
* ``offer`` metric: prefix ``\\nACTION: offer $``; the metric is the price the model writes
  under greedy digit-constrained continuation, divided by the list price.

Only turns where the counterpart has named a price before are used: accept-vs-counter is only
meaningful facing an offer.
"""

from __future__ import annotations

from dataclasses import dataclass

from negolens.agents.prompts import system_prompt, view_messages
from negolens.agents.scenarios import Scenario
from negolens.errors import NegolensError

__all__ = ["DecisionPoint", "PREFIX", "act_token", "decision_points"]

PREFIX = {"accept": "\nACTION:", "offer": "\nACTION: offer $"}


@dataclass
class DecisionPoint:
    """A teacher-forced prompt whose next token is ``role``'s decision at ``turn`` of ``transcript``."""

    ids: list[int]
    transcript: str
    turn: int
    scenario: Scenario
    role: str
    metric: str


def decision_points(model, transcripts, role: str = "buyer", metric: str = "accept", max_tokens: int = 512,
                    limit: int | None = None) -> list[DecisionPoint]:
    """One point per (transcript, turn of ``role`` that faces a counterpart price).

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel` (its chat template renders the prompts).
    transcripts
        :class:`negolens.agents.Transcript` objects (:func:`negolens.agents.load_transcripts`).
    role
        Whose decisions: ``buyer`` | ``seller``.
    metric
        ``accept`` (prompt ends in ``ACTION:``) | ``offer`` (ends in ``ACTION: offer $``).
    max_tokens
        Prompts longer than this are skipped.
    limit
        Stop after this many points.

    Returns
    -------
    list[DecisionPoint]
        Possibly empty (the sweeps then raise a clear error).

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> points = decision_points(model, example_transcripts(4), "buyer", "accept", limit=8)
    >>> len(points), points[0].turn, model.decode(points[0].ids).endswith("ACTION:")
    (4, 2, True)
    """
    if metric not in PREFIX:
        raise NegolensError(f"unknown metric {metric!r}; use one of {', '.join(PREFIX)}")
    if role not in ("buyer", "seller"):
        raise NegolensError(f"unknown role {role!r}; use buyer or seller")
    tok = model.tokenizer
    out = []
    for tr in transcripts:
        for t, utt in enumerate(tr.turns):
            if utt.role != role or not any(u.price is not None and u.role != role for u in tr.turns[:t]):
                continue
            msgs = view_messages(system_prompt(tr.scenario, role), role, [(u.role, u.text) for u in tr.turns[:t]])
            prompt = model.render(msgs, add_generation_prompt=True).input_ids
            ids = prompt + tok.encode(utt.text + PREFIX[metric], add_special_tokens=False)
            if len(ids) <= max_tokens:
                out.append(DecisionPoint(ids, tr.id, t, tr.scenario, role, metric))
            if limit and len(out) >= limit:
                return out
    return out


def act_token(model, word: str) -> int:
    """First token of `` word`` (how the decoder writes acts after ``ACTION:``)."""
    return model.tokenizer.encode(" " + word, add_special_tokens=False)[0]
