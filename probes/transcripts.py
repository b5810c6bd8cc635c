"""Transcripts to teacher-force: Craigslist human dialogues or the runner's JSONL output.

A :class:`Transcript` is a scenario and its turns (speaker, text, and — for labelled Craigslist
data — the dialogue-act intent and price). :func:`render_view` renders it as one speaker saw
it (its own system prompt with its own private numbers, its turns as ``assistant``), with the
two position sets the probes and the attention analysis use:

* ``utterance_end`` — the last token of each turn's content;
* ``before_reply`` — the last token before each turn's content: where the speaker decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from negolens.agents.prompts import system_prompt, view_messages
from negolens.agents.scenarios import Scenario, load_craigslist
from negolens.chat import RenderedChat
from negolens.errors import DataNotFoundError
from negolens.paths import data_dir


@dataclass(frozen=True)
class Utterance:
    role: str
    text: str
    intent: str | None = None
    price: float | None = None  # labelled price (Craigslist) or the act's price (runner)


@dataclass
class Transcript:
    id: str
    scenario: Scenario
    turns: list[Utterance]
    deal: bool | None = None  # None: the data does not say


@dataclass
class View:
    """A transcript rendered from one role's point of view."""

    transcript: Transcript
    role: str
    chat: RenderedChat
    turn_of_chat: list[int] = field(default_factory=list)  # chat turn index per transcript turn
    utterance_end: list[int] = field(default_factory=list)  # token index per transcript turn
    before_reply: list[int] = field(default_factory=list)


def from_craigslist(path: str | Path, limit: int | None = None) -> list[Transcript]:
    """Labelled (dev) or unlabelled (test) Craigslist dialogues; empty trailing turns give the outcome."""
    path = Path(path)
    scenarios = {s.id: s for s in load_craigslist(path)}
    out = []
    for n, line in enumerate(path.read_text().splitlines()):
        sc = scenarios.get(f"cb-{path.stem}-{n}")
        if sc is None:
            continue
        row = json.loads(line)
        roles = row["agent_info"]["Role"]
        acts = row.get("dialogue_acts") or {}
        intents = acts.get("intent") or [None] * len(row["utterance"])
        prices = acts.get("price") or [-1] * len(row["utterance"])
        turns, tail = [], []
        for agent, text, intent, price in zip(row["agent_turn"], row["utterance"], intents, prices):
            if text:
                turns.append(Utterance(roles[agent], text.strip(), intent or None, None if price in (-1, None) else float(price)))
            else:
                tail.append(intent or "")
        deal = True if "accept" in tail else (False if {"reject", "quit"} & set(tail) else None)
        if turns:
            out.append(Transcript(sc.id, sc, turns, deal))
        if limit and len(out) >= limit:
            break
    return out


def from_runner(path: str | Path) -> list[Transcript]:
    """Dialogues written by ``negolens negotiate`` (public text: utterance + action line)."""
    from negolens.agents.protocol import TurnRecord
    from negolens.agents.runner import read_records

    out = []
    for rec in read_records(path):
        turns = [Utterance(t["role"], TurnRecord(**t).public_text(), t["act"], t["price"]) for t in rec["turns"]]
        out.append(Transcript(rec["id"], Scenario(**rec["scenario"]), turns, rec["outcome"] == "deal"))
    return out


def load_transcripts(source: str, limit: int | None = None, data: str | Path | None = None) -> list[Transcript]:
    """``craigslist-dev`` | ``craigslist-test`` | a path to a runner ``dialogues.jsonl``."""
    if source in ("craigslist-dev", "craigslist-test"):
        root = data_dir(data)
        if root is None:
            raise DataNotFoundError("no data directory: set NEGOLENS_DATA or pass --data")
        name = "validation_dev.jsonl" if source.endswith("dev") else "test.jsonl"
        return from_craigslist(root / "craigslist_bargains" / name, limit)
    path = Path(source)
    if not path.is_file():
        raise DataNotFoundError(f"no transcripts at {source!r}: use craigslist-dev, craigslist-test or a dialogues.jsonl")
    items = from_runner(path)
    return items[:limit] if limit else items


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
