import pytest

from negolens.agents.metrics import dialogue_metrics, rlvr_reward, summarize
from negolens.stats import bootstrap_ci

SCEN = {"list_price": 100.0, "buyer_target": 60.0, "seller_target": 100.0, "buyer_budget": 80.0, "seller_cost": 50.0}


def turn(role, act, price=None, overshoot=False):
    return {"role": role, "act": act, "price": price, "overshoot": overshoot}


def record(turns, outcome="deal", price=70.0, failed_by=None, **scen):
    return {"scenario": {**SCEN, **scen}, "turns": turns, "outcome": outcome,
            "deal_price": price if outcome == "deal" else None, "failed_by": failed_by}


DEAL = [turn("buyer", "offer", 60), turn("seller", "counter", 90), turn("buyer", "counter", 70),
        turn("seller", "inquire"), turn("seller", "accept", 70)]


def test_hand_computed_deal():
    m = dialogue_metrics(record(DEAL))
    assert m["deal"] == 1.0 and m["length"] == 5
    assert m["position"] == pytest.approx(0.25)  # (70 - 60) / (100 - 60)
    assert m["fairness"] == pytest.approx(0.5)  # 1 - |2 * 0.25 - 1|
    assert m["bias"] == pytest.approx(-0.5)
    assert m["discount"] == pytest.approx(0.3) and m["bargained_ratio"] == pytest.approx(0.7)
    assert m["reward"] == pytest.approx(10 / 30)  # (B - P) / |B - C|
    assert m["first_offer_ratio_buyer"] == pytest.approx(0.6)
    assert m["aggressiveness_buyer"] == pytest.approx(0.4) and m["aggressiveness_seller"] == pytest.approx(-0.1)
    assert m["concession_rate_buyer"] == pytest.approx(0.10)  # 60 -> 70 on a list of 100
    assert m["concession_rate_seller"] is None  # one price only: undefined, not 0
    assert m["probing_ratio_seller"] == pytest.approx(1 / 3)


def test_undefined_cases_are_none():
    m = dialogue_metrics(record(DEAL, buyer_target=100.0))  # target gap 0
    assert m["position"] is None and m["fairness"] is None and m["bias"] is None
    no = dialogue_metrics(record(DEAL[:2], outcome="turn_limit"))
    assert no["deal"] == 0 and no["fairness"] is None and no["reward"] == 0.0


def test_rlvr_reward_rules():
    assert rlvr_reward(None, 80, 50, overshoot=False, failed=False) == 0.0
    assert rlvr_reward(70, 80, 50, overshoot=True, failed=False) == -1.0
    assert rlvr_reward(None, 80, 50, overshoot=False, failed=True) == -1.0
    assert rlvr_reward(0, 80, 50, False, False) == 1.0  # clipped
    assert rlvr_reward(79.5, 80, 79.8, False, False) == pytest.approx(0.5)  # |B - C| < 1 guard
    over = dialogue_metrics(record([turn("buyer", "offer", 95, overshoot=True), turn("seller", "accept", 95)], price=95))
    assert over["overshoot"] == 1.0 and over["reward"] == -1.0
    fail = dialogue_metrics(record([turn("buyer", None)], outcome="protocol_failure", failed_by="buyer"))
    assert fail["reward"] == -1.0 and fail["protocol_failure"] == 1.0


def test_bounded_and_summary_with_ci():
    recs = [record(DEAL, price=p) for p in (40.0, 70.0, 120.0)]
    for r in recs:
        m = dialogue_metrics(r)
        assert 0.0 <= m["fairness"] <= 1.0 and -1.0 <= m["bias"] <= 1.0
    table = summarize(recs + [record(DEAL[:1], outcome="quit")]).set_index("metric")
    assert table.loc["deal", "n"] == 4 and table.loc["deal", "mean"] == pytest.approx(0.75)
    assert table.loc["fairness", "undefined"] == 1
    lo, hi = table.loc["deal", ["ci_low", "ci_high"]]
    assert lo <= 0.75 <= hi
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
