"""Reward-filtered fine-tuning (RAFT / expert iteration) on tiny models: which dialogues are kept,
which tokens are trained, what is refused (held-out products, dialogues no LLM buyer played)."""

import json
import math

import pytest
import torch

import negolens
from negolens.agents.llm_agent import LLMAgent
from negolens.agents.rule_agent import RuleAgent
from negolens.agents.runner import RunConfig, run_negotiations
from negolens.agents.scenarios import load_scenarios, split_scenarios
from negolens.errors import NegolensError
from negolens.training.imitation import HoldFloor


def _records(model, n=4, scenarios=None, **kw):
    buyer = LLMAgent(model, "buyer", temperature=1.0, max_utterance_tokens=12)
    items = scenarios if scenarios is not None else split_scenarios("builtin", "train", n)
    return run_negotiations(items, buyer, RuleAgent("seller"), RunConfig(max_turns=6, seed=3, **kw), progress=False)


def test_reward_filtered_examples_train_exactly_the_sampled_tokens_of_the_best_rollouts(tiny_llama, tmp_path):
    """read_rollouts -> best_rollouts (the paper's reward, not the shaped one) -> rollout_examples,
    whose labels are the buyer's sampled ids and nothing else; a folder without rollouts is an error."""
    from negolens.training.data import IGNORE
    from negolens.training.filtered import best_rollouts, read_rollouts, rollout_examples

    recs = _records(tiny_llama, n=4)
    for k, r in enumerate(recs):
        r["metrics"]["reward"], r["training_reward"] = [0.5, -1.0, 0.0, 0.2][k], 9.0
    (tmp_path / "run" / "rollouts").mkdir(parents=True)
    (tmp_path / "run" / "rollouts" / "step00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    best = best_rollouts(read_rollouts(tmp_path / "run"), min_reward=0.0)
    assert [r["id"] for r in best] == [recs[0]["id"], recs[3]["id"]]
    examples = rollout_examples(tiny_llama, best)
    for rec, ex in zip(best, examples):
        sampled = [i for t in rec["turns"] if t["role"] == "buyer" for i, f in zip(t["token_ids"], t["sampled"]) if f]
        assert [t for t in ex.labels if t != IGNORE] == sampled and ex.role == "buyer"
        assert len(ex.labels) == len(ex.input_ids)
    assert rollout_examples(tiny_llama, best, max_tokens=8) == []  # too long: dropped, never cut
    with pytest.raises(NegolensError, match="negolens negotiate"):
        read_rollouts(tmp_path)


def test_train_filtered_verb_trains_the_start_model_on_the_kept_rollouts(tiny_dirs, tiny_llama, tmp_path, capsys):
    """``negolens train filtered``: one call of run_filtered; the checkpoint's manifest says which
    rollouts were kept, its weights moved, a rerun does nothing, a threshold nobody clears is a
    one-line error that gives the best reward there was."""
    from typer.testing import CliRunner

    from negolens.cli import app

    recs = _records(tiny_llama, n=4)
    for k, r in enumerate(recs):
        r["metrics"]["reward"] = [0.5, -1.0, 0.0, 0.2][k]
    (tmp_path / "run" / "rollouts").mkdir(parents=True)
    (tmp_path / "run" / "rollouts" / "step00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    args = ["train", "filtered", "--model", str(tiny_dirs["llama"]), "--runs", str(tmp_path / "run"),
            "--min-reward", "0.1", "--steps", "2", "--batch-size", "1", "--lr", "1e-2", "--out", str(tmp_path / "out")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "4 rollouts, 2 with reward > 0.1" in first.output
    manifest = json.loads((tmp_path / "out" / "negolens_manifest.json").read_text(encoding="utf-8"))
    assert manifest["filtered"] == {"runs": [str(tmp_path / "run")], "teacher": None, "role": "buyer",
                                    "min_reward": 0.1, "rollouts": 4, "kept": 2}
    trained = negolens.load(str(tmp_path / "out"))
    assert any(not torch.equal(a.cpu(), b.cpu()) for a, b in zip(trained.hf.parameters(), tiny_llama.hf.parameters()))
    weights = next((tmp_path / "out").glob("*.safetensors"))
    stamp = weights.stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and weights.stat().st_mtime_ns == stamp  # the same run: not trained again
    from negolens.cli import main

    with pytest.raises(SystemExit) as done:
        main([a if a != "0.1" else "0.9" for a in args[:-1]] + [str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and err[-1].startswith("negolens: error: none of the 4 rollouts")
    assert "the best: 0.5" in err[-1] and "--min-reward" in err[-1] and "Traceback" not in "".join(err)


def test_negotiation_runs_on_training_products_are_filtered_like_rollouts(tiny_dirs, tiny_llama, tmp_path, capsys):
    """Expert iteration's sampling half: ``negolens negotiate`` output (dialogues.jsonl) is read
    like a GRPO run's rollouts and trains the buyer; a run that touched held-out products, or
    dialogues no LLM buyer played, are one-line errors that say what to do."""
    from negolens.cli import main
    from negolens.training.filtered import heldout_dialogues, read_rollouts

    train_recs = _records(tiny_llama, n=4)
    for k, r in enumerate(train_recs):
        r["metrics"]["reward"] = [0.5, -1.0, 0.4, 0.2][k]
    (tmp_path / "neg").mkdir()
    (tmp_path / "neg" / "dialogues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_recs), encoding="utf-8")
    assert [r["id"] for r in read_rollouts(tmp_path / "neg")] == [r["id"] for r in train_recs]
    assert heldout_dialogues(train_recs) == []
    assert heldout_dialogues([{"scenario": {"id": "x", "source": "agreemate"}}]) == []  # no split of ours
    args = ["train", "filtered", "--model", str(tiny_dirs["llama"]), "--runs", str(tmp_path / "neg"),
            "--min-reward", "0.3", "--steps", "1", "--batch-size", "1", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "out" / "negolens_manifest.json").read_text(encoding="utf-8"))
    assert manifest["filtered"]["kept"] == 2 and manifest["filtered"]["rollouts"] == 4

    held = _records(tiny_llama, scenarios=split_scenarios("builtin", "test", 1))
    held[0]["metrics"]["reward"] = 0.9
    assert [r["id"] for r in heldout_dialogues(train_recs + held)] == [held[0]["id"]]
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "dialogues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_recs + held), encoding="utf-8")
    with pytest.raises(SystemExit) as done:
        main(args[:5] + [str(tmp_path / "mixed")] + args[6:-1] + [str(tmp_path / "out2")])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and "played on held-out products" in err[-1] and "--split train" in err[-1]
    assert not (tmp_path / "out2" / "negolens_manifest.json").exists()

    rule = run_negotiations(split_scenarios("builtin", "train", 2), RuleAgent("buyer"), RuleAgent("seller"),
                            RunConfig(max_turns=6, seed=3), progress=False)
    for r in rule:
        r["metrics"]["reward"] = 0.5
    (tmp_path / "rule").mkdir()
    (tmp_path / "rule" / "dialogues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rule), encoding="utf-8")
    with pytest.raises(SystemExit) as done:
        main(args[:5] + [str(tmp_path / "rule")] + args[6:-1] + [str(tmp_path / "out3")])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and "no token_ids" in err[-1] and "LLMAgent" in err[-1]
    assert "Traceback" not in "".join(err)


def test_a_scripted_teachers_turns_become_the_tokens_the_student_would_have_sampled(tiny):
    """teacher_dialogues -> imitate: every buyer turn's ids read back as the words and action line
    the environment shows (no re-tokenised action line: ``$1250`` stays ``$1250``), the trained
    tokens are the ones the student's decoder would have chosen, and the teacher never pays above
    its budget, in whole dollars the decoder can write."""
    from negolens.agents.protocol import Act
    from negolens.training.data import IGNORE
    from negolens.training.filtered import rollout_examples
    from negolens.training.imitation import imitate, teacher_dialogues

    played = teacher_dialogues(split_scenarios("builtin", "train", 6), "rule:aggressive", max_turns=8)
    assert all(r["metrics"]["overshoot"] == 0 for r in played) and any(r["outcome"] == "deal" for r in played)
    taught = imitate(tiny, played, max_utterance_tokens=40)
    decoder = LLMAgent(tiny, "buyer", max_utterance_tokens=40).decoder
    stops = set(tiny.stop_ids())
    for rec in taught:
        for t in (t for t in rec["turns"] if t["role"] == "buyer"):
            price = f" ${int(t['price'])}" if t["act"] in ("offer", "counter") else ""
            assert t["act"] != "accept" or t["price"] <= rec["scenario"]["buyer_budget"]
            text = tiny.tokenizer.decode([i for i in t["token_ids"] if i not in stops])
            assert text == f"{t['utterance']}\nACTION: {t['act']}{price}"
            chosen = [i for i, f in zip(t["token_ids"], t["sampled"]) if f]
            assert decoder.act_ids[Act(t["act"])][0] in chosen and decoder.action_prefix[1] not in chosen
    for rec, ex in zip(taught, rollout_examples(tiny, taught)):
        # every chosen id is trained, the end-of-turn token that closed a price too (the deadline
        # note opens the seller's reply, so it does not come between the last digit and that token)
        chosen = [i for t in rec["turns"] if t["role"] == "buyer" for i, f in zip(t["token_ids"], t["sampled"]) if f]
        assert [t for t in ex.labels if t != IGNORE] == chosen
        priced = [t for t in rec["turns"] if t["role"] == "buyer" and t["act"] in ("offer", "counter")]
        assert sum(i in stops for i in chosen) >= len(priced) > 0
    firm = teacher_dialogues(split_scenarios("builtin", "train", 6), "target", max_turns=8)
    for rec in firm:  # the firm teacher names its target in whole dollars, and accepts only at or below it
        target = rec["scenario"]["buyer_target"]
        assert {t["price"] for t in rec["turns"] if t["role"] == "buyer" and t["act"] != "accept"} == {int(target)}
        assert rec["deal_price"] is None or rec["deal_price"] <= target
    with pytest.raises(NegolensError, match="cap of 3"):
        imitate(tiny, played[:1], max_utterance_tokens=3)
    with pytest.raises(NegolensError, match="must be a rule agent"):
        teacher_dialogues(split_scenarios("builtin", "train", 1), "smollm2-135m-instruct")


def test_the_deadline_buyer_takes_a_price_within_its_budget_in_its_last_turn_only():
    """``target:deadline`` plays as ``target`` until its last turn, then accepts the seller's
    price when it is within the budget (and names its target when it is not)."""
    from dataclasses import replace

    from negolens.training.imitation import teacher_dialogues

    base = split_scenarios("builtin", "train", 6)  # targets under the cost: the seller never takes them
    items = [replace(s, buyer_target=s.seller_cost - 1) for s in base]
    items += [replace(s, id=f"{s.id}-tight", buyer_budget=s.seller_cost) for s in items]  # its last price is above
    firm = teacher_dialogues(items, "target", max_turns=8)
    late = teacher_dialogues(items, "target:deadline", max_turns=8)
    taken = kept = 0
    for a, b in zip(firm, late):
        s = b["scenario"]
        assert [t["act"] for t in a["turns"][:6]] == [t["act"] for t in b["turns"][:6]]  # the same until turn 6
        last = b["turns"][6]
        if b["turns"][5]["price"] <= s["buyer_budget"]:
            taken += 1
            assert last["act"] == "accept" and b["deal_price"] == b["turns"][5]["price"]
        else:
            kept += 1
            assert last["act"] == "counter" and last["price"] == math.floor(s["buyer_target"])
        assert b["metrics"]["overshoot"] == 0.0
    assert taken and kept and late[0]["buyer"]["teacher"]["deadline"] is True


def test_the_floor_seller_accepts_exactly_the_offers_at_or_above_its_minimum():
    """``floor``: every seller turn facing an offer at or above the cost accepts it, every other
    names the target (whole dollars); a conceding rule buyer reaches a cost just under its budget late."""
    from dataclasses import replace

    from negolens.training.imitation import teacher_dialogues

    items = split_scenarios("builtin", "train", 6)
    items += [replace(s, id=f"{s.id}-dear", seller_cost=s.buyer_budget - 1) for s in items]
    played = teacher_dialogues(items, "floor", role="seller", buyer="rule", max_turns=8)
    accepts = counters = 0
    for rec in played:
        s, standing = rec["scenario"], None
        for t in rec["turns"]:
            if t["role"] == "buyer":
                standing = t["price"] if t["act"] in ("offer", "counter") else standing
            elif t["act"] == "accept":
                accepts += 1
                assert standing >= s["seller_cost"] and rec["deal_price"] == standing
            else:
                counters += 1
                assert standing is None or standing < s["seller_cost"]
                assert t["price"] == math.ceil(s["seller_target"]) and t["act"] in ("offer", "counter")
    assert accepts and counters
    # the counterpart speaks as a cloned buyer would (short words, whole dollars) only when asked
    own = {t["utterance"][:12] for r in played for t in r["turns"] if t["role"] == "buyer"}
    short = teacher_dialogues(items, "floor", role="seller", buyer="target", max_turns=8, counterpart_words="short")
    words = {(t["utterance"], t["price"] == int(t["price"])) for r in short for t in r["turns"] if t["role"] == "buyer"}
    assert own == {"I can offer "} and words == {("How about this?", True)}
    with pytest.raises(NegolensError, match="counterpart_words is own or short"):
        teacher_dialogues(items, "floor", role="seller", counterpart_words="clone")
    with pytest.raises(NegolensError, match="HoldFloor is a seller strategy"):
        HoldFloor("buyer")
    with pytest.raises(NegolensError, match="buyer of teacher dialogues must be a rule agent"):
        teacher_dialogues(split_scenarios("builtin", "train", 1), "floor", role="buyer")


def _teacher_args(model_dir, out, *extra) -> list[str]:
    """`train filtered` on builtin teacher dialogues, one step: the model, ``extra`` options, then --out last."""
    return ["train", "filtered", "--model", str(model_dir), *extra, "--teacher-scenarios", "builtin",
            "--max-utterance-tokens", "40", "--min-reward", "-1", "--steps", "1", "--batch-size", "1",
            "--out", str(out)]


def _train(args, capsys):
    """Run the verb; it must exit 0. Returns what it printed."""
    from negolens.cli import main

    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    assert done.value.code == 0, captured.err
    return captured


def test_train_filtered_with_a_teacher_trains_on_its_dialogues(tiny_dirs, tmp_path, capsys):
    """``negolens train filtered --teacher target`` needs no runs: the teacher plays
    training products, the student is trained on them, the manifest says so; without runs or a
    teacher the verb says to pass one."""
    from negolens.cli import main

    args = _teacher_args(tiny_dirs["qwen2"], tmp_path / "out", "--teacher", "target", "--teacher-products", "3")
    captured = _train(args, capsys)
    assert "teacher target (buyer): 3 dialogues on training products" in captured.out
    manifest = json.loads((tmp_path / "out" / "negolens_manifest.json").read_text(encoding="utf-8"))
    assert manifest["filtered"]["teacher"] == "target" and manifest["filtered"]["kept"] == 3
    with pytest.raises(SystemExit) as done:
        main(args[:4] + args[6:-1] + [str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and "--runs" in err[-1] and "--teacher" in err[-1]
    from negolens.training import FilteredConfig

    with pytest.raises(NegolensError, match="teacher_products must be >= 0"):
        FilteredConfig(teacher="target", teacher_products=-1)
    with pytest.raises(NegolensError, match="teacher_counterpart_words"):
        FilteredConfig(teacher="target", teacher_counterpart_words="clones")
    with pytest.raises(NegolensError, match="must be a rule agent"):
        FilteredConfig(teacher="smollm2-135m-instruct")


def test_a_seller_is_cloned_from_a_rule_seller_in_its_own_tokens(tiny):
    """role="seller": the rule seller is the teacher, the firm buyer its counterpart; the seller's
    turns carry the student's decoder ids (words and action line as the environment shows them),
    its prices are whole dollars never under its cost, and the labels are the seller's chosen ids."""
    from negolens.training.data import IGNORE
    from negolens.training.filtered import rollout_examples
    from negolens.training.imitation import imitate, teacher_dialogues

    played = teacher_dialogues(split_scenarios("builtin", "train", 6), "rule", role="seller", max_turns=8)
    assert all(r["buyer"]["strategy"] == "target" and r["seller"]["kind"] == "teacher" for r in played)
    assert any(r["outcome"] == "deal" for r in played)
    taught = imitate(tiny, played, role="seller", max_utterance_tokens=40)
    stops = set(tiny.stop_ids())
    for rec, ex in zip(taught, rollout_examples(tiny, taught, role="seller")):
        cost, chosen = rec["scenario"]["seller_cost"], []
        for t in rec["turns"]:
            if t["role"] == "buyer":
                assert t["token_ids"] is None  # only the student's side is replayed
                continue
            price = f" ${int(t['price'])}" if t["act"] in ("offer", "counter") else ""
            assert t["price"] is None or t["price"] >= cost  # an accepted price is the buyer's, in cents
            assert not price or t["price"] == int(t["price"])
            assert tiny.tokenizer.decode([i for i in t["token_ids"] if i not in stops]) == (
                f"{t['utterance']}\nACTION: {t['act']}{price}")
            chosen += [i for i, f in zip(t["token_ids"], t["sampled"]) if f]  # the price's end-of-turn too
        assert [t for t in ex.labels if t != IGNORE] == chosen and chosen


def test_train_filtered_role_seller_trains_a_seller_and_refuses_what_it_cannot_use(tiny_dirs, tmp_path, capsys):
    from negolens.training import FilteredConfig

    captured = _train(_teacher_args(tiny_dirs["llama"], tmp_path / "seller", "--role", "seller", "--teacher", "rule",
                                    "--teacher-products", "2"), capsys)
    assert "teacher rule (seller): 2 dialogues on training products, deal rate" in captured.out
    manifest = json.loads((tmp_path / "seller" / "negolens_manifest.json").read_text(encoding="utf-8"))
    assert manifest["filtered"]["role"] == "seller" and manifest["config"]["role"] == "seller"
    with pytest.raises(NegolensError, match="teacher dialogues only"):
        FilteredConfig(role="seller", runs=("results/grpo",), teacher="rule")
    with pytest.raises(NegolensError, match="seller of teacher dialogues must be a rule agent"):
        FilteredConfig(role="seller", teacher="target")
    with pytest.raises(NegolensError, match="buyer of teacher dialogues must be a rule agent"):
        FilteredConfig(role="seller", teacher="rule", teacher_buyer="rule:begging")
    with pytest.raises(NegolensError, match="role"):
        FilteredConfig(role="sellr", teacher="rule")
