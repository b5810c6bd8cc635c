"""Transcripts: Craigslist human dialogues or the runner's JSONL output, as one record type.

A :class:`Transcript` is a scenario and its turns (speaker, text, and — for labelled Craigslist
data — the dialogue-act intent and price). Training builds examples from them; the probes and
the analysis teacher-force them (:mod:`negolens.probes.views` renders per speaker).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from negolens.agents.scenarios import Scenario, load_craigslist
from negolens.errors import DataNotFoundError, NegolensError
from negolens.paths import data_dir


@dataclass(frozen=True)
class Utterance:
    """One turn of a transcript: who spoke, the text, and (where known) its act and price."""

    role: str
    text: str
    intent: str | None = None
    price: float | None = None  # labelled price (Craigslist) or the act's price (runner)


@dataclass
class Transcript:
    """A scenario and its turns, with the outcome when the data says it."""

    id: str
    scenario: Scenario
    turns: list[Utterance]
    deal: bool | None = None  # None: the data does not say


def example_transcripts(n: int = 4, *, priced: bool = True) -> list[Transcript]:
    """Canned dialogues for examples and tests: three turns on each of the first ``n`` built-in scenarios.

    Each dialogue is a buyer's opening offer (70% of the list price), the seller's counter (90%)
    and the buyer's counter (80%), with the prices written in the text, the dialogue-act intents
    ``offer`` / ``counter`` / ``counter`` and, when ``priced``, the prices in
    :attr:`Utterance.price` as well (what :func:`negolens.analysis.decision_points` needs). The
    outcome is unknown (``deal=None``).

    Parameters
    ----------
    n : int
        Number of dialogues, one per built-in scenario (at most 36).
    priced : bool
        Fill :attr:`Utterance.price`; ``False`` leaves the prices in the text only.

    Returns
    -------
    list of Transcript
        Ids ``t0`` … ``t{n-1}``, on :func:`~negolens.agents.builtin.builtin_scenarios` in order.

    Examples
    --------
    >>> items = example_transcripts(2)
    >>> [(u.role, u.text, u.intent, u.price) for u in items[0].turns]  # doctest: +NORMALIZE_WHITESPACE
    [('buyer', 'I offer $245.', 'offer', 245.0), ('seller', 'I can sell it for $315.', 'counter', 315.0),
     ('buyer', 'Would you take $280?', 'counter', 280.0)]
    >>> items[1].scenario.list_price, example_transcripts(1, priced=False)[0].turns[0].price
    (60.0, None)
    """
    from negolens.agents.builtin import builtin_scenarios

    out = []
    for i, sc in enumerate(builtin_scenarios()[:n]):
        offer, ask, counter = (round(sc.list_price * f) for f in (0.7, 0.9, 0.8))
        turns = [
            Utterance("buyer", f"I offer ${offer}.", "offer", float(offer) if priced else None),
            Utterance("seller", f"I can sell it for ${ask}.", "counter", float(ask) if priced else None),
            Utterance("buyer", f"Would you take ${counter}?", "counter", float(counter) if priced else None),
        ]
        out.append(Transcript(f"t{i}", sc, turns))
    return out


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


def from_records(records: list[dict]) -> list[Transcript]:
    """Transcripts of runner records (as :func:`~negolens.agents.negotiate` returns them);
    each turn's public text is its utterance plus its action line."""
    from negolens.agents.protocol import TurnRecord

    out = []
    for rec in records:
        try:
            turns = [Utterance(t["role"], TurnRecord(**t).public_text(), t["act"], t["price"]) for t in rec["turns"]]
            out.append(Transcript(rec["id"], Scenario(**rec["scenario"]), turns, rec["outcome"] == "deal"))
        except (KeyError, TypeError) as err:
            raise NegolensError(f"record {rec.get('id', '?')!r} is not a negotiation record "
                                f"(missing or bad field {err}): pass records from negotiate()") from None
    return out


def from_runner(path: str | Path) -> list[Transcript]:
    """Dialogues written by ``negolens negotiate`` (a ``dialogues.jsonl``)."""
    from negolens.agents.runner import read_records

    return from_records(read_records(path))


def load_transcripts(source, limit: int | None = None, data: str | Path | None = None) -> list[Transcript]:
    """Transcripts from a named data set, a runner file, or records in memory.

    Parameters
    ----------
    source
        ``"craigslist-dev"`` (labelled) | ``"craigslist-test"`` | a path to a runner
        ``dialogues.jsonl`` | a list of records from :func:`~negolens.agents.negotiate` | a list
        of :class:`Transcript` (returned as is).
    limit
        Keep the first ``limit`` transcripts (``None``: all).
    data
        Data directory for the named sets (default ``$NEGOLENS_DATA`` or ``../shared/data``).

    Examples
    --------
    >>> from negolens.agents import load_scenarios, negotiate
    >>> records = negotiate("rule", "rule", load_scenarios("builtin", 2), max_turns=4, progress=False)
    >>> [len(t.turns) > 0 for t in load_transcripts(records)]
    [True, True]
    """
    if isinstance(source, (list, tuple)):
        if all(isinstance(x, Transcript) for x in source):
            items = list(source)
        else:
            items = from_records(list(source))
    elif str(source) in ("craigslist-dev", "craigslist-test"):
        root = data_dir(data)
        if root is None:
            raise DataNotFoundError("no data directory: set NEGOLENS_DATA or pass --data")
        name = "validation_dev.jsonl" if str(source).endswith("dev") else "test.jsonl"
        return from_craigslist(root / "craigslist_bargains" / name, limit)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataNotFoundError(f"no transcripts at {str(source)!r}: use craigslist-dev, craigslist-test "
                                    "or a dialogues.jsonl")
        items = from_runner(path)
    return items[:limit] if limit else items
