"""Transcripts: Craigslist human dialogues or the runner's JSONL output, as one record type.

A :class:`Transcript` is a scenario and its turns (speaker, text, and — for labelled Craigslist
data — the dialogue-act intent and price). Training builds examples from them; the probes and
the analysis teacher-force them (:mod:`negolens.probes.transcripts` renders per speaker).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from negolens.agents.scenarios import Scenario, load_craigslist
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
