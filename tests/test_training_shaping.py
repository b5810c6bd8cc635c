"""Reward shaping of GRPO rollouts: the stall cost and what a quit costs (``--quit-stalls``)."""

import pytest

from negolens.errors import NegolensError
from negolens.training.grpo import GRPORunConfig


def _buyer_slots_after(record):
    """The buyer's turns left by the turn limit after the record's last turn, counted one turn at a time."""
    roles = [record["first"] if i % 2 == 0 else ("seller" if record["first"] == "buyer" else "buyer")
             for i in range(record["max_turns"])]
    return roles[len(record["turns"]):].count("buyer")


def test_quit_stalls_makes_quitting_as_costly_as_stalling_to_the_deadline():
    """With ``quit_stalls`` every dialogue in which the buyer names no price and finds no deal costs
    the stall cost once per buyer turn the limit allows, however early it quits; deals, turn
    limits and the evaluation's reward are untouched, and the option needs a stall cost."""
    from negolens.training.environment import buyer_turns_left, shaped_reward
    from negolens.training.grpo_runs import run_identity

    def record(first, acts, outcome, reward=0.0, max_turns=8):
        other = {"buyer": "seller", "seller": "buyer"}[first]
        turns = [{"role": first if i % 2 == 0 else other, "act": a} for i, a in enumerate(acts)]
        return {"first": first, "max_turns": max_turns, "turns": turns, "outcome": outcome,
                "metrics": {"reward": reward}}

    stall_to_end = record("buyer", ["inquire", "counter", "inform", "counter", "reject", "counter", "inform",
                                    "counter"], "turn_limit")
    for first in ("buyer", "seller"):
        for limit in (4, 7, 8):
            slots = _buyer_slots_after(record(first, [], "turn_limit", max_turns=limit))  # the buyer's turns in all
            for n in range(limit):  # the buyer quits at every turn it can
                acts = ["inquire" if (i % 2 == 0) == (first == "buyer") else "counter" for i in range(n)]
                rec = record(first, acts + ["quit"], "quit", max_turns=limit)
                assert buyer_turns_left(rec) == _buyer_slots_after(rec)
                if rec["turns"][-1]["role"] == "buyer":
                    assert shaped_reward(rec, 0.05, quit_stalls=True) == pytest.approx(-0.05 * slots)
    for n in range(8):
        acts = ["inquire" if i % 2 == 0 else "counter" for i in range(n)]
        rec = record("buyer", acts + ["quit"], "quit")
        if rec["turns"][-1]["role"] == "buyer":
            played = sum(t["role"] == "buyer" for t in rec["turns"][:-1])  # its stalls before the quit
            assert shaped_reward(rec, 0.05) == pytest.approx(-0.05 * played)
    assert shaped_reward(stall_to_end, 0.05, quit_stalls=True) == pytest.approx(-0.05 * 4)
    early = record("buyer", ["quit"], "quit")
    assert shaped_reward(early, 0.05) == 0.0 > shaped_reward(stall_to_end, 0.05)  # the exploit it closes
    assert shaped_reward(early, 0.0, quit_stalls=True) == 0.0  # the paper's reward untouched at cost 0
    deal = record("buyer", ["inquire", "counter", "offer", "accept"], "deal", reward=0.6)
    assert shaped_reward(deal, 0.05, quit_stalls=True) == shaped_reward(deal, 0.05) == pytest.approx(0.55)
    seller_quits = record("buyer", ["offer", "quit"], "quit")
    assert shaped_reward(seller_quits, 0.05, quit_stalls=True) == 0.0  # only the buyer's quit is charged
    with pytest.raises(NegolensError, match="--stall-cost"):
        GRPORunConfig(quit_stalls=True)
    assert "quit_stalls" not in run_identity(GRPORunConfig(model="m"), [])  # earlier runs still resume
    assert run_identity(GRPORunConfig(model="m", stall_cost=0.05, quit_stalls=True), [])["quit_stalls"] is True
