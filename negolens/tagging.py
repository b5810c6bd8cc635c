"""Token tagging: which tokens are prices, negotiation verbs, role markers, and which turn each is in.

Everything is found on characters first (:mod:`negolens.prices`, :mod:`negolens.lexicon`) and
then mapped to tokens through the tokenizer's offset mapping, so it works for any fast
tokenizer — including ones that split ``$1,250`` into ``' $' '1' ',' '2' '5' '0'``. A token
belongs to a span when their character ranges overlap.

Role markers are (a) role words in the text ("buyer", "seller") and (b) the role name in each
chat-template header (``user``/``assistant``/``model``/``system``). Turn boundaries are the
template scaffolding between turn contents (``header_ranges``) and each turn's content range.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Bool
from torch import Tensor

from negolens.chat import RenderedChat, tokens_overlapping
from negolens.lexicon import CHAT_ROLE_RE, ROLE_WORD_RE, VERB_FORMS, VERB_RE
from negolens.prices import find_prices

KINDS = ("price", "verb", "role")


@dataclass(frozen=True)
class TaggedSpan:
    """A tagged piece of text and the tokens it covers."""

    kind: str  # one of KINDS
    start: int
    end: int
    text: str
    tokens: tuple[int, ...]
    turn: int = -1  # index of the chat turn (-1: template scaffolding or plain text)
    value: float | None = None  # the amount, for prices
    lemma: str | None = None  # the verb lemma, or the role word / chat role


@dataclass
class TokenTags:
    """Tags of one token sequence."""

    n_tokens: int
    spans: list[TaggedSpan]
    token_turn: list[int] = field(default_factory=list)
    turn_ranges: list[tuple[int, int]] = field(default_factory=list)
    header_ranges: list[tuple[int, int]] = field(default_factory=list)

    def of(self, kind: str) -> list[TaggedSpan]:
        """The spans of ``kind`` (``"price"``, ``"verb"`` or ``"role"``), in text order."""
        _check_kind(kind)
        return [s for s in self.spans if s.kind == kind]

    def indices(self, kind: str) -> list[int]:
        """Sorted token indices covered by spans of ``kind``."""
        return sorted({t for s in self.of(kind) for t in s.tokens})

    def mask(self, kind: str) -> Bool[Tensor, "pos"]:
        """Boolean ``[n_tokens]`` mask, True at tokens covered by spans of ``kind``."""
        out = torch.zeros(self.n_tokens, dtype=torch.bool)
        out[self.indices(kind)] = True
        return out


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown tag kind {kind!r}; use one of {KINDS}")


def tag_text(
    text: str, offsets: list[tuple[int, int]], regions: list[tuple[int, int]] | None = None
) -> list[TaggedSpan]:
    """Tag prices, verbs and role words in ``text``.

    With ``regions`` (e.g. chat turn spans) only those character ranges are tagged and each
    span records the index of its region as ``turn``; without, the whole text is one region
    and ``turn`` is -1.

    Parameters
    ----------
    text
        The text the tokens were cut from.
    offsets
        Per token, its ``[start, end)`` character span in ``text``.
    regions
        Character ranges to tag (default: all of ``text``).

    Examples
    --------
    >>> text = "I offer $250"
    >>> offsets = [(0, 1), (1, 7), (7, 9), (9, 10), (10, 11), (11, 12)]   # I|_offer|_$|2|5|0
    >>> [(s.kind, s.text, s.tokens, s.value) for s in tag_text(text, offsets)]
    [('verb', 'offer', (1,), None), ('price', '$250', (2, 3, 4, 5), 250.0)]
    """
    if regions is None:
        return [TaggedSpan(**{**s.__dict__, "turn": -1}) for s in tag_text(text, offsets, [(0, len(text))])]
    spans: list[TaggedSpan] = []
    for turn, (lo, hi) in enumerate(regions):
        chunk = text[lo:hi]
        for p in find_prices(chunk):
            spans.append(_span(offsets, "price", lo + p.start, lo + p.end, p.text, turn, value=p.value))
        for m in VERB_RE.finditer(chunk):
            lemma = VERB_FORMS[m.group(0).lower()]
            spans.append(_span(offsets, "verb", lo + m.start(), lo + m.end(), m.group(0), turn, lemma=lemma))
        for m in ROLE_WORD_RE.finditer(chunk):
            spans.append(_span(offsets, "role", lo + m.start(), lo + m.end(), m.group(0), turn, lemma=m.group(0).lower()))
    return sorted(spans, key=lambda s: (s.start, s.kind))


def tag_chat(chat: RenderedChat) -> TokenTags:
    """Tag a rendered chat: content tags per turn, plus the role name in each turn header.

    Parameters
    ----------
    chat
        A conversation rendered by :func:`negolens.chat.render_chat`.

    Returns
    -------
    TokenTags
        The tagged spans (each with its token indices and turn), per-token turn index, each
        turn's token range and the token range of the template header before each turn.

    Examples
    --------
    >>> from negolens.chat import Turn, render_chat
    >>> from negolens.testing import tiny_tokenizer
    >>> tok = tiny_tokenizer()
    >>> chat = render_chat(tok, [Turn("system", "You are the buyer."), Turn("user", "I can sell it for $320.")])
    >>> tags = tag_chat(chat)
    >>> [(s.kind, s.text, s.turn) for s in tags.spans]
    [('role', 'system', 0), ('role', 'buyer', 0), ('role', 'user', 1), ('verb', 'sell', 1), ('price', '$320', 1)]
    >>> [tok.decode([chat.input_ids[i]]) for i in tags.indices("price")]
    [' $', '3', '2', '0']
    """
    spans = tag_text(chat.text, chat.offsets, chat.turn_spans)
    turn_ranges = [chat.turn_token_range(i) for i in range(len(chat.turn_spans))]
    headers, prev_char, prev_tok = [], 0, 0
    for i, (start, end) in enumerate(chat.turn_spans):
        headers.append((prev_tok, turn_ranges[i][0]))
        roles = list(CHAT_ROLE_RE.finditer(chat.text, prev_char, start))
        if roles:  # the last role name before the content is the header's
            m = roles[-1]
            spans.append(_span(chat.offsets, "role", m.start(), m.end(), m.group(0), i, lemma=m.group(0).lower()))
        prev_char, prev_tok = end, turn_ranges[i][1]
    return TokenTags(
        n_tokens=len(chat.input_ids),
        spans=sorted(spans, key=lambda s: (s.start, s.kind)),
        token_turn=chat.token_turns(),
        turn_ranges=turn_ranges,
        header_ranges=headers,
    )


def _span(offsets, kind, start, end, text, turn, value=None, lemma=None) -> TaggedSpan:
    return TaggedSpan(kind, start, end, text, tuple(tokens_overlapping(offsets, start, end)), turn, value, lemma)
