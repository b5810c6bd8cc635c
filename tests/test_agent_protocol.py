import pytest

from negolens.agents.protocol import Act, Guards, Move, Negotiation
from negolens.agents.scenarios import Scenario

SC = Scenario("t", "builtin", "bike", "", "bike", list_price=100.0, buyer_target=60.0, seller_target=100.0,
              buyer_budget=80.0, seller_cost=50.0)


def neg(**kw):
    return Negotiation(SC, **kw)


def test_deal_needs_accept_of_standing_offer():
    n = neg()
    assert Act.ACCEPT not in n.legal_acts("buyer")
    n.apply(Move("I offer 60", Act.OFFER, 60))
    assert n.standing == ("buyer", 60) and Act.ACCEPT in n.legal_acts("seller")
    n.apply(Move("70?", Act.COUNTER, 70))
    n.apply(Move("ok", Act.ACCEPT))
    assert n.outcome == "deal" and n.deal_price == 70 and n.turns[-1].price == 70


def test_accept_without_offer_is_a_protocol_failure():
    n = neg()
    rec = n.apply(Move("deal!", Act.ACCEPT))
    assert rec.failure == "illegal_accept" and n.outcome == "protocol_failure" and n.failed_by == "buyer"


@pytest.mark.parametrize("price", [1e12, -5.0, 0.0, float("nan"), None])
def test_absurd_prices_are_recorded_failures(price):
    n = neg()
    rec = n.apply(Move("how about this", Act.OFFER, price))
    assert n.outcome == "protocol_failure"
    assert rec.failure == ("missing_price" if price is None else "absurd_price")


def test_regulated_seller_is_blocked_below_cost():
    n = neg()
    n.apply(Move("40?", Act.OFFER, 40))
    rec = n.apply(Move("ok", Act.ACCEPT))
    assert rec.blocked == "below_cost" and not n.done
    rec = n.apply(Move("45", Act.OFFER, 45))
    rec = n.apply(Move("fine, 45", Act.COUNTER, 45))
    assert rec.blocked == "below_cost" and n.standing == ("buyer", 45)
    assert "[blocked: below cost]" in rec.public_text()
    free = neg(guards=Guards(regulated_seller=False))
    free.apply(Move("40?", Act.OFFER, 40))
    free.apply(Move("ok", Act.ACCEPT))
    assert free.outcome == "deal" and free.deal_price == 40


def test_budget_guard_record_and_block():
    n = neg()
    rec = n.apply(Move("90", Act.OFFER, 90))
    assert rec.overshoot and rec.blocked is None and n.standing == ("buyer", 90)
    hard = neg(guards=Guards(budget_guard="block"))
    rec = hard.apply(Move("90", Act.OFFER, 90))
    assert rec.overshoot and rec.blocked == "over_budget" and hard.standing is None
    hard.apply(Move("95", Act.OFFER, 95))
    rec = hard.apply(Move("ok", Act.ACCEPT))
    assert rec.overshoot and rec.blocked == "over_budget" and not hard.done


def test_reject_quit_and_turn_limit():
    n = neg(max_turns=3)
    n.apply(Move("60", Act.OFFER, 60))
    n.apply(Move("no", Act.REJECT))
    assert n.standing is None
    n.apply(Move("hello", Act.GREET))
    assert n.outcome == "turn_limit"
    q = neg()
    q.apply(Move("bye", Act.QUIT))
    assert q.outcome == "quit"
    with pytest.raises(RuntimeError):
        q.apply(Move("again", Act.GREET))


def test_announced_deadline_follows_every_message():
    quiet, loud = neg(max_turns=3), neg(max_turns=3, announce_turns=True)
    for n in (quiet, loud):
        n.apply(Move("hi", Act.GREET))
        n.apply(Move("100", Act.OFFER, 100))
    assert [t.public_text() for t in quiet.turns] == ["hi\nACTION: greet", "100\nACTION: offer $100"]
    assert [t.public_text() for t in loud.turns] == ["hi\nACTION: greet [turns left: 2]",
                                                     "100\nACTION: offer $100 [turns left: 1]"]
    rec = loud.apply(Move("70", Act.OFFER, 70))
    assert rec.note() == " [turns left: 0]" and loud.outcome == "turn_limit"
    hard = neg(announce_turns=True, guards=Guards(budget_guard="block"))
    assert hard.apply(Move("90", Act.OFFER, 90)).note() == " [blocked: over budget] [turns left: 11]"
    assert loud.to_record()["announce_turns"] and not quiet.to_record()["announce_turns"]


def test_reasoning_is_never_public():
    n = neg()
    rec = n.apply(Move("I can pay $60.", Act.OFFER, 60, reasoning="my budget is 80, start low"))
    assert rec.public_text() == "I can pay $60.\nACTION: offer $60"
    assert "80" not in rec.public_text()
