"""Importers for other tools' transcripts: AgreeMate result CSVs and plain two-column chat logs.

Both return :class:`~negolens.agents.Transcript` objects (what the metrics, the probes and the
analysis read) and report unreadable rows through a
:class:`~negolens.agents.formats.RowProblems` (an error naming file, row and field with
``strict``, else skipped, counted and reported).

AgreeMate (Chatterjee et al. 2024) writes one CSV per pairing (``results/*.csv``), one row per
dialogue: ``scenario_id, title, description, category, listing_price, buyer_target,
seller_target, outcome`` (``Accepted`` / ``Rejected``), ``accepted_price``, ``transcript``
(``\\tBuyer: …`` / ``\\tSeller: …`` lines), ``prices`` and ``actions`` (Python list literals, one
entry per turn, −1 where a turn names no price), ``transcript_display`` and its own metrics.
Those metrics are kept in ``meta["stored_metrics"]``; the file name (e.g.
``baseline-COT-70B-buyer+baseline-8B-seller-fair.csv``) gives each side's model, CoT and
personality. AgreeMate has no seller cost or buyer budget: the budget is taken to be the
buyer's target (its convention) and both are listed in ``Transcript.filled``.

A chat log is ``speaker,text`` rows (CSV with or without that header, or JSON lines with
``speaker`` or ``role`` and ``text``), speakers ``buyer`` / ``seller`` (any case); an optional
``dialogue`` column/key splits a file into dialogues (otherwise the file is one dialogue). Each
turn's price is read from its text by :func:`~negolens.agents.parsing.extract_price`; the
outcome is unknown.
"""

from __future__ import annotations

import ast
import csv
import math
import re
from pathlib import Path

from negolens.agents.formats import RowProblems, TranscriptFormatError, build_scenario, read_jsonl
from negolens.agents.parsing import extract_price
from negolens.agents.transcripts import Transcript, Utterance

__all__ = ["read_agreemate", "read_chat", "agreemate_pairing", "AGREEMATE_TEXT_COLUMNS"]

AGREEMATE_TEXT_COLUMNS = ("", "Unnamed: 0", "scenario_id", "title", "description", "category", "listing_price",
                          "buyer_target", "seller_target", "outcome", "accepted_price", "transcript", "prices",
                          "actions", "transcript_display")
_REQUIRED = ("transcript", "listing_price", "outcome")
_SIDE = r"(?P<{r}>[A-Za-z]+)-(?:(?P<{r}_cot>COT)-)?(?P<{r}_size>[0-9.]+B)-{r}(?:-(?P<{r}_pers>[a-z]+))?"
_PAIRING = re.compile("^" + _SIDE.format(r="buyer") + r"\+" + _SIDE.format(r="seller") + r"(?:_[A-Za-z0-9]+)?$")
_TURN = re.compile(r"^\s*(Buyer|Seller)\s*:\s?(.*)$", re.IGNORECASE)


def agreemate_pairing(name: str) -> dict:
    """Each side's model, CoT and personality from an AgreeMate result file name (``{}`` if it does not match).

    Examples
    --------
    >>> m = agreemate_pairing("baseline-COT-70B-buyer+baseline-8B-seller-fair.csv")
    >>> m["buyer_model"], m["buyer_cot"], m["seller_model"], m["seller_personality"]
    ('baseline-70B', True, 'baseline-8B', 'fair')
    >>> agreemate_pairing("my-results.csv")
    {}
    """
    m = _PAIRING.match(Path(name).stem)
    if not m:
        return {}
    out = {}
    for r in ("buyer", "seller"):
        out[f"{r}_model"] = f"{m[r]}-{m[f'{r}_size']}"
        out[f"{r}_cot"] = m[f"{r}_cot"] is not None
        out[f"{r}_personality"] = m[f"{r}_pers"] or "default"
    return out


def _split_turns(text: str) -> list[tuple[str, str]]:
    """``(role, text)`` per ``Buyer:`` / ``Seller:`` line; other lines continue the previous turn."""
    turns: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        m = _TURN.match(line)
        if m:
            turns.append((m[1].lower(), m[2].strip()))
        elif line.strip() and turns:
            turns[-1] = (turns[-1][0], f"{turns[-1][1]}\n{line.strip()}")
    return turns


