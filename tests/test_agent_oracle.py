"""The ceiling buyer: no buyer earns more against a rule seller, and the ceiling is attained."""

from dataclasses import dataclass, replace

import pytest

from negolens.agents.builtin import builtin_scenarios
from negolens.agents.oracle import Clairvoyant, ceiling
from negolens.agents.protocol import Act, Move
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations
from negolens.errors import NegolensError
from negolens.training.imitation import HoldTarget

SCENARIOS = builtin_scenarios()[:6]
SELLERS = ("rule", "rule:aggressive", "rule:passive", "rule:unyielding", "rule:begging")


@dataclass
class Scripted:
    """A buyer that names ``share`` × list every turn and accepts any standing price at turn ``accept_at``."""

    share: float
    accept_at: int | None = None
    role: str = "buyer"

    def config(self) -> dict:
        return {"kind": "rule", "role": "buyer", "share": self.share, "accept_at": self.accept_at}

    def act(self, neg):
        facing = neg.standing and neg.standing[0] != self.role
        if facing and len(neg.turns) == self.accept_at:
            return Move("Deal.", Act.ACCEPT)
        price = round(self.share * neg.scenario.list_price, 2)
        return Move(f"I can offer ${price}.", Act.COUNTER if facing else Act.OFFER, price)


def _seller(spec):
    _, _, tail = spec.partition(":")
    personality = tail if tail in ("aggressive", "fair", "passive") else "fair"
    return RuleAgent("seller", personality, tail if tail and tail != personality else None)


def _rewards(buyer, seller, scenarios, turns=8):
    recs = run_negotiations(scenarios, buyer, seller, RunConfig(max_turns=turns, announce_turns=True), progress=False)
    return {r["scenario"]["id"]: r["metrics"]["reward"] for r in recs}


@pytest.mark.parametrize("seller", SELLERS)
def test_no_buyer_beats_the_ceiling(seller):
    best = {r["scenario"]["id"]: r["metrics"]["reward"] for r in ceiling(SCENARIOS, seller, max_turns=8)}
    buyers = [RuleAgent("buyer", p) for p in ("aggressive", "fair", "passive")] + [HoldTarget()]
    buyers += [Scripted(share, k) for share in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9) for k in (None, 2, 4, 6)]
    reached = dict.fromkeys(best, False)
    for buyer in buyers:
        for sid, reward in _rewards(buyer, _seller(seller), SCENARIOS).items():
            assert reward <= best[sid] + 1e-9, (buyer, sid, reward, best[sid])
            reached[sid] |= reward > best[sid] - 0.35
    assert all(reached.values()) or seller == "rule:unyielding"  # the grid gets near the ceiling: it is not loose


def test_ceiling_is_the_whole_gap_on_mutual_products_and_zero_without_one():
    conflict = replace(SCENARIOS[0], id="conflict", seller_cost=SCENARIOS[0].buyer_budget + 10)
    recs = ceiling([*SCENARIOS, conflict], "rule", max_turns=8)
    by_id = {r["scenario"]["id"]: r for r in recs}
    assert all(by_id[s.id]["metrics"]["reward"] == 1.0 and by_id[s.id]["metrics"]["deal"] for s in SCENARIOS)
    assert by_id["conflict"]["metrics"]["reward"] == 0.0 and not by_id["conflict"]["metrics"]["deal"]
    assert all(r["metrics"]["overshoot"] == 0.0 for r in recs)


def test_unyielding_seller_leaves_nothing_when_its_target_is_above_the_budget():
    recs = ceiling(SCENARIOS, "rule:unyielding", max_turns=8)
    assert all(s.seller_target > s.buyer_budget for s in SCENARIOS)
    assert [r["metrics"]["reward"] for r in recs] == [0.0] * len(SCENARIOS)
    assert not any(r["metrics"]["deal"] for r in recs)


@pytest.mark.parametrize("turns,first", [(6, "buyer"), (7, "buyer"), (8, "seller"), (5, "seller")])
def test_ceiling_is_reached_whoever_opens_and_however_long(turns, first):
    recs = ceiling(SCENARIOS, "rule", max_turns=turns, first=first)
    assert [r["metrics"]["reward"] for r in recs] == [1.0] * len(SCENARIOS)


def test_ceiling_refuses_what_has_no_known_bottom_line():
    with pytest.raises(NegolensError, match="rule seller"):
        ceiling(SCENARIOS, "smollm2-135m-instruct")
    with pytest.raises(NegolensError, match="rule seller"):
        Clairvoyant(RuleAgent("buyer"))


@pytest.mark.parametrize("seller", ["rule", "rule:aggressive", "rule:unyielding"])
def test_a_fixed_share_buyer_closes_exactly_when_its_number_reaches_the_bottom_line(seller):
    """share_curve plays HoldShare: a deal iff share x budget >= the seller's bottom line (its
    concessions ignore the buyer), the paper's reward at that price, never above the ceiling."""
    from negolens.agents.metrics import rlvr_reward
    from negolens.agents.oracle import HoldShare, share_curve

    shares = (0.6, 0.75, 0.9, 1.0)
    curve = share_curve(SCENARIOS, seller, shares=shares)
    bottom = {s.id: _seller(seller).limits(_neg(s))[1] for s in SCENARIOS}
    for share, row in zip(shares, curve.itertuples()):
        prices = {s.id: round(share * s.buyer_budget, 2) for s in SCENARIOS}
        deals = [prices[s.id] >= bottom[s.id] for s in SCENARIOS]
        want = [rlvr_reward(prices[s.id] if d else None, s.buyer_budget, s.seller_cost, False, False)
                for s, d in zip(SCENARIOS, deals)]
        assert row.share == share and row.n == len(SCENARIOS) and row.overshoot == 0.0
        assert row.deal == pytest.approx(sum(deals) / len(deals)) and row.reward == pytest.approx(sum(want) / len(want))
    best = sum(r["metrics"]["reward"] for r in ceiling(SCENARIOS, seller, max_turns=8)) / len(SCENARIOS)
    assert curve["reward"].max() <= best + 1e-9
    with pytest.raises(NegolensError, match="share of the budget"):
        HoldShare(1.2)


def _neg(scenario):
    from negolens.agents.protocol import Negotiation

    return Negotiation(scenario, 8)
