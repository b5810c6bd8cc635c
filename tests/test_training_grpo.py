"""GRPO buyer on tiny models: multi-turn masks, a real TRL step, checkpoints, resume, evaluation."""

import json
from pathlib import Path

import pytest
import torch

import negolens
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations
from negolens.agents.llm_agent import LLMAgent
from negolens.agents.scenarios import load_scenarios
from negolens.errors import NegolensError
from negolens.training.heldout import paired_comparison
from negolens.training.grpo import GRPORunConfig, read_steps, train_grpo
from negolens.training.rollouts import buyer_sequence, step_stats


def _records(model, n=4, **kw):
    buyer = LLMAgent(model, "buyer", temperature=1.0, max_utterance_tokens=12)
    return run_negotiations(load_scenarios("builtin", n), buyer, RuleAgent("seller"),
                            RunConfig(max_turns=6, seed=3, **kw), progress=False)


@pytest.mark.parametrize("announce", [False, True])
def test_env_mask_is_exactly_the_tokens_the_buyer_sampled(tiny_llama, announce):
    """Also when the environment notes the turns left after every message: the end-of-turn token
    that closed a price was the policy's choice, and it is trained on like every other."""
    recs = _records(tiny_llama, announce_turns=announce)
    tok = tiny_llama.tokenizer
    for rec in recs:
        prompt, completion, mask = buyer_sequence(tiny_llama, rec)
        assert len(completion) == len(mask) and mask[0] == 1  # the completion starts with the buyer's first reply
        assert "Write your first message" in tok.decode(prompt)
        masked = [t for t, m in zip(completion, mask) if m]
        sampled = [i for t in rec["turns"] if t["role"] == "buyer" for i, f in zip(t["token_ids"], t["sampled"]) if f]
        assert masked == sampled  # token in, token out: nothing re-tokenised from text
        forced = [i for t in rec["turns"] if t["role"] == "buyer" for i, f in zip(t["token_ids"], t["sampled"])
                  if not f]
        assert forced and set(tok.encode("\nACTION:", add_special_tokens=False)) <= set(forced)
        text = tok.decode(masked)
        for turn in rec["turns"]:
            if turn["role"] == "seller" and turn["utterance"]:
                assert turn["utterance"].replace(" ", "") not in text.replace(" ", "")


@pytest.mark.parametrize("announce", [False, True])
def test_every_buyer_turn_was_sampled_in_the_context_it_is_trained_in(tiny_llama, announce):
    """The prompt the agent read at each turn is a prefix of the training sequence, and the
    turn's generated ids follow it there verbatim, to the end-of-turn token that closed a price
    (also with the deadline noted after every message: the note on the buyer's own turn opens
    the next message)."""
    from negolens.agents.prompts import system_prompt, view_ids
    from negolens.agents.protocol import TurnRecord
    from negolens.agents.scenarios import Scenario

    for rec in _records(tiny_llama, n=3, announce_turns=announce):
        prompt, completion, _ = buyer_sequence(tiny_llama, rec)
        full = prompt + completion
        assert ("[turns left: 1]" in tiny_llama.tokenizer.decode(full)) == (announce and len(rec["turns"]) >= 5)
        turns = [TurnRecord(**t) for t in rec["turns"]]
        system = system_prompt(Scenario(**rec["scenario"]), "buyer")
        for k, turn in enumerate(turns):
            if turn.role != "buyer":
                continue
            read, _ = view_ids(tiny_llama, system, "buyer", turns[:k])
            assert full[: len(read)] == read
            assert full[len(read): len(read) + len(turn.token_ids)] == turn.token_ids


