"""The negotiation lexicon: verbs (with inflections) and role words.

Tagging is lexical, on whole words, case-insensitive: "offer" is tagged as a verb form whether
the sentence uses it as a verb or a noun ("my offer"). The attention analysis compares these
tokens with matched control tokens, so the lexicon only has to be explicit and stable, not
part-of-speech perfect. ``NEGOTIATION_VERBS`` maps each lemma to its forms (regular ones are
derived by :func:`inflect`, irregular ones listed); ``VERB_FORMS`` maps form → lemma.
"""

from __future__ import annotations

import re


def inflect(lemma: str, past: tuple[str, ...] | None = None, ing: str | None = None) -> tuple[str, ...]:
    """A verb's forms: lemma, third person, past form(s), ``-ing`` form.

    Regular verbs need only the lemma: the past adds ``-ed`` (``-d`` after an ``e``) and the
    ``-ing`` form drops a final ``e`` (not ``ee``). Irregular verbs pass ``past`` (the distinct
    past forms; ``()`` when the past is the lemma itself) and/or ``ing``.

    Examples
    --------
    >>> inflect("offer")
    ('offer', 'offers', 'offered', 'offering')
    >>> inflect("reduce")
    ('reduce', 'reduces', 'reduced', 'reducing')
    >>> inflect("take", past=("took", "taken"))
    ('take', 'takes', 'took', 'taken', 'taking')
    """
    e_final = lemma.endswith("e") and not lemma.endswith("ee")
    if past is None:
        past = (lemma + ("d" if lemma.endswith("e") else "ed"),)
    if ing is None:
        ing = (lemma[:-1] if e_final else lemma) + "ing"
    return (lemma, lemma + "s", *past, ing)


# Irregular forms only; every other verb in VERB_LEMMAS is inflected regularly.
_IRREGULAR: dict[str, dict] = {
    "sell": {"past": ("sold",)},
    "buy": {"past": ("bought",)},
    "take": {"past": ("took", "taken")},
    "give": {"past": ("gave", "given")},
    "pay": {"past": ("paid",)},
    "deal": {"past": ("dealt",)},
    "drop": {"past": ("dropped",), "ing": "dropping"},
    "bid": {"past": (), "ing": "bidding"},
    "spend": {"past": ("spent",)},
    "meet": {"past": ("met",)},
    "split": {"past": (), "ing": "splitting"},
}

VERB_LEMMAS: tuple[str, ...] = (
    "offer", "sell", "buy", "take", "give", "pay", "accept", "deal", "counter", "lower", "discount",
    "reduce", "drop", "negotiate", "bargain", "haggle", "bid", "purchase", "afford", "spend",
    "charge", "settle", "meet", "split", "reject", "decline", "agree", "ask",
)

# Words tagged as a lemma's forms although they are not inflections of it.
_RELATED = {"counter": ("counteroffer", "counteroffers")}

NEGOTIATION_VERBS: dict[str, tuple[str, ...]] = {
    lemma: inflect(lemma, **_IRREGULAR.get(lemma, {})) + _RELATED.get(lemma, ()) for lemma in VERB_LEMMAS
}
"""Each lemma and its tagged forms."""

VERB_FORMS: dict[str, str] = {
    form: lemma for lemma, forms in NEGOTIATION_VERBS.items() for form in forms
}

ROLE_WORDS: tuple[str, ...] = ("buyer", "buyers", "seller", "sellers", "vendor", "customer")

CHAT_ROLE_NAMES: tuple[str, ...] = ("system", "user", "assistant", "model")


def _word_regex(words) -> re.Pattern:
    """Case-insensitive regex for any of ``words`` as a whole word (longest alternative first)."""
    alternatives = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


VERB_RE = _word_regex(VERB_FORMS)
ROLE_WORD_RE = _word_regex(ROLE_WORDS)
CHAT_ROLE_RE = _word_regex(CHAT_ROLE_NAMES)
