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
    m = FIRST_DOLLAR.search(text)
    return float(m.group(1).replace(",", "")) if m else None


def labelled_turns(rows: list[dict]):
    for row in rows:
        acts = row["dialogue_acts"]
        for text, intent, price in zip(row["utterance"], acts["intent"], acts["price"]):
            if text and intent:
                yield text, (None if price == -1 else float(price))


def price_parser_accuracy(rows: list[dict], parser=extract_price) -> dict:
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
