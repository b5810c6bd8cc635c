"""Choosing a checkpoint on validation products: what is left out, the rule, the candidates, the CLI."""

import json
import random
import shutil
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
from typer.testing import CliRunner

from negolens.agents.scenarios import split_scenarios
from negolens.errors import NegolensError
from negolens.training.selection import SelectConfig, checkpoint_folders, choose_checkpoint, pick
from negolens.training.validation import conflicting, played_products, validation_products


def _fake_run(folder, scenarios):
    """A GRPO run folder whose rollouts played ``scenarios`` (only the fields selection reads)."""
    (folder / "rollouts").mkdir(parents=True)
    lines = [json.dumps({"id": f"{i:05d}", "scenario": {"id": s.id}}) for i, s in enumerate(scenarios)]
    (folder / "rollouts" / "step00001.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_validation_products_leave_out_every_product_training_played(tmp_path):
    train = split_scenarios("builtin", "train")
    run = _fake_run(tmp_path / "grpo", train[:3])
    played = played_products([run])
    assert played == {s.id for s in train[:3]}
    teacher = {s.id for s in split_scenarios("builtin", "train", 2, seed=7)}
    left = len(train) - len(played | teacher)
    val = validation_products("builtin", left, played, teacher_products=2, teacher_seed=7)
    ids = {s.id for s in val}
    assert len(ids) == left and not ids & (played | teacher)
    assert not ids & {s.id for s in split_scenarios("builtin", "test")}  # never a test product
    assert [s.id for s in validation_products("builtin", 2, played, seed=1)] == \
           [s.id for s in validation_products("builtin", 2, played, seed=1)]
    with pytest.raises(NegolensError, match=f"ask for at most {left}"):
        validation_products("builtin", left + 1, played, teacher_products=2, teacher_seed=7)


def test_pick_prefers_reward_within_the_overshoot_bound_then_the_lowest_overshoot():
    t = pd.DataFrame({"reward": [0.50, 0.40, 0.60, 0.50], "overshoot": [0.01, 0.00, 0.05, 0.02]})
    assert pick(t, 0.02) == 3  # 0 and 3 tie on reward within the bound: the later one
    assert pick(t, 0.0) == 1
    assert pick(t, 1.0) == 2
    none = pd.DataFrame({"reward": [0.9, 0.1, 0.3], "overshoot": [0.10, 0.04, 0.04]})
    assert pick(none, 0.02) == 2


def _model(folder):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}", encoding="utf-8")


