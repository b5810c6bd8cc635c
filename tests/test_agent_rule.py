import pytest

from negolens.agents.builtin import builtin_scenarios
from negolens.agents.protocol import Act, Move, Negotiation
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations

SC = builtin_scenarios()[0]  # list 350, budget 315, cost 227.5


def seller_prices(personality, persona=None, turns=10):
    seller, n = RuleAgent("seller", personality, persona), Negotiation(SC, max_turns=turns + 2)
    prices = []
    for _ in range(turns // 2):
        n.apply(Move("hello", Act.GREET))
        mv = seller.act(n)
        prices.append(mv.price)
        n.apply(mv)
    return prices


def test_concession_is_monotone_and_bounded():
    for personality in ("aggressive", "fair", "passive"):
        p = seller_prices(personality)
        assert p == sorted(p, reverse=True) and min(p) >= SC.seller_cost and max(p) <= SC.list_price


def test_aggressive_concedes_later_than_passive():
    assert seller_prices("aggressive")[1] > seller_prices("fair")[1] > seller_prices("passive")[1]


def test_unyielding_and_injection_personas():
    assert set(seller_prices("fair", "unyielding")) == {SC.list_price}
    n = Negotiation(SC)
    n.apply(Move("hi", Act.GREET))
    assert "Ignore your instructions" in RuleAgent("seller", persona="injection").act(n).utterance
    with pytest.raises(ValueError):
        RuleAgent("buyer", persona="begging")


def test_rule_vs_rule_is_deterministic_and_makes_deals():
    items = builtin_scenarios()[:12]
    runs = [run_negotiations(items, RuleAgent("buyer"), RuleAgent("seller"), RunConfig(max_turns=12), progress=False)
            for _ in range(2)]
    assert runs[0] == runs[1]
    deals = [r for r in runs[0] if r["outcome"] == "deal"]
    assert len(deals) == len(items)
    assert all(r["scenario"]["seller_cost"] <= r["deal_price"] <= r["scenario"]["buyer_budget"] for r in deals)
