"""negolens' open transcript format (JSON lines), bad-row bookkeeping and format detection.

The open format
---------------
One dialogue per line, a JSON object::

    {"id": "d1",
     "scenario": {"title": "Road bike", "description": "...", "category": "bike", "list_price": 350,
                  "buyer_budget": 315, "buyer_target": 262.5, "seller_cost": 227.5, "seller_target": 350},
     "turns": [{"role": "buyer", "text": "Would you take $250?", "act": "offer", "price": 250},
               {"role": "seller", "text": "Deal.", "act": "accept", "price": 250}],
     "outcome": {"deal": true, "price": 250},
     "meta": {"source": "my-lab", "buyer_model": "llama-3-8b", "seller_model": "rule"}}

Only ``turns`` is required; each turn needs ``role`` (``buyer`` | ``seller``) and ``text``;
``act`` (any dialogue-act label, kept as :attr:`Utterance.intent <negolens.agents.Utterance>`)
and ``price`` (dollars) are optional. Every ``scenario`` field is optional (``id`` and
``source`` too); ``outcome`` is ``{"deal": true|false, "price": number|null}`` or absent when
unknown; ``meta`` is free (flat values are what ``negolens metrics --by`` groups on). ``id``
defaults to ``FILE-LINE``.

Missing scenario numbers are filled in so the dialogue can still be rendered from a speaker's
view, and listed in :attr:`Transcript.filled <negolens.agents.Transcript>` (metrics that need
them are undefined, never computed from a guess): list price ← the seller's first price, else
the highest price named; seller target ← list price; seller cost ← 0.7 × list (the Craigslist
convention); buyer budget ↔ buyer target (each the other, AgreeMate's convention), else
0.8 × list (the RLVR rule). :func:`write_transcripts` writes only the given fields, so a file
round-trips.

Bad input: every reader reports a bad row as ``FILE:LINE (or row N): field F: what is wrong``;
with ``strict`` the first one is a :class:`TranscriptFormatError`, otherwise it is skipped,
counted and reported once per file (a :class:`UnreadableRowsWarning`). A torn last line of a
JSON-lines file (no trailing newline: a writer killed mid-line) is the only row skipped silently.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

from negolens.agents.scenarios import Scenario
from negolens.agents.transcripts import Transcript, Utterance
from negolens.errors import NegolensError

__all__ = ["FORMATS", "TranscriptFormatError", "UnreadableRowsWarning", "RowProblems", "read_jsonl", "detect_format",
           "read_open", "write_transcripts", "transcript_to_dict", "transcript_from_dict", "build_scenario"]

FORMATS = ("auto", "open", "runner", "craigslist", "agreemate", "chat")
SCENARIO_NUMBERS = ("list_price", "buyer_budget", "buyer_target", "seller_cost", "seller_target")
SCENARIO_TEXT = ("title", "description", "category")
COST_RATIO, BUDGET_RATIO = 0.7, 0.8


class TranscriptFormatError(NegolensError):
    """A transcript file (or one of its rows) that cannot be read; the message names file, row and field."""


class UnreadableRowsWarning(UserWarning):
    """Rows skipped (non-strict reading): how many, of which file, and why."""


class RowProblems:
    """Collects a file's unreadable rows: raises on the first with ``strict``, else counts them.

    Parameters
    ----------
    path : str or Path
        The file, named in every message.
    strict : bool
        Raise :class:`TranscriptFormatError` on the first bad row.

    Examples
    --------
    >>> bad = RowProblems("chat.csv", strict=False)
    >>> bad.add("row 3", "speaker", "expected buyer or seller, got 'bob'")
    >>> bad.messages
    ["chat.csv:row 3: field 'speaker': expected buyer or seller, got 'bob'"]
    """

    def __init__(self, path: str | Path, strict: bool = False) -> None:
        self.path, self.strict, self.messages = str(path), strict, []

    def add(self, where: str, field: str, problem: str) -> None:
        """Record (or with ``strict``, raise) one bad row: ``where`` is ``"line 7"`` / ``"row 3"``."""
        msg = f"{self.path}:{where}: field {field!r}: {problem}"
        if self.strict:
            raise TranscriptFormatError(msg + " (fix or delete that row, or read without strict to skip and count bad rows)")
        self.messages.append(msg)

    def report(self, kept: int, noun: str = "transcripts") -> None:
        """Warn once, when rows were skipped: how many, how many ``noun`` were kept, the first reasons."""
        if self.messages:
            shown = "; ".join(self.messages[:5]) + (f"; … {len(self.messages) - 5} more" if len(self.messages) > 5 else "")
            warnings.warn(f"skipped {len(self.messages)} unreadable row(s) of {self.path} (kept {kept} {noun}; "
                          f"--strict makes this an error): {shown}", UnreadableRowsWarning, stacklevel=3)


def read_jsonl(path: str | Path, problems: RowProblems) -> list[tuple[int, dict]]:
    """``(line number, object)`` of each JSON-object line; bad lines go to ``problems``.

    Blank lines are ignored, and so is a torn last line (no trailing newline and not valid
    JSON: a writer killed mid-line); any other unreadable line is a problem.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = p.write_text('{"a": 1}\\n[2]\\n{"a": 3}\\n{"a": ')
    >>> bad = RowProblems(p)
    >>> [n for n, _ in read_jsonl(p, bad)], len(bad.messages)
    ([1, 3], 1)
    """
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            if n == len(lines) and not text.endswith("\n"):
                continue  # torn last line: the writer died mid-line
            problems.add(f"line {n}", "(json)", f"not valid JSON ({err.msg} at column {err.colno})")
            continue
        if not isinstance(obj, dict):
            problems.add(f"line {n}", "(json)", f"expected a JSON object, got {type(obj).__name__}")
            continue
        out.append((n, obj))
    return out


def _first_json(path: Path) -> dict | None:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return obj if isinstance(obj, dict) else None
    return None


def detect_format(path: str | Path) -> str:
    """The format of a transcript file, from its header or first record.

    Returns
    -------
    str
        ``agreemate`` (a CSV with ``transcript`` and ``listing_price`` columns), ``chat`` (a
        ``speaker,text`` CSV, or JSON lines of ``{"speaker"|"role", "text"}``), ``craigslist``
        (Craigslist Bargains JSON lines), ``runner`` (``negolens negotiate``'s dialogues.jsonl)
        or ``open`` (:mod:`this module's <negolens.agents.formats>` format).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("speaker,text\\nbuyer,Hi\\n")
    >>> detect_format(p)
    'chat'
    """
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as fh:
            header = [h.strip().lower() for h in next(csv.reader(fh), [])]
        if {"transcript", "listing_price"} <= set(header):
            return "agreemate"
        if "text" in header and ({"speaker", "role"} & set(header)) or len(header) == 2:
            return "chat"
        raise TranscriptFormatError(f"{path}: a CSV that is neither an AgreeMate results file (columns transcript, "
                                    f"listing_price …) nor a speaker,text chat log (header: {header[:8]}); "
                                    "pass --format")
    first = _first_json(path)
    if first is None:
        raise TranscriptFormatError(f"{path}: the first line is not a JSON object; expected JSON lines "
                                    "(open format, a dialogues.jsonl, Craigslist Bargains or a chat log), or pass --format")
    if "agent_info" in first:
        return "craigslist"
    turns = first.get("turns")
    if isinstance(turns, list):
        return "runner" if turns and isinstance(turns[0], dict) and "utterance" in turns[0] else "open"
    if "text" in first and ({"speaker", "role"} & set(first)):
        return "chat"
    raise TranscriptFormatError(f"{path}: cannot tell the format of the first record (keys {sorted(first)[:8]}); "
                                "pass --format")


def _number(value, where: str, field: str, problems: RowProblems, positive: bool = True) -> float | None | bool:
    """``value`` as a float, ``None`` if absent; ``False`` (and a problem) if it is not a number."""
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        problems.add(where, field, f"expected a number, got {value!r}")
        return False
    if isinstance(value, bool) or not math.isfinite(v) or (positive and v <= 0):
        problems.add(where, field, f"expected a positive number, got {value!r}")
        return False
    return v


def build_scenario(fields: dict, turns: list[Utterance], sid: str, source: str) -> tuple[Scenario, tuple[str, ...]]:
    """A :class:`Scenario` from the fields a source gives, the rest filled by the module's rules.

    Parameters
    ----------
    fields : dict
        Any of ``title``, ``description``, ``category`` and the five prices (``None`` = not given).
    turns : list of Utterance
        The dialogue (its prices stand in for a missing list price).
    sid, source : str
        The scenario's id and source.

    Returns
    -------
    (Scenario, tuple of str)
        The scenario and the names of the numeric fields that were filled in.

    Examples
    --------
    >>> sc, filled = build_scenario({"list_price": 100.0, "buyer_target": 70.0}, [], "s1", "mine")
    >>> sc.buyer_budget, sc.seller_cost, filled
    (70.0, 70.0, ('buyer_budget', 'seller_cost', 'seller_target'))
    """
    v = {k: fields.get(k) for k in SCENARIO_NUMBERS}
    if v["list_price"] is None:
        seller = [u.price for u in turns if u.role == "seller" and u.price is not None]
        named = [u.price for u in turns if u.price is not None]
        v["list_price"] = seller[0] if seller else (max(named) if named else math.nan)
    L = v["list_price"]
    if v["seller_target"] is None:
        v["seller_target"] = L
    if v["seller_cost"] is None:
        v["seller_cost"] = round(COST_RATIO * L, 2)
    if v["buyer_budget"] is None:
        v["buyer_budget"] = v["buyer_target"] if v["buyer_target"] is not None else round(BUDGET_RATIO * L, 2)
    if v["buyer_target"] is None:
        v["buyer_target"] = v["buyer_budget"]
    filled = tuple(k for k in sorted(SCENARIO_NUMBERS) if fields.get(k) is None)
    text = {k: str(fields.get(k) or "").strip() for k in SCENARIO_TEXT}
    return Scenario(id=sid, source=source, **text, **{k: float(x) for k, x in v.items()}), filled


def transcript_to_dict(tr: Transcript) -> dict:
    """One open-format line (a dict) for ``tr``: only the scenario fields it was given.

    Examples
    --------
    >>> from negolens.agents import example_transcripts
    >>> d = transcript_to_dict(example_transcripts(1)[0])
    >>> d["turns"][0], d["scenario"]["list_price"], "outcome" in d
    ({'role': 'buyer', 'text': 'I offer $245.', 'act': 'offer', 'price': 245.0}, 350.0, False)
    """
    s = tr.scenario
    scenario = {"id": s.id, "source": s.source}
    scenario.update({k: getattr(s, k) for k in SCENARIO_TEXT if getattr(s, k)})
    scenario.update({k: getattr(s, k) for k in SCENARIO_NUMBERS if k not in tr.filled and math.isfinite(getattr(s, k))})
    turns = []
    for u in tr.turns:
        t = {"role": u.role, "text": u.text}
        if u.intent is not None:
            t["act"] = u.intent
        if u.price is not None:
            t["price"] = u.price
        turns.append(t)
    out = {"id": tr.id, "scenario": scenario, "turns": turns}
    if tr.deal is not None:
        out["outcome"] = {"deal": tr.deal, "price": tr.deal_price}
    if tr.meta:
        out["meta"] = tr.meta
    return out


def transcript_from_dict(obj: dict, default_id: str, where: str, problems: RowProblems,
                         source: str = "open") -> Transcript | None:
    """A :class:`Transcript` from one open-format object, or ``None`` (and a problem) if it is bad."""
    raw = obj.get("turns")
    if not isinstance(raw, list) or not raw:
        problems.add(where, "turns", "missing or empty: expected a list of {role, text, act?, price?}")
        return None
    turns = []
    for i, t in enumerate(raw):
        f = f"turns[{i}]"
        if not isinstance(t, dict):
            problems.add(where, f, "expected an object with role and text")
            return None
        role = str(t.get("role", "")).strip().lower()
        if role not in ("buyer", "seller"):
            problems.add(where, f"{f}.role", f"expected buyer or seller, got {t.get('role')!r}")
            return None
        if not isinstance(t.get("text"), str):
            problems.add(where, f"{f}.text", f"expected a string, got {t.get('text')!r}")
            return None
        price = _number(t.get("price"), where, f"{f}.price", problems)
        if price is False:
            return None
        act = t.get("act")
        turns.append(Utterance(role, t["text"], None if act in (None, "") else str(act), price))
    sc = obj.get("scenario") or {}
    if not isinstance(sc, dict):
        problems.add(where, "scenario", "expected an object")
        return None
    fields = {k: sc.get(k) for k in SCENARIO_TEXT}
    for k in SCENARIO_NUMBERS:
        fields[k] = _number(sc.get(k), where, f"scenario.{k}", problems)
        if fields[k] is False:
            return None
    outcome = obj.get("outcome")
    deal = deal_price = None
    if outcome is not None:
        if not isinstance(outcome, dict) or not isinstance(outcome.get("deal"), (bool, type(None))):
            problems.add(where, "outcome", f"expected {{\"deal\": true|false, \"price\": …}}, got {outcome!r}")
            return None
        deal = outcome.get("deal")
        deal_price = _number(outcome.get("price"), where, "outcome.price", problems)
        if deal_price is False:
            return None
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        problems.add(where, "meta", "expected an object")
        return None
    tid = str(obj.get("id") or default_id)
    scenario, filled = build_scenario(fields, turns, str(sc.get("id") or tid), str(sc.get("source") or source))
    return Transcript(tid, scenario, turns, deal, deal_price, dict(meta), filled)


def read_open(path: str | Path, problems: RowProblems) -> list[Transcript]:
    """Transcripts of an open-format JSON-lines file (see the module docstring).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from negolens.agents import example_transcripts
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> write_transcripts(example_transcripts(2), p)
    >>> [t.turns == u.turns for t, u in zip(read_open(p, RowProblems(p)), example_transcripts(2))]
    [True, True]
    """
    path = Path(path)
    out = []
    for n, obj in read_jsonl(path, problems):
        tr = transcript_from_dict(obj, f"{path.stem}-{n}", f"line {n}", problems)
        if tr is not None:
            out.append(tr)
    return out


def write_transcripts(transcripts: list[Transcript], path: str | Path) -> None:
    """Write transcripts in the open format, one JSON line each (read back by ``load_transcripts``).

    Parameters
    ----------
    transcripts : list of Transcript
        From any source (Craigslist, the runner, an importer).
    path : str or Path
        The ``.jsonl`` file to write (its folder is created).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from negolens.agents import example_transcripts, load_transcripts
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> write_transcripts(example_transcripts(3), p)
    >>> [t.id for t in load_transcripts(p)]
    ['t0', 't1', 't2']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for tr in transcripts:
            fh.write(json.dumps(transcript_to_dict(tr), ensure_ascii=False) + "\n")
