"""negolens.training.cloning: a clone's own next move in its teacher's dialogues."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from negolens.agents.llm_agent import LLMAgent
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.scenarios import split_scenarios
from negolens.errors import NegolensError
from negolens.training.cloning import fidelity, next_moves
from negolens.training.imitation import HoldTarget, Teacher, imitate, teacher_dialogues


class ScriptedStudent:
    """An agent with a model (for the replay) whose moves come from a scripted rule: a student
    that has learned its teacher exactly (or learned another rule)."""

    def __init__(self, model, rule, role="buyer"):
        self.model, self.rule, self.role, self.max_utterance_tokens = model, Teacher(rule), role, 40
        self.seen = []

    def act_batch(self, negs, seeds):
        self.seen.extend(negs)
        return [self.rule.act(n) for n in negs]


@pytest.fixture(scope="module")
def played():
    return teacher_dialogues(split_scenarios("builtin", "train")[:6], "target", max_turns=8, announce_turns=True)


def test_a_student_that_is_its_teacher_agrees_on_every_decision(tiny_llama, played):
    """Every point is the teacher's own state: the firm teacher replayed on them makes every
    move again (act and price), at every announced turn, facing the seller's standing price."""
    student = ScriptedStudent(tiny_llama, HoldTarget())
    moves = next_moves(student, played)
    assert len(moves) == sum(t["role"] == "buyer" for r in played for t in r["turns"])
    assert moves["same_act"].all() and moves["same_price"].dropna().astype(bool).all()
    assert set(moves["teacher_act"]) >= {"offer", "counter", "accept"}  # the points cover each decision
    table = fidelity(moves)
    assert table.loc["all", "same_act"] == 1.0 and table.loc["accept", "student_accept"] == 1.0
    first = moves[moves["turn"] == 0].iloc[0]
    assert math.isnan(first["facing"]) and first["turns_left"] == 7
    later = moves[moves["turn"] == 2].iloc[0]
    rec = next(r for r in played if r["id"] == later["dialogue"])
    assert later["facing"] == rec["turns"][1]["price"]  # the seller's counter it faces


def test_another_rule_disagrees_where_it_decides_otherwise(tiny_llama, played):
    """A concession buyer opens far under the target: its prices differ from the firm teacher's,
    and the table says so per act."""
    moves = next_moves(ScriptedStudent(tiny_llama, RuleAgent("buyer", "aggressive")), played)
    table = fidelity(moves)
    assert table.loc["offer", "same_price"] < 1.0
    assert 0.0 <= table.loc["all", "same_act"] <= 1.0
    assert table.filter(like="student_").sum(axis=1).round(6).eq(1.0).all()  # each row's choices sum to 1


def test_the_student_reads_its_earlier_turns_as_its_decoders_ids(tiny, played):
    """The prompt of each point holds the student's earlier turns as the ids its decoder would
    have emitted (the replay), not re-tokenised text; a real LLM agent then decodes a legal move."""
    agent = LLMAgent(tiny, "buyer", max_utterance_tokens=40)
    seen = []
    decode = agent.act_batch
    agent.act_batch = lambda negs, seeds: seen.extend(negs) or decode(negs, seeds)
    moves = next_moves(agent, played[:2], batch_size=3)
    forced = imitate(tiny, played[:2], "buyer", 40)
    by_id = {r["id"]: r for r in forced}
    for neg, (_, row) in zip(seen, moves.iterrows()):
        own = [t for t in neg.turns if t.role == "buyer"]
        assert [t.token_ids for t in own] == [by_id[row["dialogue"]]["turns"][t.index]["token_ids"] for t in own]
        assert len(neg.turns) == row["turn"]
    assert moves["act"].notna().all() and len(moves) == len(seen)


def test_records_without_the_role_are_refused(tiny_llama, played):
    with pytest.raises(NegolensError, match="no buyer turn"):
        next_moves(ScriptedStudent(tiny_llama, HoldTarget()), [{**played[0], "turns": []}])


def test_the_table_counts_each_teacher_act_and_what_the_student_chose_instead():
    moves = pd.DataFrame({"teacher_act": ["accept", "accept", "counter", "counter", "counter"],
                          "act": ["counter", "accept", "counter", "counter", "accept"],
                          "same_price": [None, None, True, False, None]})
    table = fidelity(moves)
    assert table.loc["accept", "decisions"] == 2 and table.loc["accept", "same_act"] == 0.5
    assert math.isnan(table.loc["accept", "same_price"])
    assert table.loc["counter", "same_price"] == 0.5 and table.loc["counter", "student_accept"] == pytest.approx(1 / 3)
    assert table.loc["all", "decisions"] == 5 and table.loc["all", "same_act"] == pytest.approx(3 / 5)