def _literal_list(value: str, where: str, field: str, n: int, problems: RowProblems) -> list | None:
    """A Python list literal with ``n`` entries, or ``None`` (and a problem)."""
    try:
        out = ast.literal_eval(value) if isinstance(value, str) and value.strip() else None
    except (ValueError, SyntaxError):
        problems.add(where, field, f"not a Python list literal: {str(value)[:40]!r}")
        return None
    if not isinstance(out, list):
        problems.add(where, field, f"expected a list, got {str(value)[:40]!r}")
        return None
    if len(out) != n:
        problems.add(where, field, f"{len(out)} entries for {n} turns in 'transcript'")
        return None
    return out


def _float(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _agreemate_row(row: dict, n: int, where: str, path: Path, pairing: dict, problems: RowProblems) -> Transcript | None:
    pairs = _split_turns(row.get("transcript") or "")
    if not pairs:
        problems.add(where, "transcript", "no '\\tBuyer: …' / '\\tSeller: …' lines")
        return None
    prices = _literal_list(row.get("prices"), where, "prices", len(pairs), problems) if row.get("prices") else [None] * len(pairs)
    if prices is None:
        return None
    acts = _literal_list(row.get("actions"), where, "actions", len(pairs), problems) if row.get("actions") else [None] * len(pairs)
    if acts is None:
        return None
    turns = []
    for (role, text), price, act in zip(pairs, prices, acts):
        p = _float(price)
        turns.append(Utterance(role, text, None if act in (None, "") else str(act), p if p is not None and p > 0 else None))
    fields = {k: (row.get(k) or "") for k in ("title", "description", "category")}
    for key, name in (("listing_price", "list_price"), ("buyer_target", "buyer_target"), ("seller_target", "seller_target")):
        raw = row.get(key)
        v = _float(raw)
        if raw not in (None, "") and (v is None or v <= 0):
            problems.add(where, key, f"expected a positive number, got {raw!r}")
            return None
        fields[name] = v
    if fields["list_price"] is None:
        problems.add(where, "listing_price", "missing")
        return None
    if fields["buyer_target"] is not None:
        fields["buyer_budget"] = fields["buyer_target"]  # AgreeMate's convention; still listed as filled
    outcome = (row.get("outcome") or "").strip().lower()
    if outcome not in ("accepted", "rejected"):
        problems.add(where, "outcome", f"expected Accepted or Rejected, got {row.get('outcome')!r}")
        return None
    deal = outcome == "accepted"
    price = _float(row.get("accepted_price"))
    deal_price = price if deal and price is not None and price > 0 else None
    tid = f"{path.stem}-{n}"
    scenario, filled = build_scenario(fields, turns, str(row.get("scenario_id") or tid), "agreemate")
    filled = tuple(sorted(set(filled) | {"buyer_budget"}))
    stored = {k: _float(v) for k, v in row.items() if k not in AGREEMATE_TEXT_COLUMNS and k is not None}
    meta = {"source": "agreemate", "file": path.name, **pairing,
            "stored_metrics": {k: v for k, v in stored.items() if v is not None}}
    return Transcript(tid, scenario, turns, deal, deal_price, meta, filled)


def read_agreemate(path: str | Path, problems: RowProblems) -> list[Transcript]:
    r"""Dialogues of one AgreeMate result CSV (see the module docstring).

    Parameters
    ----------
    path : str or Path
        A ``results/*.csv`` file as AgreeMate's runs write it.
    problems : RowProblems
        Where unreadable rows go (``strict`` raises on the first).

    Returns
    -------
    list of Transcript
        Ids ``FILESTEM-ROW``; ``meta`` holds the pairing (from the file name) and
        ``stored_metrics`` (AgreeMate's own values for the row).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from negolens.agents.formats import RowProblems
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "baseline-8B-buyer+baseline-3B-seller.csv"
    >>> import csv
    >>> with open(p, "w", newline="") as fh:
    ...     csv.writer(fh).writerows([
    ...         ["", "scenario_id", "title", "listing_price", "buyer_target", "seller_target", "outcome",
    ...          "accepted_price", "transcript", "prices", "actions", "fairness"],
    ...         [0, "s1", "Lamp", 40.0, 30.0, 40.0, "Accepted", 35.0,
    ...          "\tBuyer: $30?\n\tSeller: $35, and it is yours.\n\tBuyer: Deal.\n",
    ...          "[30.0, 35.0, 35.0]", "['init-price', 'counter-price', 'accept']", 0.5]])
    >>> tr = read_agreemate(p, RowProblems(p))[0]
    >>> tr.deal_price, [u.intent for u in tr.turns], tr.meta["buyer_model"], tr.meta["stored_metrics"]
    (35.0, ['init-price', 'counter-price', 'accept'], 'baseline-8B', {'fairness': 0.5})
    """
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise TranscriptFormatError(f"{path}: not an AgreeMate results CSV: no column(s) {missing} "
                                        f"(header: {header[:10]})")
        pairing = agreemate_pairing(path.name)
        out, n, start = [], 0, reader.line_num + 1
        for raw in reader:
            where = f"row {n + 1} (line {start})"
            row = {(k or "").strip(): v for k, v in raw.items() if k is not None}
            if None in raw or None in raw.values():
                problems.add(where, "(csv)", f"{'more' if None in raw else 'fewer'} fields than the header's {len(header)}")
            else:
                tr = _agreemate_row(row, n, where, path, pairing, problems)
                if tr is not None:
                    out.append(tr)
            n, start = n + 1, reader.line_num + 1
    return out


def _chat_rows(path: Path, problems: RowProblems) -> list[tuple[str, dict]]:
    """``(where, {speaker, text, dialogue?})`` rows of a chat log in CSV or JSON lines."""
    if path.suffix.lower() in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            rows = list(reader)
        if not rows:
            return []
        head = [h.strip().lower() for h in rows[0]]
        has_header = "text" in head and bool({"speaker", "role"} & set(head))
        cols = head if has_header else ["speaker", "text"] + [f"col{i}" for i in range(2, len(rows[0]))]
        out = []
        for i, r in enumerate(rows[1:] if has_header else rows, 2 if has_header else 1):
            if not any(c.strip() for c in r):
                continue
            if len(r) != len(cols):
                problems.add(f"row {i}", "(csv)", f"{len(r)} fields, expected {len(cols)} ({', '.join(cols)})")
                continue
            d = dict(zip(cols, r))
            d.setdefault("speaker", d.get("role", ""))
            out.append((f"row {i}", d))
        return out
    out = []
    for n, obj in read_jsonl(path, problems):
        obj = dict(obj)
        obj.setdefault("speaker", obj.get("role", ""))
        out.append((f"line {n}", obj))
    return out


def read_chat(path: str | Path, problems: RowProblems) -> list[Transcript]:
    """Dialogues of a two-column chat log (``speaker,text``; see the module docstring).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from negolens.agents.formats import RowProblems
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("speaker,text\\nBuyer,Would you take $80?\\nSeller,\\"$90, final.\\"\\n")
    >>> [(u.role, u.price) for u in read_chat(p, RowProblems(p))[0].turns]
    [('buyer', 80.0), ('seller', 90.0)]
    """
    path = Path(path)
    dialogues: dict[str, list[Utterance]] = {}
    for where, row in _chat_rows(path, problems):
        speaker = str(row.get("speaker") or "").strip().lower()
        if speaker not in ("buyer", "seller"):
            problems.add(where, "speaker", f"expected buyer or seller, got {row.get('speaker')!r}")
            continue
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.add(where, "text", f"expected a non-empty string, got {text!r}")
            continue
        key = str(row.get("dialogue") or row.get("dialogue_id") or "0")
        dialogues.setdefault(key, []).append(Utterance(speaker, text.strip(), None, extract_price(text)))
    out = []
    for key, turns in dialogues.items():
        tid = path.name if len(dialogues) == 1 else f"{path.name}:{key}"
        scenario, filled = build_scenario({}, turns, tid, "chat")
        out.append(Transcript(tid, scenario, turns, None, None, {"source": "chat", "file": path.name}, filled))
    return out
