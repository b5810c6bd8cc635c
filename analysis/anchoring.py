"""Anchoring: does the buyer's next offer track the seller's opening price?

Paired dialogues, identical except the counterpart's opening price (× each of ``factors``):

* :func:`anchoring_pairs` — from each transcript whose counterpart names a price before the
  viewer's next turn, one variant per factor with that opening price rewritten (in
  :attr:`Utterance.price` and every mention of it in the turn's text, found by
  :func:`negolens.prices.find_prices`), cut after the opening turn, and the viewer's decision
  point right after it (its reply ``reply`` then ``ACTION: offer $``). Transcripts whose price
  cannot be rewritten are skipped and counted by reason.
* :func:`anchoring_effect` — the greedy next offer (:func:`negolens.analysis.greedy_offer`, log
  offer / list) per variant; the anchoring coefficient is d log(offer) / d log(opening), a
  least-squares slope per dialogue over its variants, averaged over dialogues with a bootstrap
  CI (1: the offer moves in proportion to the opening; 0: it ignores it).
* :func:`~negolens.analysis.anchoring_study.anchoring_final` — whole negotiations against a rule seller whose opening (its target)
  is scaled by each factor; the same coefficient on the deal price, over scenarios that close in
  every arm (the rule seller's concessions start from its opening, so the whole path moves).

Where the effect is carried inside the model: :mod:`negolens.analysis.mediation`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from negolens.agents.transcripts import Utterance
from negolens.analysis.decisions import DecisionPoint, decision_points
from negolens.errors import NegolensError
from negolens.prices import PRICE_RE, find_prices
from negolens.stats import bootstrap_ci

__all__ = ["AnchorPair", "AnchorPairs", "AnchoringEffect", "anchoring_pairs", "anchoring_effect", "rewrite_price",
           "coefficient_table", "check_pairs", "slope"]


@dataclass
class AnchorPair:
    """One dialogue in several variants that differ only in the counterpart's opening price.

    Attributes
    ----------
    transcript
        The source transcript's id.
    factors
        The factor of each variant (ascending).
    openings
        The opening price of each variant, in dollars, as written.
    points
        The viewer's ``offer`` decision point after the opening, one per variant.
    list_price
        The scenario's list price (the same in every variant).
    """

    transcript: str
    factors: tuple[float, ...]
    openings: tuple[float, ...]
    points: tuple[DecisionPoint, ...]
    list_price: float

    @property
    def low(self) -> DecisionPoint:
        """The variant with the lowest opening (the one patched into)."""
        return self.points[0]

    @property
    def high(self) -> DecisionPoint:
        """The variant with the highest opening (the one patched from)."""
        return self.points[-1]


@dataclass
class AnchorPairs:
    """What :func:`anchoring_pairs` built: the pairs and, per reason, how many transcripts it skipped."""

    pairs: list[AnchorPair]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self):
        return iter(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]


def _format_like(number: str, k: bool, value: float) -> str:
    """``value`` written the way ``number`` was (commas, decimals, a ``k`` suffix)."""
    if k:
        value = value / 1000.0
        return f"{value:.2f}".rstrip("0").rstrip(".")
    decimals = len(number.split(".")[1]) if "." in number else 0
    return f"{value:,.{decimals}f}" if "," in number else f"{value:.{decimals}f}"


def rewrite_price(text: str, old: float, factor: float, rel_tol: float = 0.01) -> tuple[str, float] | None:
    """``text`` with every mention of the price ``old`` multiplied by ``factor``.

    The new price keeps the mention's style (``$``, thousands commas, decimals, ``k``) and is
    rounded as the original was written (whole dollars stay whole).

    Parameters
    ----------
    text
        The turn's text.
    old
        The price to rewrite (dollars); a mention within ``rel_tol`` of it counts.
    factor
        The multiplier.
    rel_tol
        Relative tolerance when matching mentions to ``old``.

    Returns
    -------
    (str, float) or None
        The new text and the new price as written; ``None`` when no mention of ``old`` is in
        the text, or the rewritten price would not read back as the new value.

    Examples
    --------
    >>> rewrite_price("I can let it go for $1,250.\\nACTION: counter $1,250", 1250, 0.8)
    ('I can let it go for $1,000.\\nACTION: counter $1,000', 1000.0)
    >>> rewrite_price("how about 1.2k?", 1200, 1.2), rewrite_price("no price here", 10, 1.2)
    (('how about 1.44k?', 1440.0), None)
    """
    mentions = [m for m in find_prices(text) if abs(m.value - old) <= rel_tol * max(abs(old), 1e-9)]
    if not mentions:
        return None
    out, new_value, end = [], None, 0
    for m in mentions:
        parts = PRICE_RE.fullmatch(m.text)
        if parts is None:
            return None
        num = parts.group("num")
        written = _format_like(num, bool(parts.group("k")), m.value * factor)
        new = m.text[: parts.start("num")] + written + m.text[parts.end("num") :]
        value = find_prices(new)
        if len(value) != 1 or value[0].value <= 0:
            return None
        new_value = value[0].value
        out += [text[end : m.start], new]
        end = m.end
    return "".join(out) + text[end:], float(new_value)


def _opening(tr, role: str) -> int | None:
    """Index of the counterpart's first turn with a labelled price (None if it never names one)."""
    for t, utt in enumerate(tr.turns):
        if utt.role != role and utt.price is not None:
            return t
    return None


