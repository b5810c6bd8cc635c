"""Transcripts: Craigslist human dialogues, the runner's JSONL output or imported sets, as one record type.

A :class:`Transcript` is a scenario and its turns (speaker, text, and — where the data has
them — the dialogue-act label and price), with the outcome and free metadata. Training builds
examples from them; the probes and the analysis teacher-force them
(:mod:`negolens.probes.views` renders per speaker); :func:`load_transcripts` reads every
supported source: negolens' open format (:mod:`negolens.agents.formats`, written by
:func:`~negolens.agents.formats.write_transcripts`), AgreeMate result CSVs and chat logs
(:mod:`negolens.agents.importers`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
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
    """A scenario and its turns, with the outcome when the data says it.

    Attributes
    ----------
    id : str
        Unique within a loaded set.
    scenario : Scenario
        The item and both sides' numbers.
    turns : list of Utterance
        The dialogue, in order.
    deal : bool or None
        Whether it ended in a deal; ``None``: the data does not say.
    deal_price : float or None
        The agreed price, when the data gives it.
    meta : dict
        Free metadata: ``source``, ``buyer_model`` / ``seller_model``, personalities, the file it
        came from …; imported sets also keep the metrics their tool stored
        (``meta["stored_metrics"]``).
    filled : tuple of str
        Scenario fields the source did not give, filled in by convention so the dialogue can be
        rendered (:mod:`negolens.agents.formats`); metrics that need them are undefined.
    """

    id: str
    scenario: Scenario
    turns: list[Utterance]
    deal: bool | None = None  # None: the data does not say
    deal_price: float | None = None
    meta: dict = field(default_factory=dict)
    filled: tuple[str, ...] = ()


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
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
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
    """Transcripts of runner records (as :func:`~negolens.agents.negotiate` returns them).

    Each turn's public text is its utterance plus its action line; ``meta`` names both agents
    (``buyer_model``, ``seller_personality`` …) and the outcome.

    Examples
    --------
    >>> from negolens.agents import load_scenarios, negotiate
    >>> records = negotiate("rule", "rule", load_scenarios("builtin", 1), max_turns=4, progress=False)
    >>> from_records(records)[0].meta["buyer_model"]
    'rule'
    """
    out = []
    for rec in records:
        try:
            out.append(_from_record(rec))
        except (KeyError, TypeError) as err:
            raise NegolensError(f"record {rec.get('id', '?')!r} is not a negotiation record "
                                f"(missing or bad field {err}): pass records from negotiate()") from None
    return out


def _from_record(rec: dict) -> Transcript:
    """One runner record as a transcript (KeyError/TypeError on a record of another shape)."""
    from negolens.agents.protocol import TurnRecord

    turns = [Utterance(t["role"], TurnRecord(**t).public_text(), t["act"], t["price"]) for t in rec["turns"]]
    return Transcript(rec["id"], Scenario(**rec["scenario"]), turns, rec["outcome"] == "deal",
                      rec.get("deal_price"), _record_meta(rec))


def _record_meta(rec: dict) -> dict:
    """Metadata of a runner record: both agents (model or kind, personality, CoT) and how it ended."""
    meta = {"source": "negolens", "outcome": rec.get("outcome")}
    if rec.get("failed_by"):
        meta["failed_by"] = rec["failed_by"]
    for role in ("buyer", "seller"):
        agent = rec.get(role) or {}
        if agent:
            meta[f"{role}_model"] = agent.get("model") or agent.get("kind")
            for key in ("personality", "cot", "persona"):
                if agent.get(key) is not None:
                    meta[f"{role}_{key}"] = agent[key]
    return meta


def from_runner(path: str | Path, problems=None) -> list[Transcript]:
    """Dialogues written by ``negolens negotiate`` (a ``dialogues.jsonl``).

    Parameters
    ----------
    path : str or Path
        The file.
    problems : RowProblems, optional
        Where bad lines go (default: strict, the first is an error naming file, line and field).
    """
    from negolens.agents.formats import RowProblems, read_jsonl

    problems = problems if problems is not None else RowProblems(path, strict=True)
    out = []
    for n, rec in read_jsonl(path, problems):
        missing = [k for k in ("id", "scenario", "turns", "outcome") if k not in rec]
        if missing:
            problems.add(f"line {n}", missing[0], "missing: not a negotiation record (expected the lines "
                         "`negolens negotiate` writes to dialogues.jsonl)")
            continue
        try:
            out.append(_from_record(rec))
        except (KeyError, TypeError) as err:
            problems.add(f"line {n}", "turns" if "TurnRecord" in str(err) or "'role'" in str(err) else "scenario",
                         f"bad record ({err})")
    return out


def load_transcripts(source, limit: int | None = None, data: str | Path | None = None, *, format: str = "auto",
                     strict: bool = False) -> list[Transcript]:
    """Transcripts from a named data set, a file or folder in any supported format, or records in memory.

    Parameters
    ----------
    source
        ``"craigslist-dev"`` (labelled) | ``"craigslist-test"`` | a path to a file (open
        format, a runner ``dialogues.jsonl``, Craigslist Bargains JSON lines, an AgreeMate
        result CSV, a chat log) | a folder (every ``*.jsonl`` / ``*.json`` / ``*.csv`` in it, in
        name order) | a list of records from :func:`~negolens.agents.negotiate` | a list of
        :class:`Transcript` (returned as is).
    limit
        Keep the first ``limit`` transcripts (``None``: all).
    data
        Data directory for the named sets (default ``$NEGOLENS_DATA`` or ``../shared/data``).
    format
        One of :data:`negolens.agents.formats.FORMATS`: ``auto`` (detected per file from its
        header or first line), ``open``, ``runner``, ``craigslist``, ``agreemate``, ``chat``.
    strict
        Make any unreadable row an error (naming file, row and field). Otherwise bad rows are
        skipped, counted and reported in one
        :class:`~negolens.agents.formats.UnreadableRowsWarning` per file.

    Returns
    -------
    list of Transcript

    Examples
    --------
    >>> from negolens.agents import load_scenarios, negotiate
    >>> records = negotiate("rule", "rule", load_scenarios("builtin", 2), max_turns=4, progress=False)
    >>> [len(t.turns) > 0 for t in load_transcripts(records)]
    [True, True]
    """
    from negolens.agents.formats import FORMATS

    if format not in FORMATS:
        raise NegolensError(f"unknown transcript format {format!r}: use one of {', '.join(FORMATS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise NegolensError(f"n must be at least 1 (or left out for all transcripts), not {limit!r}")
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
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".jsonl", ".json", ".csv"))
            if not files:
                raise DataNotFoundError(f"no *.jsonl / *.json / *.csv transcript files in {path}")
        elif path.is_file():
            files = [path]
        else:
            raise DataNotFoundError(f"no transcripts at {str(source)!r}: use craigslist-dev, craigslist-test, "
                                    "a transcript file (open format, dialogues.jsonl, AgreeMate CSV, chat log) "
                                    "or a folder of them")
        items = []
        for f in files:
            items += _read_file(f, format, strict)
            if limit and len(items) >= limit:
                break
        dup = next((i for i, k in Counter(t.id for t in items).items() if k > 1), None)
        if dup is not None:
            raise NegolensError(f"transcript id {dup!r} occurs more than once in {path}: ids must be unique")
    return items[:limit] if limit else items


def _read_file(path: Path, format: str, strict: bool) -> list[Transcript]:
    """One file's transcripts in ``format`` (``auto``: detected), bad rows reported per file."""
    from negolens.agents import formats, importers

    fmt = formats.detect_format(path) if format == "auto" else format
    if fmt == "craigslist":
        return from_craigslist(path)
    problems = formats.RowProblems(path, strict)
    reader = {"open": formats.read_open, "runner": from_runner, "agreemate": importers.read_agreemate,
              "chat": importers.read_chat}[fmt]
    items = reader(path, problems)
    problems.report(len(items))
    return items
