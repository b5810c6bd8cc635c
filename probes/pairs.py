"""Which (query, key) token pairs each attention score looks at, and their matched controls.

Attention is causal: a query only sees earlier keys. Every score is "the attention mass that a
query puts on its key set", averaged over the queries of a dialogue:

* ``verb_args`` — queries: the argument window (the ``window`` content tokens after a
  negotiation verb, same turn); keys: the verb's tokens. (AgreeMate's "verbs → arguments",
  read causally: arguments look back at their verb.)
* ``price_verb`` — queries: a price's tokens; keys: the nearest verb before it in the same turn.
* ``price_verb_across`` — queries: a price's tokens; keys: every verb token of earlier turns
  (AgreeMate's "price tokens → 'sell' across turns").
* ``decision_own_price`` / ``decision_other_price`` — query: the last token before one of the
  viewer's own turns (where it decides its next move); keys: the price tokens of earlier turns,
  its own or its counterpart's.

The control for each score keeps the queries and swaps every key for a *matched control
token*: the nearest untagged word token of the same turn (not a price, verb or role token, not
template scaffolding or pure punctuation), so keys and controls share the position
distribution. A head that merely attends to nearby or recent tokens scores the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from negolens.tagging import TokenTags

__all__ = ["SCORES", "PairSet", "build_pairs"]

SCORES = ("verb_args", "price_verb", "price_verb_across", "decision_own_price", "decision_other_price")


@dataclass
class PairSet:
    """Pairs of one score in one view: (query, key, weight); weights average over queries."""

    q: list[int]
    k: list[int]
    w: list[float]
    ctrl_k: list[int]


def _word_tokens(pieces: list[str]) -> np.ndarray:
    return np.array([any(ch.isalnum() for ch in p) for p in pieces])


def build_pairs(view, pieces: list[str], tags: TokenTags, window: int = 6, seed: int = 0) -> dict[str, PairSet]:
    """Pair sets for every score of one rendered view (``pieces``: decoded token strings)."""
    rng = np.random.default_rng(seed)
    n = tags.n_tokens
    tagged = np.zeros(n, bool)
    for kind in ("price", "verb", "role"):
        tagged[tags.indices(kind)] = True
    turn_of = np.array(tags.token_turn)
    candidate = _word_tokens(pieces) & ~tagged & (turn_of >= 0)

    def control(key: int, before: int, taken: set) -> int | None:
        same = np.nonzero(candidate & (turn_of == turn_of[key]) & (np.arange(n) < before))[0]
        same = np.array([c for c in same if c not in taken], dtype=int)
        if len(same) == 0:
            return None
        dist = np.abs(same - key) + rng.random(len(same)) * 0.5  # nearest, random tie-break
        taken.add(int(same[dist.argmin()]))
        return int(same[dist.argmin()])

    out = {s: PairSet([], [], [], []) for s in SCORES}

    def add(score: str, queries: list[int], keys: list[int]) -> None:
        keys = [k for k in keys if k < min(queries)]
        taken: set = set()
        ctrl = [control(k, min(queries), taken) for k in keys]
        if not keys or any(c is None for c in ctrl):
            return
        for q in queries:
            for k, c in zip(keys, ctrl):
                out[score].q.append(q)
                out[score].k.append(k)
                out[score].ctrl_k.append(c)
                out[score].w.append(1.0)

    chat_turn = {c: i for i, c in enumerate(view.turn_of_chat)}
    verbs = [v for v in tags.of("verb") if v.turn in chat_turn]
    prices = [p for p in tags.of("price") if p.turn in chat_turn]
    for v in verbs:
        lo, hi = tags.turn_ranges[v.turn]
        args = [i for i in range(max(v.tokens) + 1, hi) if candidate[i] or tagged[i]][:window]
        if args:
            add("verb_args", args, list(v.tokens))
    for p in prices:
        before = [v for v in verbs if v.turn == p.turn and max(v.tokens) < min(p.tokens)]
        if before:
            add("price_verb", list(p.tokens), list(before[-1].tokens))
        earlier = [t for v in verbs if v.turn < p.turn for t in v.tokens]
        if earlier:
            add("price_verb_across", list(p.tokens), earlier)
    roles = [u.role for u in view.transcript.turns[: len(view.turn_of_chat)]]
    for i, q in enumerate(view.before_reply):
        if roles[i] != view.role:
            continue
        here = view.turn_of_chat[i]
        own = [t for p in prices if p.turn < here and roles[chat_turn[p.turn]] == view.role for t in p.tokens]
        theirs = [t for p in prices if p.turn < here and roles[chat_turn[p.turn]] != view.role for t in p.tokens]
        if own:
            add("decision_own_price", [q], own)
        if theirs:
            add("decision_other_price", [q], theirs)
    for ps in out.values():  # each score = mean over its queries of the mass on the key set
        n_queries = max(1, len(set(ps.q)))
        ps.w = [1.0 / n_queries] * len(ps.q)
    return out