def test_view_ids_keeps_generated_digits_where_text_would_reformat(tiny_llama):
    from negolens.agents.prompts import view_ids
    from negolens.agents.protocol import TurnRecord

    tok = tiny_llama.tokenizer
    mine = tok.encode("Fine.\nACTION: offer $1250.5", add_special_tokens=False)
    turns = [TurnRecord(0, "buyer", "Fine.", "offer", 1250.5, token_ids=mine, sampled=[1] * len(mine)),
             TurnRecord(1, "seller", "No.", "counter", 1400.0)]
    assert "$1250.50" in turns[0].public_text()  # the text the seller reads is reformatted …
    ids, trained = view_ids(tiny_llama, "SYS", "buyer", turns)
    assert [i for i, t in zip(ids, trained) if t] == mine  # … the buyer reads and trains on its own ids
    assert "$1250.50" not in tok.decode(ids) and "$1400" in tok.decode(ids)
    blocked = TurnRecord(0, "buyer", "Fine.", "offer", 1250.5, blocked="over_budget", token_ids=mine,
                         sampled=[1] * len(mine))
    ids, trained = view_ids(tiny_llama, "SYS", "buyer", [blocked, turns[1]])
    last = max(i for i, t in enumerate(trained) if t)
    assert sum(trained) == len(mine) and tok.decode(ids[: last + 1]).endswith("$1250.5")
    assert "[blocked: over budget]\nNo." in tok.decode(ids)  # the note opens the seller's reply


def test_buyer_sequence_refuses_records_without_token_ids(tiny_llama):
    rec = _records(tiny_llama, n=1)[0]
    for t in rec["turns"]:
        t["token_ids"] = None
    with pytest.raises(NegolensError, match="token_ids"):
        buyer_sequence(tiny_llama, rec)


def test_step_stats_reads_the_phase_quantities():
    rec = {"scenario": {"buyer_budget": 100.0}, "turns": [
        {"role": "buyer", "act": "offer", "price": 60.0}, {"role": "seller", "act": "counter", "price": 90.0}],
        "metrics": {"reward": 0.5, "deal": 1.0, "bargained_ratio": 0.8, "overshoot": 0.0, "length": 4.0,
                    "protocol_failure": 0.0}}
    s = step_stats([rec, {**rec, "turns": [], "metrics": {**rec["metrics"], "reward": -1.0, "overshoot": 1.0}}])
    assert s["first_offer_budget_ratio"] == pytest.approx(0.6)
    assert s["reward"] == pytest.approx(-0.25) and s["overshoot_rate"] == 0.5


def test_config_rejects_groups_of_one():
    with pytest.raises(NegolensError, match="group"):
        GRPORunConfig(group_size=1)


