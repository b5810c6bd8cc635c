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
from negolens.agents.transcripts import Transcript, Utterance, from_craigslist, from_runner, load_transcripts
from negolens.chat import RenderedChat

__all__ = ["Transcript", "Utterance", "View", "from_craigslist", "from_runner", "load_transcripts", "render_view"]


@dataclass
class View:
    """A transcript rendered from one role's point of view."""

    transcript: Transcript
    role: str
    chat: RenderedChat
    turn_of_chat: list[int] = field(default_factory=list)  # chat turn index per transcript turn
    utterance_end: list[int] = field(default_factory=list)  # token index per transcript turn
    before_reply: list[int] = field(default_factory=list)


def render_view(model, tr: Transcript, role: str, max_turns: int | None = None, max_tokens: int | None = None) -> View:
    """Render ``tr`` as ``role`` saw it, with per-turn token positions.

    ``max_tokens`` keeps the longest prefix of whole turns that fits (at least one turn).
    """
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
