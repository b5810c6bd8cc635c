"""Which price is the speaker proposing? ``extract_price(utterance) -> float | None``.

An utterance can mention several prices: "$49 is too low, I can do $55" proposes 55, not 49.
The rules, in order:

1. Find every price mention (:func:`negolens.prices.find_prices`: ``$``, ``k``, bucks/dollars,
   bare numbers in price position).
2. Drop mentions that are *quoted back* — the counterpart's or a rejected number: followed by
   "is too low/high/much", "would be too …", "is not enough", or preceded by "instead of",
   "down from", "originally", "retail", "new for", "paid", "you are asking", "can't afford".
   Bounds are proposals, not quotes: "no less than $8500" proposes 8500.
3. Of the rest, take the last one that follows a proposal cue ("how about", "would you take",
   "I can do", "offer", "meet … at", "pay", "give you", "asking", "accept", "deal at" …);
   if none follows a cue, the last remaining mention; if every mention was quoted back, the
   first mention when the utterance accepts or agrees (e.g. "$200 works"), else ``None``.

:func:`negolens.agents.price_accuracy.price_parser_accuracy` measures the parser on labelled
Craigslist dialogues (exact match on turns with a labelled price, false positives on turns
without).
"""

from __future__ import annotations

import re

from negolens.prices import PriceMention, find_prices

_QUOTED_AFTER = re.compile(
    r"^\s*(?:dollars\s*)?(?:is|was|seems|sounds|would be|will be|'s|\?*\s*that's|\?*\s*thats|"
    r"is way|is a bit|is just|is still|is really|is kind of|is pretty)?\s*(?:way\s+|a bit\s+|a little\s+|too\s+|still\s+|really\s+|kinda\s+|pretty\s+)*"
    r"(?:too\s+(?:low|high|much|steep|little)|low|lowball|high|steep|not enough|not going to work|"
    r"a bit much|ridiculous|insulting|out of my)",
    re.IGNORECASE,
)
_QUOTED_BY_YOU = re.compile(r"^\s*(?:that\s+)?you(?:'re| are)?\s+(?:asking|offering|want|listed)", re.IGNORECASE)
_QUOTED_BEFORE = re.compile(
    r"(?:instead of|down from|originally|retail(?:s)?(?: for| at)?|new for|paid|"
    r"bought it for|it was|worth|valued at|listed (?:at|for)|list(?:ing)? price (?:of|is)|you offered|"
    r"your offer of|you said|you want|you(?:'re| are) (?:asking|offering)(?: for)?|your price of|"
    r"can't afford|cannot afford|kbb says|kbb value is)\s*\$?\s*$",
    re.IGNORECASE,
)
_CUE_BEFORE = re.compile(
    r"(?:how about|what about|would you (?:take|do|accept|consider|go)|will you (?:take|do|accept)|"
    r"could you do|can you do|can do|could do|i'll do|ill do|i will do|do|offer(?:ing)?|"
    r"meet (?:you |me )?(?:in the middle )?(?:at)?|pay|give you|asking|accept|deal at|deal for|"
    r"settle (?:on|for|at)|go (?:to|for|as low as|down to)|take|sell (?:it )?(?:to you )?for|"
    r"let (?:it )?go for|at|for|is|be)\s*(?:the\s+)?\$?\s*$",
    re.IGNORECASE,
)
_AGREES = re.compile(r"\b(?:deal|accept|agree|works|ok|okay|sounds good|fine|yes|sure)\b", re.IGNORECASE)


def _quoted(text: str, m: PriceMention) -> bool:
    before = text[max(0, m.start - 40) : m.start]
    after = text[m.end : m.end + 40]
    return bool(_QUOTED_AFTER.match(after) or _QUOTED_BY_YOU.match(after) or _QUOTED_BEFORE.search(before))


def extract_price(utterance: str) -> float | None:
    """The price the speaker proposes in ``utterance``, or ``None`` if it proposes none.

    Parameters
    ----------
    utterance
        One message of free text.

    Returns
    -------
    float or None
        The proposed price in dollars (``"1.2k"`` → 1200.0).

    Examples
    --------
    >>> extract_price("$49 is too low, I can do $55")
    55.0
    >>> extract_price("I bought it new for $350, but I'll let it go at $200")
    200.0
    >>> extract_price("It has 42,000 miles and is a 2009 Toyota.") is None
    True
    >>> extract_price("$200 works for me")   # only a quoted price, but the speaker agrees
    200.0
    """
    if not utterance:
        return None
    mentions = find_prices(utterance)
    if not mentions:
        return None
    kept = [m for m in mentions if not _quoted(utterance, m)]
    if not kept:
        return mentions[0].value if _AGREES.search(utterance) and len(mentions) == 1 else None
    cued = [m for m in kept if _CUE_BEFORE.search(utterance[max(0, m.start - 40) : m.start])]
    return (cued or kept)[-1].value


_ACCEPT = re.compile(r"\b(?:deal|accept(?:ed)?|agreed?|sounds good|works for me|i'?ll take it|it'?s yours|sold)\b", re.I)
_GREET = re.compile(r"^\s*(?:hi|hello|hey|good (?:morning|afternoon|evening))\b", re.I)


def infer_act(text: str, facing: float | None, first: bool = False):
    """The protocol act a free-text turn most plausibly makes: ``(Act, price or None)``.

    A proposed price → ``offer`` (``counter`` when the other side has a price on the table);
    agreement words while facing a price → ``accept`` at that price; a question → ``inquire``;
    an opening greeting → ``greet``; anything else → ``inform``. Used to put human turns
    (Craigslist) into the protocol's format and to read a person's chat lines.

    Examples
    --------
    >>> infer_act("Would you take $120?", facing=None)
    (<Act.OFFER: 'offer'>, 120.0)
    >>> infer_act("Deal, sounds good.", facing=150.0)
    (<Act.ACCEPT: 'accept'>, 150.0)
    >>> infer_act("Is it still available?", facing=None)
    (<Act.INQUIRE: 'inquire'>, None)
    """
    from negolens.agents.protocol import Act

    price = extract_price(text)
    if price is not None and not (facing is not None and _ACCEPT.search(text) and abs(price - facing) < 1e-6):
        return (Act.COUNTER if facing is not None else Act.OFFER), price
    if facing is not None and _ACCEPT.search(text):
        return Act.ACCEPT, facing
    if "?" in text:
        return Act.INQUIRE, None
    if first and _GREET.search(text):
        return Act.GREET, None
    return Act.INFORM, None