def anchoring_pairs(model, transcripts, factors=(0.8, 1.2), role: str = "buyer", reply: str | None = "",
                    max_tokens: int = 512, limit: int | None = None) -> AnchorPairs:
    """Variants of each dialogue that differ only in the counterpart's opening price.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel` (its template renders the prompts).
    transcripts
        :class:`negolens.agents.Transcript` objects; the opening is the counterpart's first turn
        with a labelled price (:attr:`Utterance.price`). Turns before it stay as they are (a
        price the viewer named earlier stays in the context, the same in every variant).
    factors
        Opening price multipliers, at least two (sorted ascending; the first and last are the
        low and high anchors of :mod:`negolens.analysis.mediation`).
    role
        The viewer: ``buyer`` (facing the seller's opening) | ``seller``.
    reply
        The viewer's message before ``ACTION: offer $`` (default empty: the decision right after
        the opening). ``None`` keeps its real next turn from the transcript (skipped if it has none);
        a real reply that names its own price mostly makes the offer copy it.
    max_tokens
        Longest prompt kept (the dialogue is cut after the opening, so prompts are short).
    limit
        Stop after this many pairs.

    Returns
    -------
    AnchorPairs
        ``pairs`` and ``skipped`` (reason → count: ``no counterpart price``, ``price not in
        text``, ``no reply``, ``too long``).

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> pairs = anchoring_pairs(model, example_transcripts(3), factors=(0.8, 1.2))
    >>> len(pairs), pairs[0].openings, model.decode(pairs[0].low.ids).endswith("ACTION: offer $")
    (3, (252.0, 378.0), True)
    """
    factors = tuple(sorted(float(f) for f in factors))
    if len(factors) < 2 or len(set(factors)) < 2 or min(factors) <= 0:
        raise NegolensError(f"factors must be at least two different positive numbers (e.g. 0.8,1.2), not {factors!r}")
    if role not in ("buyer", "seller"):
        raise NegolensError(f"unknown role {role!r}; use buyer or seller")
    pairs, skipped = [], Counter()
    for tr in transcripts:
        t = _opening(tr, role)
        if t is None:
            skipped["no counterpart price"] += 1
            continue
        nxt = next((u for u in tr.turns[t + 1 :] if u.role == role), None)
        if reply is None and nxt is None:
            skipped["no reply"] += 1
            continue
        mine = Utterance(role, nxt.text if reply is None else reply)
        opening = tr.turns[t]
        variants, points, why = [], [], None
        for f in factors:
            new = rewrite_price(opening.text, opening.price, f)
            if new is None:
                why = "price not in text"
                break
            text, price = new
            turns = list(tr.turns[:t]) + [dataclasses.replace(opening, text=text, price=price), mine]
            found = decision_points(model, [dataclasses.replace(tr, turns=turns)], role, "offer", max_tokens)
            found = [p for p in found if p.turn == len(turns) - 1]
            if not found:
                why = "too long"
                break
            variants.append(price)
            points.append(found[0])
        if why:
            skipped[why] += 1
            continue
        pairs.append(AnchorPair(tr.id, factors, tuple(variants), tuple(points), tr.scenario.list_price))
        if limit and len(pairs) >= limit:
            break
    return AnchorPairs(pairs, dict(skipped))


def check_pairs(pairs) -> None:
    """Raise a clear :class:`NegolensError` when there are no pairs to measure."""
    if not len(pairs):
        why = "; ".join(f"{k}: {v}" for k, v in getattr(pairs, "skipped", {}).items())
        fix = ("raise max_tokens (--max-tokens)" if set(getattr(pairs, "skipped", {})) == {"too long"} else
               "pass more transcripts (e.g. craigslist-dev) or dialogues where the other side names a price")
        raise NegolensError("no anchoring pairs: no transcript gave a counterpart opening price to rewrite"
                            + (f" ({why})" if why else "") + f" — {fix}")


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x`` (NaN when ``x`` has no spread).

    >>> round(slope(np.log([0.8, 1.2]), np.log([80.0, 120.0])), 6)
    1.0
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = x - x.mean()
    return float((dx * (y - y.mean())).sum() / (dx**2).sum()) if (dx**2).sum() > 0 else float("nan")