def test_checkpoint_folders_expand_a_run_by_step_and_keep_final_once(tmp_path):
    run = tmp_path / "run"
    for name in ("checkpoint-4", "checkpoint-12", "checkpoint-8", "final"):
        _model(run / name)
    (run / "checkpoint-x").mkdir()
    (run / "checkpoint-16").mkdir()  # being written: no model in it yet
    (run / "final" / "negolens_manifest.json").write_text(json.dumps({"config": {"steps": 12}}), encoding="utf-8")
    assert [p.split("/")[-1] for p in checkpoint_folders(run)] == ["checkpoint-4", "checkpoint-8", "final"]
    _model(run / "checkpoint-20")  # an extension under way: final/ is still step 12, so it is not the last
    assert [p.split("/")[-1] for p in checkpoint_folders(run)] == ["checkpoint-4", "checkpoint-8", "final",
                                                                   "checkpoint-20"]
    assert checkpoint_folders(run / "checkpoint-4") == [str(run / "checkpoint-4")]
    assert checkpoint_folders("rule:aggressive") == ["rule:aggressive"]
    with pytest.raises(NegolensError, match="no such checkpoint or run folder"):
        checkpoint_folders(tmp_path / "typo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NegolensError, match="no model and no checkpoint"):
        checkpoint_folders(tmp_path / "empty")


def test_choose_checkpoint_plays_every_candidate_on_the_same_validation_products(tiny_dirs, tmp_path):
    train = split_scenarios("builtin", "train")
    run = _fake_run(tmp_path / "grpo", train[:2])
    cands = (str(tiny_dirs["llama"]), "rule", "rule:aggressive")
    cfg = SelectConfig(candidates=cands, played=(str(run),), source="builtin", products=4, max_turns=4,
                       max_overshoot=0.5)
    out = tmp_path / "select"
    choice = choose_checkpoint(cfg, out, progress=False, device="cpu")
    table = choice.table
    assert list(table.candidate) == list(cands) and (table.n == 4).all()
    assert choice.chosen == cands[pick(table, 0.5)] and table.chosen.sum() == 1
    assert not {s.id for s in choice.scenarios} & {s.id for s in train[:2]}
    files = sorted((out / "candidates").glob("*/dialogues.jsonl"))
    ids = [sorted(json.loads(line)["id"] for line in f.read_text(encoding="utf-8").splitlines()) for f in files]
    assert len(ids) == 3 and ids[0] == ids[1] == ids[2]  # paired: the same products, the same ids
    saved = pd.read_csv(out / "selection.csv")
    assert list(saved.candidate) == list(cands) and saved.reward.tolist() == pytest.approx(table.reward.tolist())
    stamps = [f.stat().st_mtime_ns for f in files]
    again = choose_checkpoint(cfg, out, progress=False, device="cpu")  # a rerun resumes: nothing played again
    assert again.chosen == choice.chosen and again.table.reward.tolist() == table.reward.tolist()
    assert [f.stat().st_mtime_ns for f in files] == stamps
    with pytest.raises(NegolensError):  # other settings into the same folder: refused without overwrite
        choose_checkpoint(SelectConfig(candidates=cands, source="builtin", products=3, max_turns=4), out,
                          progress=False, device="cpu")


def test_a_candidate_run_is_kept_out_of_validation_and_played_as_it_trained(tiny_dirs, tmp_path):
    train = split_scenarios("builtin", "train")
    run = _fake_run(tmp_path / "grpo", train[:5])
    shutil.copytree(tiny_dirs["llama"], run / "checkpoint-2")
    (run / "run.json").write_text(json.dumps({"kind": "grpo", "config": {"max_turns": 4, "announce_turns": False,
                                                                          "max_utterance_tokens": 40}}), encoding="utf-8")
    cfg = SelectConfig(candidates=(str(run),), source="builtin", products=3, max_turns=4)  # no --played
    choice = choose_checkpoint(cfg, progress=False, device="cpu")
    assert choice.chosen == str(run / "checkpoint-2")
    assert not {s.id for s in choice.scenarios} & {s.id for s in train[:5]}
    with pytest.raises(NegolensError, match="max_utterance_tokens=40.*--max-utterance-tokens 40"):
        choose_checkpoint(SelectConfig(candidates=(str(run),), source="builtin", products=3, max_turns=4,
                                       max_utterance_tokens=8), progress=False, device="cpu")


def test_teacher_products_zero_means_every_training_product_as_in_filtered():
    n = len(split_scenarios("builtin", "train"))
    with pytest.raises(NegolensError, match=f"only 0 of the {n} training products"):
        validation_products("builtin", 1, teacher_products=0)
    assert len(validation_products("builtin", n)) == n  # no teacher: every training product is left


def test_select_config_refuses_what_cannot_be_chosen():
    with pytest.raises(NegolensError, match="no candidates"):
        SelectConfig()
    with pytest.raises(NegolensError, match="max_overshoot"):
        SelectConfig(candidates=("rule",), max_overshoot=2.0)
    with pytest.raises(NegolensError, match="products must be at least 1"):
        SelectConfig(candidates=("rule",), products=0)


def test_train_select_cli_prints_the_table_and_the_chosen_folder_last(tmp_path):
    from negolens.cli import app

    args = ["train", "select", "--candidates", "rule,rule:aggressive", "--source", "builtin", "--products", "3",
            "--max-turns", "4", "--out", str(tmp_path / "s")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[-1] in ("rule", "rule:aggressive") and lines[-2].startswith(f"chosen: {lines[-1]}")
    assert (tmp_path / "s" / "selection.csv").is_file()
    bad = subprocess.run([sys.executable, "-m", "negolens.cli", "train", "select", "--candidates", "rule",
                          "--products", "0"], capture_output=True, text=True, encoding="utf-8")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("negolens: error: products must be at least 1")
    assert "Traceback" not in bad.stderr


def _with_conflicts(monkeypatch):
    """The built-in training products, every third one made conflicting (cost a dollar over the
    budget), served as the train split of every source."""
    pool = [replace(s, seller_cost=s.buyer_budget + 1) if i % 3 == 0 else s
            for i, s in enumerate(split_scenarios("builtin", "train"))]

    def fake_split(source, split, n=None, *, data=None, seed=0):
        return list(pool) if n is None else random.Random(seed).sample(pool, n)

    monkeypatch.setattr("negolens.agents.scenarios.split_scenarios", fake_split)
    return pool


def test_all_conflicting_keeps_every_conflicting_product_left_and_fills_up_with_mutual_ones(monkeypatch):
    pool = _with_conflicts(monkeypatch)
    conflict_ids = sorted(s.id for s in pool if conflicting(s))
    mutual_ids = sorted(s.id for s in pool if not conflicting(s))
    played = set(conflict_ids[:3] + mutual_ids[:2])  # training played three conflicting and two mutual products
    left = [s for s in pool if s.id not in played]
    kept = {s.id for s in left if conflicting(s)}
    assert len(kept) == len(conflict_ids) - 3 >= 5
    val = validation_products("builtin", 12, played, all_conflicting=True, seed=3)
    ids = [s.id for s in val]
    assert len(ids) == 12 and kept <= set(ids) and not played & set(ids) and ids == sorted(ids)
    assert sum(map(conflicting, val)) == len(kept)  # the rest are mutual-interest products
    assert [s.id for s in validation_products("builtin", 12, played, all_conflicting=True, seed=3)] == ids
    assert {s.id for s in validation_products("builtin", len(kept), played, all_conflicting=True)} == kept
    uniform = validation_products("builtin", 12, played, seed=3)  # the default: the sample it always was
    assert [s.id for s in uniform] == sorted(s.id for s in random.Random(3).sample(left, 12))
    with pytest.raises(NegolensError, match=f"ask for at least {len(kept)}"):
        validation_products("builtin", len(kept) - 1, played, all_conflicting=True)
    with pytest.raises(NegolensError, match="at least one"):
        validation_products("builtin", 0)


def test_choose_checkpoint_passes_all_conflicting_to_the_validation_set(monkeypatch, tmp_path):
    pool = _with_conflicts(monkeypatch)
    cfg = SelectConfig(candidates=("rule",), source="builtin", products=len(pool) // 3 + 2, all_conflicting=True,
                       max_turns=2)
    choice = choose_checkpoint(cfg, tmp_path / "s", progress=False)
    assert {s.id for s in choice.scenarios} >= {s.id for s in pool if conflicting(s)}
    recorded = json.loads((tmp_path / "s" / "run.json").read_text(encoding="utf-8"))["config"]
    assert recorded["all_conflicting"] is True
    plain = SelectConfig(candidates=("rule",), source="builtin", products=4, max_turns=2)
    choose_checkpoint(plain, tmp_path / "u", progress=False)
    assert "all_conflicting" not in json.loads((tmp_path / "u" / "run.json").read_text(encoding="utf-8"))["config"]
