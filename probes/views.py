"""Render a transcript as one speaker saw it, with the positions probes and attention use.

:func:`render_view` renders a :class:`~negolens.agents.transcripts.Transcript` from one role's
point of view (its own system prompt with its own private numbers, its turns as
``assistant``), with two position sets:

* ``utterance_end`` — the last token of each turn's content;
* ``before_reply`` — the last token before each turn's content: where the speaker decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from negolens.agents.prompts import system_prompt, view_messages
from negolens.agents.transcripts import Transcript
from negolens.chat import RenderedChat
from negolens.errors import NegolensError

__all__ = ["ROLES", "View", "render_view", "check_role"]

ROLES = ("buyer", "seller")


@dataclass
class View:
    """A transcript rendered from one role's point of view.

    Attributes
    ----------
    transcript : Transcript
        The dialogue that was rendered.
    role : str
        Whose view: ``"buyer"`` or ``"seller"``.
    chat : RenderedChat
        The token ids and per-turn token ranges of the rendered chat.
    turn_of_chat : list of int
        Chat turn index of each rendered transcript turn (the system prompt comes first).
    utterance_end, before_reply : list of int
        Token index, per rendered transcript turn, of the turn's last content token and of the
        last token before its content.
    """

    transcript: Transcript
    role: str
    chat: RenderedChat
    turn_of_chat: list[int] = field(default_factory=list)
    utterance_end: list[int] = field(default_factory=list)
    before_reply: list[int] = field(default_factory=list)


def check_role(role: str) -> str:
    """Return ``role`` if it is ``"buyer"`` or ``"seller"``; raise :class:`NegolensError` otherwise."""
    if role not in ROLES:
        raise NegolensError(f"unknown view {role!r}: use one of {', '.join(ROLES)}")
    return role


def render_view(model, tr: Transcript, role: str, max_turns: int | None = None, max_tokens: int | None = None) -> View:
    """Render ``tr`` as ``role`` saw it, with per-turn token positions.

    Parameters
    ----------
    model : NegoModel
        Supplies the tokenizer and chat template.
    tr : Transcript
        The dialogue.
    role : {"buyer", "seller"}
        Whose view: that role's system prompt, its turns as ``assistant``.
    max_turns : int, optional
        Render only the first ``max_turns`` turns.
    max_tokens : int, optional
        Keep the longest prefix of whole turns that fits (at least one turn).

    Returns
    -------
    View

    Examples
    --------
    The buyer's view of a canned three-turn dialogue: one entry per turn, the reply slot first.

    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> view = render_view(model, example_transcripts(1)[0], "buyer")
    >>> len(view.utterance_end), view.before_reply[0] < view.utterance_end[0]
    (3, True)
    """
    check_role(role)
    turns = tr.turns[:max_turns] if max_turns else tr.turns
    if max_tokens is not None:
        while len(turns) > 1 and len(render_view(model, tr, role, len(turns)).chat) > max_tokens:
            turns = turns[:-1]
    messages = view_messages(system_prompt(tr.scenario, role), role, [(u.role, u.text) for u in turns])
    chat = model.render(messages)
    offset = len(messages) - len(turns)
    view = View(tr, role, chat, turn_of_chat=[offset + i for i in range(len(turns))])
    for i in view.turn_of_chat:
        first, last = chat.turn_token_range(i)
        view.before_reply.append(first - 1)
        view.utterance_end.append(max(first, last) - 1)
    return view
