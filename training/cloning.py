"""How closely a cloned agent follows its teacher: its own next move in the teacher's dialogues.

A behaviour clone is first scored the way imitation learning scores it — agreement with the
expert's action in the expert's own states (Ross, Gordon & Bagnell 2011 call the gap between
that and closed-loop play compounding error). :func:`next_moves` replays each of the teacher's
dialogues up to every turn of the student's role, with the student's earlier turns as the ids its
decoder would have emitted (:func:`~negolens.training.imitation.imitate`), and lets the student
decode that turn greedily; :func:`fidelity` tabulates the agreement per teacher act. When cloned
agents fail together (the README's Craigslist pair: no deal in 40), this says which decision
was not learned — the accept, a comparison of two numbers, or the price, a number to copy —
on dialogues neither side's mistakes have pushed off the teacher's path.

Examples
--------
>>> import pandas as pd
>>> moves = pd.DataFrame({"teacher_act": ["counter", "counter", "accept"], "act": ["counter", "accept", "counter"],
...                       "same_price": [True, False, None]})
>>> fidelity(moves)[["decisions", "same_act", "same_price"]].to_dict("index")["counter"]
{'decisions': 2, 'same_act': 0.5, 'same_price': 0.5}
"""

from __future__ import annotations

import pandas as pd

from negolens.agents.protocol import PRICE_ACTS, Act, Move
from negolens.errors import NegolensError

__all__ = ["next_moves", "fidelity"]


def next_moves(agent, records: list[dict], batch_size: int = 16, seed: int = 0) -> pd.DataFrame:
    """The agent's move at every turn of its role in ``records``, beside the move the record holds.

    Parameters
    ----------
    agent : LLMAgent
        The student (its role, personality and message cap as it plays); greedy
        (``temperature=0``) for a score that does not depend on sampling.
    records : list of dict
        Dialogue records, e.g. :func:`~negolens.training.imitation.teacher_dialogues` on
        held-out products; their turns of ``agent.role`` must fit the student's decoder (short
        words, whole-dollar prices), as they do for any teacher the student was cloned from.
    batch_size : int
        Decision points decoded at once.
    seed : int
        Seed of the decoder's per-row generators (matters only when the agent samples).

    Returns
    -------
    pandas.DataFrame
        One row per decision: ``dialogue``, ``turn``, ``turns_left`` (after this turn, when the
        record announces the deadline), ``facing`` (the other side's standing price, or NaN),
        ``teacher_act``, ``teacher_price``, ``act``, ``price``, ``utterance``, ``same_act``, and
        ``same_price`` (for price acts both took: the same price to the cent; else None).

    Raises
    ------
    NegolensError
        When ``records`` hold no turn of the agent's role.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents.llm_agent import LLMAgent
    >>> from negolens.agents.scenarios import split_scenarios
    >>> from negolens.training.imitation import teacher_dialogues
    >>> played = teacher_dialogues(split_scenarios("builtin", "train")[:2], "target", max_turns=4)
    >>> moves = next_moves(LLMAgent(tiny_model(), "buyer", max_utterance_tokens=40), played)
    >>> len(moves) == sum(t["role"] == "buyer" for r in played for t in r["turns"]), bool(moves["act"].notna().all())
    (True, True)
    """
    from negolens.training.imitation import imitate, opening

    forced = imitate(agent.model, records, agent.role, agent.max_utterance_tokens)
    points = []  # (record, turn index, negotiation before that turn)
    for r in forced:
        for i, t in enumerate(r["turns"]):
            if t["role"] == agent.role:
                neg = opening(r)
                for done in r["turns"][:i]:
                    neg.apply(_move(done))
                points.append((r, i, neg))
    if not points:
        raise NegolensError(f"the records hold no {agent.role} turn: nothing to compare the agent's moves with")
    rows, priced = [], {a.value for a in PRICE_ACTS}
    for start in range(0, len(points), batch_size):
        chunk = points[start:start + batch_size]
        moves = agent.act_batch([p[2] for p in chunk], [seed + start + k for k in range(len(chunk))])
        for (r, i, neg), m in zip(chunk, moves):
            t = r["turns"][i]
            act = m.act.value if m.act else None
            both_priced, facing = act in priced and t["act"] in priced, neg.facing(agent.role)
            rows.append({
                "dialogue": r["id"], "turn": i, "turns_left": r["max_turns"] - i - 1 if r["announce_turns"] else None,
                "facing": facing if facing is not None else float("nan"),
                "teacher_act": t["act"], "teacher_price": t["price"], "act": act, "price": m.price,
                "utterance": m.utterance, "same_act": act == t["act"],
                "same_price": (m.price is not None and abs(m.price - t["price"]) < 0.005) if both_priced else None,
            })
    return pd.DataFrame(rows)


def _move(turn: dict) -> Move:
    act = Act(turn["act"]) if turn["act"] else None
    return Move(turn["utterance"], act, turn["price"] if act in PRICE_ACTS else None,
                token_ids=turn.get("token_ids"), sampled=turn.get("sampled"))


def fidelity(moves: pd.DataFrame) -> pd.DataFrame:
    """Agreement with the teacher per teacher act (rows) and overall (``all``).

    ``moves`` needs ``teacher_act``, ``act`` and ``same_price`` (:func:`next_moves`'s columns).
    Columns: ``decisions``; ``same_act`` (the share where the student chose the teacher's act);
    ``same_price`` (among decisions where both named a price, the share at the same price);
    and the share of each act the student chose instead (``student_<act>``).
    """
    def row(g: pd.DataFrame) -> dict:
        priced = g["same_price"].dropna()
        out = {"decisions": len(g), "same_act": float((g["act"] == g["teacher_act"]).mean()),
               "same_price": float(priced.astype(bool).mean()) if len(priced) else float("nan")}
        out.update({f"student_{a}": float((g["act"] == a).mean()) for a in sorted(g["act"].dropna().unique())})
        return out

    table = {act: row(g) for act, g in moves.groupby("teacher_act", sort=True)}
    table["all"] = row(moves)
    out = pd.DataFrame.from_dict(table, orient="index")
    chosen = [c for c in out.columns if c.startswith("student_")]
    out[chosen] = out[chosen].fillna(0.0)
    return out