def test_grpo_trains_checkpoints_and_resumes(tiny_dirs, tmp_path):
    start = str(tiny_dirs["llama"])
    scen = load_scenarios("builtin", 4)
    cfg = GRPORunConfig(model=start, steps=2, products_per_step=2, group_size=2, max_turns=4, save_every=1,
                        max_utterance_tokens=8, lr=1e-3)
    out = tmp_path / "grpo"
    final = train_grpo(negolens.load(start), cfg, scen, out, progress=False)
    steps = read_steps(out)
    assert [s["step"] for s in steps] == [1, 2] and all(s["dialogues"] == 4 for s in steps)
    assert len((out / "rollouts" / "step00001.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    assert (out / "checkpoint-2").is_dir()
    for point in ("checkpoint-1", "checkpoint-2", "final"):  # every adapter names the buyer it was trained from
        conf = json.loads((out / point / "adapter_config.json").read_text(encoding="utf-8"))
        assert conf["base_model_name_or_path"] == str(Path(start).resolve())
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text(encoding="utf-8"))
    assert "negotiation/reward" in state["log_history"][0]
    trained, base = negolens.load(final), negolens.load(start)
    delta = max((a - b).abs().max().item() for a, b in zip(trained.hf.parameters(), base.hf.parameters()))
    assert delta > 0  # the adapter learned something and merges on load
    cfg.steps = 3
    final = train_grpo(negolens.load(start), cfg, scen, out, progress=False)
    manifest = json.loads((final / "negolens_manifest.json").read_text(encoding="utf-8"))
    assert manifest["resumed_from"].endswith("checkpoint-2")
    assert [s["step"] for s in read_steps(out)] == [1, 2, 3]


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
def test_micro_batches_accumulate_to_the_same_step(tiny_dirs, tmp_path, loss_type):
    """``micro_batch`` trains a step's rollouts in passes of that many negotiations: one rollout
    per step (the same dialogues), and an update equal to the one from all of them at once;
    a micro-batch that does not divide the step's batch is refused."""
    start = str(tiny_dirs["llama"])
    scen = load_scenarios("builtin", 2)
    base = negolens.load(start)
    finals, logs = [], []
    for micro in (0, 2):
        cfg = GRPORunConfig(model=start, steps=1, products_per_step=2, group_size=2, max_turns=4, save_every=1,
                            max_utterance_tokens=8, lr=1e-3, micro_batch=micro, loss_type=loss_type,
                            seed=2)  # a seed whose groups differ in reward (a step with no signal updates nothing)
        out = tmp_path / f"micro{micro}"
        finals.append(negolens.load(train_grpo(negolens.load(start), cfg, scen, out, progress=False)))
        logs.append((out / "rollouts" / "step00001.jsonl").read_text(encoding="utf-8"))
        assert [s["dialogues"] for s in read_steps(out)] == [4]  # one rollout of the whole step
    assert logs[0] == logs[1]
    deltas = [[a - b for a, b in zip(f.hf.parameters(), base.hf.parameters())] for f in finals]
    assert max(d.abs().max().item() for d in deltas[0]) > 0
    for whole, parts in zip(*deltas):
        torch.testing.assert_close(parts, whole, atol=1e-6, rtol=1e-4)
    with pytest.raises(NegolensError, match="micro_batch must divide"):
        GRPORunConfig(products_per_step=2, group_size=4, micro_batch=3)


def test_paired_comparison_pairs_by_dialogue():
    mk = lambda i, r: {"id": i, "metrics": {"reward": r}}  # noqa: E731
    before = [mk("a", -1.0), mk("b", 0.0), mk("c", 0.5)]
    after = [mk("a", 0.0), mk("b", 0.5), mk("c", 1.0), mk("d", 1.0)]
    row = paired_comparison(before, after, metrics=["reward"]).iloc[0]
    assert row["n_pairs"] == 3 and row["diff"] == pytest.approx(2 / 3)
    assert row["diff_ci"][0] > 0 and row["after"] == pytest.approx(0.5)  # only scenarios both played


def test_grpo_runs_under_accelerate_launch_on_two_cpu_processes(tiny_dirs, tmp_path):
    """The multi-GPU command, on CPU: two processes, gathered rollouts, one log, one checkpoint."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "negolens.cli", "train", "grpo",
           "--model", str(tiny_dirs["llama"]), "--source", "builtin", "--steps", "2", "--products-per-step", "1",
           "--group-size", "2", "--max-turns", "4", "--eval-products", "0", "--save-every", "2", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1", "NEGOLENS_DEVICE": "cpu"})  # gloo, not NCCL
    assert res.returncode == 0, res.stderr[-3000:]
    steps = read_steps(out)
    assert [s["step"] for s in steps] == [1, 2] and all(s["dialogues"] == 4 for s in steps)  # 2 processes × 2
    recs = [json.loads(x) for x in (out / "rollouts" / "step00001.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["process"] for r in recs} == {0, 1} and len({r["id"] for r in recs}) == 4
    assert (out / "final" / "negolens_manifest.json").is_file()


def test_quick_preset_changes_only_its_documented_fields():
    import dataclasses

    base, quick = GRPORunConfig(), GRPORunConfig.quick()
    changed = {f.name for f in dataclasses.fields(GRPORunConfig) if getattr(base, f.name) != getattr(quick, f.name)}
    assert changed == {"steps", "eval_products", "max_turns", "save_every"}
    assert (quick.steps, quick.eval_products, quick.max_turns, quick.save_every) == (4, 8, 6, 2)
    assert GRPORunConfig.quick(steps=9).steps == 9


def test_split_scenarios_builtin_train_and_test_are_disjoint_and_seeded():
    from negolens.agents.scenarios import load_scenarios, split_scenarios

    train, test = split_scenarios("builtin", "train"), split_scenarios("builtin", "test")
    assert train and test and {s.id for s in train}.isdisjoint({s.id for s in test})
    assert len(train) + len(test) == len(load_scenarios("builtin"))
    pick = [s.id for s in split_scenarios("builtin", "test", 3, seed=1)]
    assert len(pick) == 3 and set(pick) <= {s.id for s in test}
    assert pick == [s.id for s in split_scenarios("builtin", "test", 3, seed=1)]
    with pytest.raises(NegolensError, match="split must be"):
        split_scenarios("builtin", "dev")


@pytest.mark.needs("data")
def test_split_scenarios_amazon_and_craigslist_are_disjoint():
    from negolens.agents.scenarios import split_scenarios

    for source in ("amazon", "craigslist"):
        train, test = split_scenarios(source, "train"), split_scenarios(source, "test")
        assert train and test and {s.id for s in train}.isdisjoint({s.id for s in test}), source
    held = split_scenarios("amazon", "test", 5, seed=0)
    assert len(held) == 5 and [s.id for s in held] == [s.id for s in split_scenarios("amazon", "test", 5, seed=0)]


def test_run_grpo_trains_then_compares_start_and_final_on_held_out(tiny_dirs, tmp_path):
    from negolens.training import GRPOResult, run_grpo

    cfg = GRPORunConfig(model=str(tiny_dirs["llama"]), source="builtin", steps=1, products_per_step=1, group_size=2,
                        max_turns=2, max_utterance_tokens=6, save_every=1, eval_products=2)
    messages = []
    result = run_grpo(cfg, tmp_path / "run", log=messages.append, progress=False)
    assert isinstance(result, GRPOResult) and result.final == tmp_path / "run" / "final"
    assert [s["step"] for s in result.steps] == [1]
    assert len(result.before) == len(result.after) == 2
    assert [r["id"] for r in result.before] == [r["id"] for r in result.after]  # the same held-out scenarios
    assert result.comparison.set_index("metric").loc["reward", "n_pairs"] == 2
    assert all(r["buyer"]["max_utterance_tokens"] == 6 for r in result.before + result.after)  # played as trained
    assert (tmp_path / "run" / "eval.json").is_file() and "paired" in messages[-1]
    from negolens.agents.scenarios import split_scenarios

    held = {s.id for s in split_scenarios("builtin", "test")}
    assert {r["scenario"]["id"] for r in result.after} <= held


@pytest.mark.parametrize("branch", ["open", "last"])
def test_levers_curriculum_sellers_and_shaping(tiny_dirs, tmp_path, branch):
    """The zopa curriculum trains on mutual-interest products widest-first (narrow: every product,
    narrowest first), a seller list gives whole groups one counterpart each, the stall cost
    changes only the training reward, the deadline is announced, and a branching group's
    dialogues are one dialogue up to its branch turn."""
    from negolens.training.environment import buyer_turns_left, frac_zero_std, shaped_reward
    from negolens.training.grpo import curriculum_order

    scen = load_scenarios("builtin", 6)
    conflict = scen[0].__class__(**{**scen[0].to_dict(), "id": "conflict", "seller_cost": scen[0].buyer_budget + 1})
    order = curriculum_order(scen + [conflict], "zopa")
    assert "conflict" not in [s.id for s in order] and len(order) == len(scen)
    widths = [(s.buyer_budget - s.seller_cost) / s.buyer_budget for s in order]
    assert widths == sorted(widths, reverse=True)
    narrow = curriculum_order(scen + [conflict], "narrow")
    gaps = [abs(s.buyer_budget - s.seller_cost) / s.buyer_budget for s in narrow]
    assert len(narrow) == len(scen) + 1 and narrow[0].id == "conflict" and gaps == sorted(gaps)
    with pytest.raises(NegolensError, match="curriculum"):
        GRPORunConfig(curriculum="hard-first")
    with pytest.raises(NegolensError, match="did you mean 'open'"):
        GRPORunConfig(branch="opn")

    start = str(tiny_dirs["llama"])
    curriculum = "zopa" if branch == "open" else "narrow"  # both ordered curricula reach TRL unshuffled
    order = curriculum_order(scen, curriculum)
    cfg = GRPORunConfig(model=start, steps=1, products_per_step=2, group_size=2, max_turns=4, save_every=1,
                        max_utterance_tokens=6, seller="rule:aggressive,rule:passive", stall_cost=0.1,
                        curriculum=curriculum, announce_turns=True, branch=branch, loss_type="dr_grpo",
                        quit_stalls=branch == "last")
    out = tmp_path / "levers"
    train_grpo(negolens.load(start), cfg, scen, out, progress=False)
    recs = [json.loads(x) for x in (out / "rollouts" / "step00001.jsonl").read_text(encoding="utf-8").splitlines()]
    sellers = [r["seller"]["personality"] for r in recs]
    assert sellers[0] == sellers[1] and sellers[2] == sellers[3] and set(sellers) == {"aggressive", "passive"}
    assert {r["scenario"]["id"] for r in recs} <= {s.id for s in order[:2]}  # the curriculum's first, not shuffled
    for r in recs:
        stalls = sum(t["role"] == "buyer" and t["act"] not in ("offer", "counter", "accept", "quit")
                     for t in r["turns"])
        if cfg.quit_stalls and r["outcome"] == "quit" and r["turns"][-1]["role"] == "buyer":
            stalls += 1 + buyer_turns_left(r)  # counted turn by turn in tests/test_training_shaping.py
        assert r["training_reward"] == pytest.approx(r["metrics"]["reward"] - 0.1 * stalls)
        assert shaped_reward(r, 0.0) == r["metrics"]["reward"]
    step = read_steps(out)[0]
    assert step["frac_reward_zero_std"] == frac_zero_std([r["training_reward"] for r in recs], 2)
    assert step["shaped_reward"] <= step["reward"]
    assert all(t["turns_left"] == 3 - t["index"] for r in recs for t in r["turns"])
    for a, b in (recs[0:2], recs[2:4]):
        k = a["branch_turn"]
        assert k == b["branch_turn"] and k in (0, 2)
        assert a["branch_reached"] == b["branch_reached"] and (k < a["branch_reached"] or k == 0)  # an open turn
        if branch == "last":  # the last open one
            assert k == max([t for t in (0, 2) if t < a["branch_reached"]], default=0)
        assert [t["token_ids"] for t in a["turns"][:k]] == [t["token_ids"] for t in b["turns"][:k]]


def test_branching_groups_share_their_opening_and_differ_from_the_branch_turn(tiny_llama):
    from negolens.training.branching import SharedPrefix, branch_turns

    items = load_scenarios("builtin", 2)
    branch = {items[0].id: 4, items[1].id: 2}
    assert set(branch_turns([s.id for s in items], 6, seed=1).values()) <= {0, 2, 4}

    def play(shared):
        wrap = (lambda a: SharedPrefix(a, branch, salt=1)) if shared else (lambda a: a)
        agents = [wrap(LLMAgent(tiny_llama, role, temperature=1.0, max_utterance_tokens=6))
                  for role in ("buyer", "seller")]
        recs = run_negotiations([s for s in items for _ in range(3)], *agents, RunConfig(max_turns=6, seed=3),
                                progress=False)
        groups = {}
        for r in recs:
            groups.setdefault(r["scenario"]["id"], []).append([(t["act"], t["token_ids"]) for t in r["turns"]])
        return groups

    for sid, group in play(shared=True).items():
        k = branch[sid]
        assert all(turns[:k] == group[0][:k] for turns in group)  # one dialogue up to the branch turn
        after = [turns[k] for turns in group if len(turns) > k]
        assert len(after) < 2 or len({str(x) for x in after}) > 1  # then each samples its own
    plain = play(shared=False)
    assert any(len({str(turns[0]) for turns in group}) > 1 for group in plain.values())  # the control differs


def test_checkpoints_of_a_run_from_an_sft_adapter_load_as_the_trained_policy(tiny_dirs, tmp_path):
    """TRL writes the adapter's base as the model the starting buyer was merged from; negolens
    points every checkpoint at the starting buyer itself, so a checkpoint loads as the policy."""
    from negolens.agents import example_transcripts
    from negolens.training.data import build_examples
    from negolens.training.sft import SFTConfig, train_sft

    base = str(tiny_dirs["llama"])
    model = negolens.load(base)
    sft = train_sft(model, SFTConfig(model=base, steps=1, batch_size=2, eval_examples=0),
                    build_examples(model, example_transcripts(2), "buyer"), [], tmp_path / "sft", progress=False)
    cfg = GRPORunConfig(model=str(sft), steps=1, products_per_step=1, group_size=2, max_turns=2, save_every=1,
                        max_utterance_tokens=4)
    out = tmp_path / "grpo"
    final = train_grpo(negolens.load(str(sft)), cfg, load_scenarios("builtin", 2), out, progress=False)
    for point in (out / "checkpoint-1", final):
        conf = json.loads((point / "adapter_config.json").read_text(encoding="utf-8"))
        assert conf["base_model_name_or_path"] == str(Path(sft).resolve())
    a, b = negolens.load(str(out / "checkpoint-1")), negolens.load(str(final))
    assert all(torch.equal(x, y) for x, y in zip(a.hf.parameters(), b.hf.parameters()))
