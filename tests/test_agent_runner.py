"""Runner: resumable after a kill (no lost or duplicated lines), failures recorded, not raised."""

import json

import pytest

from negolens.agents.builtin import builtin_scenarios
from negolens.agents.llm_agent import LLMAgent
from negolens.agents.protocol import Act, Move
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, read_records, run_negotiations

ITEMS = builtin_scenarios()[:6]
CONFIG = RunConfig(max_turns=6, batch_size=2, seed=7)


class KilledAfter:
    """Wraps an agent; raises KeyboardInterrupt (like Ctrl-C or a kill) on call ``n``."""

    def __init__(self, inner, n):
        self.inner, self.n, self.calls = inner, n, 0

    def config(self):
        return self.inner.config()

    def act_batch(self, negs, seeds):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.inner.act_batch(negs, seeds)


def test_resume_after_kill_loses_and_duplicates_nothing(tiny_llama, tmp_path):
    buyer = LLMAgent(tiny_llama, "buyer", temperature=1.0, max_utterance_tokens=6)
    reference = run_negotiations(ITEMS, buyer, RuleAgent("seller"), CONFIG, out=tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_negotiations(ITEMS, KilledAfter(buyer, 5), RuleAgent("seller"), CONFIG, out=out, progress=False)
    partial = read_records(out / "dialogues.jsonl")
    assert 0 < len(partial) < len(ITEMS)
    with open(out / "dialogues.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "00005-builtin-05", "turns": [')  # a line torn by the kill
    resumed = run_negotiations(ITEMS, buyer, RuleAgent("seller"), CONFIG, out=out, progress=False)
    assert len(resumed) == len(ITEMS) - len(partial)  # only the missing ones ran
    lines = (out / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == sorted(r["id"] for r in reference) and len(set(ids)) == len(ids)
    by_id = {r["id"]: r["turns"] for r in read_records(out / "dialogues.jsonl")}
    assert all(by_id[r["id"]] == r["turns"] for r in reference)  # same seed, same transcripts


class Garbage:
    def __init__(self, mode):
        self.mode = mode

    def config(self):
        return {"kind": "garbage", "mode": self.mode}

    def act_batch(self, negs, seeds):
        if self.mode == "raise":
            raise RuntimeError("model exploded")
        return [Move("", Act.OFFER, 1e12) for _ in negs]


@pytest.mark.parametrize("mode, failure", [("absurd", "absurd_price"), ("raise", "agent_error: RuntimeError: model exploded")])
def test_bad_output_is_a_recorded_failure(tmp_path, mode, failure):
    recs = run_negotiations(ITEMS[:3], Garbage(mode), RuleAgent("seller"), CONFIG, out=tmp_path, progress=False)
    assert len(recs) == 3 and all(r["outcome"] == "protocol_failure" and r["failed_by"] == "buyer" for r in recs)
    assert all(r["turns"][0]["failure"] == failure for r in recs)
    assert all(r["metrics"]["reward"] == -1.0 for r in recs)
    assert len(read_records(tmp_path / "dialogues.jsonl")) == 3


def test_record_schema(tiny_llama, tmp_path):
    (rec,) = run_negotiations(ITEMS[:1], LLMAgent(tiny_llama, "buyer", max_utterance_tokens=4), RuleAgent("seller"),
                              CONFIG, out=tmp_path, progress=False)
    assert {"id", "scenario", "buyer", "seller", "run", "turns", "outcome", "deal_price", "metrics"} <= set(rec)
    assert rec["buyer"]["kind"] == "llm" and rec["seller"]["kind"] == "rule"
    t = rec["turns"][0]
    assert {"utterance", "reasoning", "act", "price", "prompt_tokens", "new_tokens", "failure", "blocked"} <= set(t)


def test_negotiate_caps_llm_messages_and_announces_the_deadline(tiny_llama):
    from negolens.agents import negotiate

    recs = negotiate(tiny_llama, "rule", ITEMS[:2], max_turns=4, max_utterance_tokens=3, announce_turns=True,
                     progress=False)
    assert recs[0]["buyer"]["max_utterance_tokens"] == 3 and recs[0]["run"]["announce_turns"]
    for rec in recs:
        assert [t["turns_left"] for t in rec["turns"]] == [3, 2, 1, 0][: len(rec["turns"])]
        for t in rec["turns"]:
            if t["role"] == "buyer":  # the message: the sampled tokens before the first forced one (\nACTION:)
                assert t["sampled"].index(0) <= 3


class QuitsWhereOdd:
    """A buyer that quits at once in the odd-numbered scenarios: those dialogues end first."""

    def config(self):
        return {"kind": "quits-where-odd"}

    def act_batch(self, negs, seeds):
        return [Move("Bye.", Act.QUIT) if ITEMS.index(n.scenario) % 2 else Move("How about $100?", Act.OFFER, 100.0)
                for n in negs]


def test_records_come_back_in_the_scenarios_order_though_they_finish_out_of_it(tmp_path):
    """Dialogues of one batch end at different turns: the file gets them as they finish, the
    returned list is in the scenarios' order (as a run split over processes returns it)."""
    got = run_negotiations(ITEMS, QuitsWhereOdd(), RuleAgent("seller"), RunConfig(max_turns=6, batch_size=6, seed=1),
                           out=tmp_path, progress=False)
    ids = [r["id"] for r in got]
    assert ids == sorted(ids) and len(ids) == len(ITEMS)
    assert all(r["outcome"] == "quit" for r in got[1::2]) and all(r["outcome"] != "quit" for r in got[::2])
    written = [r["id"] for r in read_records(tmp_path / "dialogues.jsonl")]
    assert sorted(written) == ids and written != ids  # the file has them as they finished: out of order
