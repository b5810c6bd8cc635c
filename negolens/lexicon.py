"""The negotiation lexicon: verbs (with inflections) and role words.

Tagging is lexical, on whole words, case-insensitive: "offer" is tagged as a verb form whether
the sentence uses it as a verb or a noun ("my offer"). The attention analysis compares these
tokens with matched control tokens, so the lexicon only has to be explicit and stable, not
part-of-speech perfect. Each lemma lists its forms; ``VERB_FORMS`` maps form → lemma.
"""

from __future__ import annotations

import re

NEGOTIATION_VERBS: dict[str, tuple[str, ...]] = {
    "offer": ("offer", "offers", "offered", "offering"),
    "sell": ("sell", "sells", "sold", "selling"),
    "buy": ("buy", "buys", "bought", "buying"),
    "take": ("take", "takes", "took", "taken", "taking"),
    "give": ("give", "gives", "gave", "given", "giving"),
    "pay": ("pay", "pays", "paid", "paying"),
    "accept": ("accept", "accepts", "accepted", "accepting"),
    "deal": ("deal", "deals", "dealt", "dealing"),
    "counter": ("counter", "counters", "countered", "countering", "counteroffer", "counteroffers"),
    "lower": ("lower", "lowers", "lowered", "lowering"),
    "discount": ("discount", "discounts", "discounted", "discounting"),
    "reduce": ("reduce", "reduces", "reduced", "reducing"),
    "drop": ("drop", "drops", "dropped", "dropping"),
    "negotiate": ("negotiate", "negotiates", "negotiated", "negotiating"),
    "bargain": ("bargain", "bargains", "bargained", "bargaining"),
    "haggle": ("haggle", "haggles", "haggled", "haggling"),
    "bid": ("bid", "bids", "bidding"),
    "purchase": ("purchase", "purchases", "purchased", "purchasing"),
    "afford": ("afford", "affords", "afforded", "affording"),
    "spend": ("spend", "spends", "spent", "spending"),
    "charge": ("charge", "charges", "charged", "charging"),
    "settle": ("settle", "settles", "settled", "settling"),
    "meet": ("meet", "meets", "met", "meeting"),
    "split": ("split", "splits", "splitting"),
    "reject": ("reject", "rejects", "rejected", "rejecting"),
    "decline": ("decline", "declines", "declined", "declining"),
    "agree": ("agree", "agrees", "agreed", "agreeing"),
    "ask": ("ask", "asks", "asked", "asking"),
}

VERB_FORMS: dict[str, str] = {
    form: lemma for lemma, forms in NEGOTIATION_VERBS.items() for form in forms
}

ROLE_WORDS: tuple[str, ...] = ("buyer", "buyers", "seller", "sellers", "vendor", "customer")

CHAT_ROLE_NAMES: tuple[str, ...] = ("system", "user", "assistant", "model")


def _word_regex(words) -> re.Pattern:
    alternatives = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


VERB_RE = _word_regex(VERB_FORMS)
ROLE_WORD_RE = _word_regex(ROLE_WORDS)
CHAT_ROLE_RE = _word_regex(CHAT_ROLE_NAMES)
