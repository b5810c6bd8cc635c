"""The concession-reading teacher (``extrapolate``): what it names, what it earns against the
rule sellers, and what it refuses."""

import math
from dataclasses import replace

import pytest

from negolens.agents.oracle import ceiling
from negolens.agents.protocol import Negotiation
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations
from negolens.agents.scenarios import split_scenarios
from negolens.errors import NegolensError
from negolens.training import Extrapolate, FilteredConfig, scripted_agent, teacher_dialogues

SCENARIOS = split_scenarios("builtin", "train", 12)


def _play(buyer, seller, turns=8):
    recs = run_negotiations(SCENARIOS, buyer, seller, RunConfig(max_turns=turns, announce_turns=True), progress=False)
    return sorted(recs, key=lambda r: r["scenario"]["id"])


def test_against_the_fair_rule_seller_it_pays_the_cost_rounded_up_to_a_dollar():
    """Its last price is the seller's two last prices extrapolated to the seller's next turn,
    which for the fair seller is its cost: every mutual deal closes there, at the ceiling but for
    the rounding."""
    from negolens.agents.metrics import rlvr_reward

    best = {r["scenario"]["id"]: r["metrics"]["reward"] for r in ceiling(SCENARIOS, "rule", max_turns=8)}
    for rec in _play(Extrapolate(), RuleAgent("seller")):
        s, turns = rec["scenario"], rec["turns"]
        p3, p5 = turns[3]["price"], turns[5]["price"]
        assert [t["price"] for t in turns[:5:2]] == [math.floor(s["buyer_budget"] / 2)] * 3   # the anchor
        assert turns[6]["price"] == min(math.floor(s["buyer_budget"]), math.ceil(round(2 * p5 - p3, 6)))
        if math.ceil(s["seller_cost"]) <= s["buyer_budget"]:
            assert rec["deal_price"] == math.ceil(s["seller_cost"]) and turns[7]["act"] == "accept"
            paid = rlvr_reward(math.ceil(s["seller_cost"]), s["buyer_budget"], s["seller_cost"], False, False)
            assert rec["metrics"]["reward"] == pytest.approx(paid) and paid <= best[s["id"]]
        else:
            assert rec["deal_price"] is None and rec["metrics"]["reward"] == 0.0


@pytest.mark.parametrize("seller", ["rule:aggressive", "rule:passive", "rule:unyielding", "rule:begging"])
def test_it_never_overshoots_and_never_beats_the_ceiling(seller):
    """Against sellers that do not concede linearly the extrapolation misses (above the cost for
    late concessions, below it for early ones), but the budget caps it."""
    from negolens.agents.factory import make_agent

    best = {r["scenario"]["id"]: r["metrics"]["reward"] for r in ceiling(SCENARIOS, seller, max_turns=8)}
    recs = _play(Extrapolate(), make_agent(seller, "seller", models={}))
    for rec in recs:
        assert rec["metrics"]["overshoot"] == 0.0
        assert rec["metrics"]["reward"] <= best[rec["scenario"]["id"]] + 1e-9
    deals = [r["deal_price"] is not None for r in recs]
    assert (not any(deals)) if seller == "rule:unyielding" else any(deals)


def test_margin_raises_the_last_price_and_the_target_stands_in_without_two_seller_prices():
    for s in SCENARIOS[:4]:
        neg, buyer, seller = Negotiation(s, max_turns=8), Extrapolate(), RuleAgent("seller")
        for _ in range(3):
            neg.apply(buyer.act(neg))
            neg.apply(seller.act(neg))
        p3, p5 = neg.turns[3].price, neg.turns[5].price
        for margin in (0.0, 0.1):
            expected = min(math.floor(s.buyer_budget), math.ceil(round((2 * p5 - p3) * (1 + margin), 6)))
            assert Extrapolate(margin=margin).price(neg) == expected
    short = Negotiation(SCENARIOS[0], max_turns=2)               # its first turn is already its last
    assert Extrapolate().price(short) == math.floor(SCENARIOS[0].buyer_target)


def test_teacher_specs_and_refusals():
    assert scripted_agent("extrapolate", "buyer") == Extrapolate()
    assert scripted_agent("extrapolate:0.05", "buyer").margin == 0.05
    with pytest.raises(NegolensError, match="extrapolate:0.03"):
        scripted_agent("extrapolate:wide", "buyer")
    with pytest.raises(NegolensError, match="rule agent"):
        scripted_agent("extrapolate", "seller")
    with pytest.raises(NegolensError, match="buyer strategy"):
        Extrapolate(role="seller")
    with pytest.raises(NegolensError, match="share of the budget"):
        Extrapolate(anchor=0.0)
    with pytest.raises(NegolensError, match="margin"):
        Extrapolate(margin=-0.1)
    with pytest.raises(NegolensError, match="extrapolate"):
        FilteredConfig(teacher="extrapolate:x")
    assert FilteredConfig(teacher="extrapolate").teacher == "extrapolate"


def test_its_dialogues_are_whole_dollars_and_carry_its_settings():
    tight = [replace(s, buyer_budget=s.seller_cost + 0.5) for s in SCENARIOS[:4]]   # cost and budget one dollar apart
    for rec in teacher_dialogues(tight, "extrapolate", max_turns=8):
        prices = [t["price"] for t in rec["turns"] if t["role"] == "buyer" and t["price"] is not None]
        assert all(p == int(p) for p in prices) and rec["buyer"]["teacher"]["strategy"] == "extrapolate"
        assert rec["metrics"]["overshoot"] == 0.0
