"""Find price mentions in text: ``$1,250``, ``1.2k``, ``120 bucks``, ``$7.50``, ``2000``.

A mention is a number that reads as money. Marked forms (a ``$``, a ``k`` suffix, or
``bucks``/``dollars``/``usd``) always count. A bare number counts when it has at least two
digits (or a decimal point) and nothing marks it as something else: a unit that is not money
(``miles``, ``GB``, ``%``, ``years`` …), a year (1950–2035 after ``model``/``in``/``a``/``my``
… or before a capitalised name: ``a 2009 Toyota``),
letters glued to it (``i7``, ``2nd``, ``RX580``), a time (``5:30``), a ``#`` or a ``-``
joining it to a word. These rules are documented here and tested, not learned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
PRICE_RE = re.compile(
    rf"(?P<cur>\$\s?)?(?P<num>{_NUMBER})(?P<k>\s?[kK](?![A-Za-z]))?"
    r"(?P<unit>\s?(?:bucks?|dollars?|usd)\b)?",
    re.IGNORECASE,
)
# Units and words after a bare number that say it is not money.
NON_PRICE_UNITS = re.compile(
    r"\s*(?:%|percent|miles?|mi\b|km|kms|bed(?:room)?s?|br\b|bath(?:room)?s?|ba\b|sq|square|"
    r"ft|feet|foot|inch(?:es)?|in\.|\"|'|gb|tb|mb|ghz|mhz|mp|megapixels?|years?|yrs?|months?|"
    r"weeks?|days?|hours?|hrs?|minutes?|mins?|lbs?|pounds?|oz|people|persons?|x\b|mm|cm|"
    r"speeds?|cc|hp|mpg|watts?|w\b|v\b|volts?|am\b|pm\b|times|pieces?|pcs|items?|st\b|nd\b|"
    r"rd\b|th\b|:|/\d)",
    re.IGNORECASE,
)
YEAR_BEFORE = re.compile(
    r"\b(?:model|year|since|in|from|circa|built|made|a|an|the|my|your|his|her|our|this|that|its|it's|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*(?: of)?)\s*$",
    re.IGNORECASE,
)
YEAR_AFTER = re.compile(r"\s+(?:[A-Z][a-z]|[A-Z]{2,}|model\b|edition\b)")


@dataclass(frozen=True)
class PriceMention:
    """A price in text: character span ``[start, end)``, the matched text and its value."""

    start: int
    end: int
    text: str
    value: float
    marked: bool  # had $, k or a money word


def parse_number(num: str, k: bool = False) -> float:
    """The value of a matched number: commas dropped, times 1000 with a ``k`` suffix.

    Examples
    --------
    >>> parse_number("1,250"), parse_number("1.2", k=True)
    (1250.0, 1200.0)
    """
    value = float(num.replace(",", ""))
    return value * 1000.0 if k else value


def find_prices(text: str) -> list[PriceMention]:
    """All price mentions in ``text``, left to right.

    Returns
    -------
    list of PriceMention
        Each with its character span, text, value in dollars, and whether it was marked.

    Examples
    --------
    >>> [(m.text, m.value) for m in find_prices("I paid $1,250 but I'll take 1.2k, or 120 bucks")]
    [('$1,250', 1250.0), ('1.2k', 1200.0), ('120 bucks', 120.0)]
    >>> find_prices("A 2009 Toyota with 142,000 miles and an i7")
    []
    """
    found = []
    for m in PRICE_RE.finditer(text):
        start, end = m.span()
        before = text[max(0, start - 12) : start]
        marked = bool(m.group("cur") or m.group("k") or m.group("unit"))
        if _glued(text, start, end) and not m.group("cur"):
            continue
        if not marked and not _bare_is_price(m.group("num"), before, text[end:]):
            continue
        if m.group("k") and not m.group("cur") and NON_PRICE_UNITS.match(text[end:]):
            continue  # "100k miles"
        value = parse_number(m.group("num"), bool(m.group("k")))
        found.append(PriceMention(start, end, m.group(0), value, marked))
    return found


def _glued(text: str, start: int, end: int) -> bool:
    """True if letters, digits or joiners touch the match (``i7``, ``2nd``, ``#3``, ``a-10``)."""
    prev = text[start - 1] if start > 0 else " "
    nxt = text[end] if end < len(text) else " "
    if prev.isalnum() or prev in "#_@:/" or nxt.isalnum() or nxt in "_@":
        return True
    if prev == "-" and start >= 2 and text[start - 2].isalnum():
        return True
    if nxt == "-" and end + 1 < len(text) and text[end + 1].isdigit():
        return True  # ranges and phone numbers: "10-12", "555-555-5555"
    return False


def _bare_is_price(num: str, before: str, after: str) -> bool:
    digits = num.replace(",", "").split(".")[0]
    if len(digits) < 2 and "." not in num:
        return False
    if NON_PRICE_UNITS.match(after):
        return False
    if len(digits) == 4 and 1950 <= int(digits) <= 2035 and "." not in num and "," not in num:
        if YEAR_BEFORE.search(before) or YEAR_AFTER.match(after):
            return False
    return True