@dataclass
class AnchoringEffect:
    """The behavioural anchoring coefficient and the offers behind it.

    Attributes
    ----------
    offers
        One row per (dialogue, variant): ``transcript, factor, opening, log_opening`` (log opening
        / list), ``offer`` (log greedy offer / list).
    per_dialogue
        ``transcript, coefficient`` (NaN where an offer was not written).
    summary
        One row: ``coefficient`` (mean over dialogues), ``ci_low, ci_high`` (bootstrap 95%),
        ``n`` (dialogues with every offer written), ``n_pairs``, ``offer_low, offer_high`` (mean
        log offer / list at the lowest and highest anchor).
    """

    offers: pd.DataFrame
    per_dialogue: pd.DataFrame
    summary: pd.DataFrame

    @property
    def coefficient(self) -> float:
        """Mean d log(offer) / d log(opening) over dialogues."""
        return float(self.summary.coefficient.iloc[0])


def coefficient_table(values: pd.DataFrame, outcome: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-dialogue slopes of ``outcome`` on ``log_opening`` and their mean with a bootstrap CI."""
    per = (values.groupby("transcript", sort=False)
           .apply(lambda g: slope(g.log_opening, g[outcome]) if g[outcome].notna().all() else np.nan,
                  include_groups=False)
           .rename("coefficient").reset_index())
    ok = per.coefficient.dropna().to_numpy()
    lo, hi = bootstrap_ci(ok, seed=seed)
    first, last = values.factor.min(), values.factor.max()
    summary = pd.DataFrame([{"coefficient": float(ok.mean()) if len(ok) else np.nan, "ci_low": lo, "ci_high": hi,
                             "n": len(ok), "n_pairs": len(per),
                             f"{outcome}_low": float(values[values.factor == first][outcome].mean()),
                             f"{outcome}_high": float(values[values.factor == last][outcome].mean())}])
    return per, summary


def anchoring_effect(model, pairs, batch_size: int = 8, seed: int = 0, dot: bool = True,
                     comma: bool = False) -> AnchoringEffect:
    """Greedy next offers at every anchor and the anchoring coefficient with a bootstrap CI.

    Offers are decoded by :func:`negolens.analysis.patched_decoding.greedy_digits` (the rule of
    :func:`negolens.analysis.greedy_offer`, except that with ``dot`` a ``.`` ends the number as
    in the agents' decoder) and read as log(offer / list).

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    pairs
        From :func:`anchoring_pairs`.
    batch_size
        Decision points per forward.
    seed
        Seed of the bootstrap.
    dot
        A ``.`` ends the number (``False``: exactly :func:`~negolens.analysis.greedy_offer`).
    comma
        A ``,`` after a digit continues the number (``$9,000`` read as 9000, not 9).

    Returns
    -------
    AnchoringEffect

    Raises
    ------
    NegolensError
        When there are no pairs.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> effect = anchoring_effect(model, anchoring_pairs(model, example_transcripts(4)))
    >>> list(effect.summary.columns)[:4], int(effect.summary.n_pairs.iloc[0])
    (['coefficient', 'ci_low', 'ci_high', 'n'], 4)
    """
    from negolens.agents.decoding import token_pieces
    from negolens.analysis.patched_decoding import greedy_digits, offer_value
    from negolens.analysis.sweep import sdpa

    check_pairs(pairs)
    points = [(p, pair.list_price) for pair in pairs for p in pair.points]
    pieces = token_pieces(model.tokenizer)
    offers = []
    with sdpa(model):
        for start in range(0, len(points), batch_size):
            chunk = points[start : start + batch_size]
            toks = greedy_digits(model, [p for p, _ in chunk], dot=dot, comma=comma)
            offers += [offer_value(pieces, t, lp) for t, (_, lp) in zip(toks, chunk)]
    rows, i = [], 0
    for pair in pairs:
        for f, opening in zip(pair.factors, pair.openings):
            rows.append({"transcript": pair.transcript, "factor": f, "opening": opening,
                         "log_opening": float(np.log(opening / pair.list_price)), "offer": float(offers[i])})
            i += 1
    table = pd.DataFrame(rows)
    per, summary = coefficient_table(table, "offer", seed)
    return AnchoringEffect(table, per, summary)
