"""GRPO buyer on tiny models: multi-turn masks, a real TRL step, checkpoints, resume, evaluation."""

import json

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
from negolens.training.rollouts import _generated_text, buyer_sequence, step_stats


def _records(model, n=4, **kw):
    buyer = LLMAgent(model, "buyer", temperature=1.0, max_utterance_tokens=12)
    return run_negotiations(load_scenarios("builtin", n), buyer, RuleAgent("seller"),
                            RunConfig(max_turns=6, seed=3, **kw), progress=False)


def test_env_mask_covers_exactly_the_buyers_own_tokens(tiny_llama):
    recs = _records(tiny_llama)
    tok = tiny_llama.tokenizer
    stops = set(tiny_llama.stop_ids())
    for rec in recs:
        prompt, completion, mask = buyer_sequence(tiny_llama, rec)
        assert len(completion) == len(mask) and mask[0] == 1  # the completion starts with the buyer's first reply
        assert "Write your first message" in tok.decode(prompt)
        own = [t for t, m in zip(completion, mask) if m and t not in stops]
        text = tok.decode(own)
        for turn in rec["turns"]:
            if turn["role"] == "buyer":
                assert _generated_text(turn).replace(" ", "") in text.replace(" ", "")
            elif turn["utterance"]:
                assert turn["utterance"].replace(" ", "") not in text.replace(" ", "")
        n_buyer = sum(t["role"] == "buyer" for t in rec["turns"])
        assert sum(1 for t, m in zip(completion, mask) if m and t in stops) == n_buyer  # each turn's end token
        assert "blocked" not in text


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
    assert len((out / "rollouts" / "step00001.jsonl").read_text().splitlines()) == 4
    assert (out / "checkpoint-2").is_dir()
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert "negotiation/reward" in state["log_history"][0]
    trained, base = negolens.load(final), negolens.load(start)
    delta = max((a - b).abs().max().item() for a, b in zip(trained.hf.parameters(), base.hf.parameters()))
    assert delta > 0  # the adapter learned something and merges on load
    cfg.steps = 3
    final = train_grpo(negolens.load(start), cfg, scen, out, progress=False)
    manifest = json.loads((final / "negolens_manifest.json").read_text())
    assert manifest["resumed_from"].endswith("checkpoint-2")
    assert [s["step"] for s in read_steps(out)] == [1, 2, 3]


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
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"})  # gloo, not NCCL
    assert res.returncode == 0, res.stderr[-3000:]
    steps = read_steps(out)
    assert [s["step"] for s in steps] == [1, 2] and all(s["dialogues"] == 4 for s in steps)  # 2 processes × 2
    recs = [json.loads(x) for x in (out / "rollouts" / "step00001.jsonl").read_text().splitlines()]
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


def test_split_scenarios_amazon_and_craigslist_are_disjoint():
    from negolens.agents.scenarios import split_scenarios
    from negolens.paths import data_dir

    if data_dir() is None:
        pytest.skip("no data directory")
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
    assert (tmp_path / "run" / "eval.json").is_file() and "paired" in messages[-1]
    from negolens.agents.scenarios import split_scenarios

    held = {s.id for s in split_scenarios("builtin", "test")}
    assert {r["scenario"]["id"] for r in result.after} <= held
