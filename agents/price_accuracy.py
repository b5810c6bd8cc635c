"""Measure :func:`~negolens.agents.parsing.extract_price` on labelled Craigslist dialogues.

A turn counts when it has an intent label (turns with an empty intent carry no act annotation
at all and are skipped). Exact match: on turns with a labelled price, the parser returns that
price (±1e-6). False positive: on turns labelled with no price, the parser returns one.
The baseline is AgreeMate's parser: the first ``$<number>`` in the utterance.
"""

from __future__ import annotations

import re

from negolens.agents.parsing import extract_price

FIRST_DOLLAR = re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)")


def first_dollar(text: str) -> float | None:
    """AgreeMate's price parser, the baseline: the first ``$<number>`` in ``text``.

    Examples
    --------
    >>> first_dollar("$49 is too low, I can do $55")
    49.0
    """
    m = FIRST_DOLLAR.search(text)
    return float(m.group(1).replace(",", "")) if m else None


def labelled_turns(rows: list[dict]):
    """Yield ``(utterance, labelled price or None)`` for every turn with an intent label.

    ``rows`` are Craigslist Bargains dialogues (``utterance`` and ``dialogue_acts`` lists);
    a labelled price of -1 means the turn names no price.
    """
    for row in rows:
        acts = row["dialogue_acts"]
        for text, intent, price in zip(row["utterance"], acts["intent"], acts["price"]):
            if text and intent:
                yield text, (None if price == -1 else float(price))


def price_parser_accuracy(rows: list[dict], parser=extract_price) -> dict:
    """Exact-match and false-positive rates of ``parser`` and of the first-``$`` baseline.

    Returns
    -------
    dict
        ``n_priced`` / ``n_unpriced`` (turn counts), ``exact`` (share of priced turns where the
        parser returns the labelled price), ``false_positive_rate`` (share of unpriced turns
        where it returns any price), and the same two rates for :func:`first_dollar`.

    Examples
    --------
    >>> row = {"utterance": ["I can do $55", "Is it new?"],
    ...        "dialogue_acts": {"intent": ["offer", "inquiry"], "price": [55.0, -1]}}
    >>> r = price_parser_accuracy([row])
    >>> r["exact"], r["false_positive_rate"]
    (1.0, 0.0)
    """
    turns = list(labelled_turns(rows))
    priced = [(t, p) for t, p in turns if p is not None]
    unpriced = [t for t, p in turns if p is None]

    def exact(fn):
        return sum(1 for t, p in priced if (g := fn(t)) is not None and abs(g - p) < 1e-6) / len(priced)

    return {
        "n_priced": len(priced),
        "n_unpriced": len(unpriced),
        "exact": exact(parser),
        "false_positive_rate": sum(parser(t) is not None for t in unpriced) / len(unpriced),
        "baseline_first_dollar_exact": exact(first_dollar),
        "baseline_first_dollar_false_positive_rate": sum(first_dollar(t) is not None for t in unpriced) / len(unpriced),
    }
