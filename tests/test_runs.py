"""Runs know what they are: an output folder resumes only the run that made it (negolens.runs).

Each case checks that nothing from an earlier run is reported as the new one: another run into
the same folder is refused with the differing settings named (and its files left untouched),
``overwrite`` replaces it, and a rerun with the same settings resumes or does nothing.
"""

import json
import os
import sys

import pytest
from typer.testing import CliRunner

import negolens
from negolens.agents import load_scenarios, negotiate, read_records
from negolens.cli import app
from negolens.errors import NegolensError
from negolens.runs import (check_resume, differences, model_fingerprint, read_run, start_run,
                           write_run)


# -- the mechanism ------------------------------------------------------------------------------
def test_check_resume_new_same_other_and_overwrite(tmp_path):
    out = tmp_path / "run"
    assert start_run(out, {"seed": 0, "max_turns": 4}, kind="demo", owns=("out.txt",)) is False
    (out / "out.txt").write_text("old", encoding="utf-8")
    (out / "notes.txt").write_text("the user's own file", encoding="utf-8")
    assert check_resume(out, {"seed": 0, "max_turns": 4}, kind="demo", owns=("out.txt",)) is True
    with pytest.raises(NegolensError) as err:
        check_resume(out, {"seed": 1, "max_turns": 10}, kind="demo", owns=("out.txt",))
    msg = str(err.value)
    assert "max_turns=4, seed=0; this run has max_turns=10, seed=1" in msg and "--overwrite" in msg
    assert "\n" not in msg
    with pytest.raises(NegolensError, match="holds a demo run, not a other run"):
        check_resume(out, {"seed": 0, "max_turns": 4}, kind="other", owns=("out.txt",))
    assert check_resume(out, {"seed": 1}, overwrite=True, kind="demo", owns=("out.txt",)) is False
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only what the run owned is gone


def test_outputs_without_run_json_and_files_are_refused(tmp_path):
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "dialogues.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(NegolensError, match="without run.json"):
        check_resume(tmp_path / "legacy", {"seed": 0}, kind="negotiate", owns=("dialogues.jsonl",))
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "readme.txt").write_text("x", encoding="utf-8")  # nothing a run of this kind writes: a new folder
    assert check_resume(tmp_path / "unrelated", {"seed": 0}, kind="negotiate", owns=("dialogues.jsonl",)) is False
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    with pytest.raises(NegolensError, match="is a file, not a folder"):
        check_resume(tmp_path / "a-file", {"seed": 0})


def test_fingerprint_follows_content_not_location(tmp_path):
    import shutil

    a = tmp_path / "a"
    a.mkdir()
    (a / "config.json").write_text("{}", encoding="utf-8")
    (a / "model.safetensors").write_bytes(b"\0" * 1000)
    shutil.copytree(a, tmp_path / "b")
    assert model_fingerprint(a) == model_fingerprint(tmp_path / "b")
    (a / "model.safetensors").write_bytes(b"\1" * 1000)
    assert model_fingerprint(a) != model_fingerprint(tmp_path / "b")
    write_run(a, {"x": 1}, kind="demo")  # run.json is not part of the model
    assert read_run(a).kind == "demo" and model_fingerprint(a) == model_fingerprint(a)
    assert differences({"a": [1, 2]}, {"a": (1, 2)}) == []


def test_runs_module_examples_run():
    import doctest

    import negolens.runs

    result = doctest.testmod(negolens.runs, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5 and result.failed == 0


# -- negotiate ----------------------------------------------------------------------------------
def test_negotiate_cli_does_not_mix_two_runs_in_one_folder(tmp_path):
    out = str(tmp_path / "neg")
    run = CliRunner()
    first = run.invoke(app, ["negotiate", "--buyer", "rule", "--n", "4", "--max-turns", "4", "--out", out])
    assert first.exit_code == 0, first.output
    before = (tmp_path / "neg" / "dialogues.jsonl").read_bytes()
    summary = (tmp_path / "neg" / "summary.csv").read_bytes()
    other = ["negotiate", "--buyer", "rule:aggressive", "--seller", "rule:passive", "--n", "4", "--max-turns", "10",
             "--out", out]
    res = run.invoke(app, other)
    assert res.exit_code != 0 and isinstance(res.exception, NegolensError)
    msg = str(res.exception)
    assert "max_turns=4" in msg and "max_turns=10" in msg and "buyer.personality=aggressive" in msg
    assert "deal" not in res.output  # no metrics of the old run printed as the new one's
    assert (tmp_path / "neg" / "dialogues.jsonl").read_bytes() == before
    assert (tmp_path / "neg" / "summary.csv").read_bytes() == summary
    seed = run.invoke(app, ["negotiate", "--buyer", "rule", "--n", "4", "--max-turns", "4", "--seed", "1", "--out", out])
    assert isinstance(seed.exception, NegolensError) and "seed=0" in str(seed.exception)
    assert (tmp_path / "neg" / "dialogues.jsonl").read_bytes() == before  # another seed: nothing appended
    again = run.invoke(app, other + ["--overwrite"])
    assert again.exit_code == 0, again.output
    recs = read_records(tmp_path / "neg" / "dialogues.jsonl")
    assert len(recs) == 4 and {r["run"]["max_turns"] for r in recs} == {10}
    assert {r["buyer"]["personality"] for r in recs} == {"aggressive"}
    assert {r["seller"]["personality"] for r in recs} == {"passive"}
    assert read_run(tmp_path / "neg").config["max_turns"] == 10


def test_negotiate_cli_rerun_resumes_and_says_so(tmp_path):
    out = tmp_path / "neg"
    args = ["negotiate", "--buyer", "rule", "--n", "4", "--max-turns", "4", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    lines = (out / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()
    (out / "dialogues.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20], encoding="utf-8")  # killed mid-write
    res = CliRunner().invoke(app, args + ["--batch-size", "1"])  # a smaller batch still resumes
    assert res.exit_code == 0, res.output
    assert "2 of 4 dialogues were already in" in res.output
    recs = read_records(out / "dialogues.jsonl")
    assert len(recs) == 4 and len({r["id"] for r in recs}) == 4
    res = CliRunner().invoke(app, args)
    assert "4 of 4 dialogues were already in" in res.output and "nothing new to play" in res.output
    assert len((out / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()) == 4


def test_negotiate_library_refuses_other_settings_and_overwrites(tmp_path):
    items = load_scenarios("builtin", 4)
    out = tmp_path / "neg"
    first = negotiate("rule", "rule", items, max_turns=4, out=out, progress=False)
    assert len(first) == 4
    with pytest.raises(NegolensError, match="max_turns=4.*max_turns=10"):
        negotiate("rule:aggressive", "rule:passive", items, max_turns=10, out=out, progress=False)
    with pytest.raises(NegolensError, match="scenarios="):
        negotiate("rule", "rule", load_scenarios("builtin", 4, seed=1), max_turns=4, out=out, progress=False)
    assert negotiate("rule", "rule", items, max_turns=4, out=out, progress=False) == first  # same run: resumed
    new = negotiate("rule:aggressive", "rule:passive", items, max_turns=10, out=out, progress=False, overwrite=True)
    assert len(new) == 4 and {r["run"]["max_turns"] for r in new} == {10}
    assert len(read_records(out / "dialogues.jsonl")) == 4
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(NegolensError, match="is a file"):
        negotiate("rule", "rule", items, out=tmp_path / "file", progress=False)


# -- SFT ----------------------------------------------------------------------------------------
def test_train_sft_out_a_file_fails_with_exit_2_before_training(tiny_dirs, tmp_path, monkeypatch, capsys):
    from negolens.cli import main

    target = tmp_path / "taken"
    target.write_text("not a folder", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["negolens", "train", "sft", "--model", str(tiny_dirs["llama"]), "--steps", "2",
                                      "--out", str(target)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("negolens: error: --out") and "is a file" in err and len(err.splitlines()) == 1
    assert "training examples" not in captured.out  # failed before any data or model work
    assert target.read_text(encoding="utf-8") == "not a folder"


def test_train_sft_rerun_is_a_no_op_and_other_settings_are_refused(tiny_dirs, tmp_path):
    from negolens.agents import example_transcripts
    from negolens.training import SFTConfig, build_examples, train_sft

    base = negolens.load(tiny_dirs["llama"])
    data = build_examples(base, example_transcripts(4), "buyer")
    cfg = SFTConfig(model=str(tiny_dirs["llama"]), steps=2, batch_size=2, eval_every=2)
    out = train_sft(base, cfg, data, data[:2], tmp_path / "sft", progress=False)
    manifest = (out / "negolens_manifest.json").read_bytes()
    weights = (out / "adapter_model.safetensors").stat().st_mtime_ns
    assert train_sft(base, cfg, data, data[:2], out, progress=False) == out
    assert (out / "negolens_manifest.json").read_bytes() == manifest  # not trained again
    assert (out / "adapter_model.safetensors").stat().st_mtime_ns == weights
    with pytest.raises(NegolensError, match="steps=2; this run has steps=3"):
        train_sft(base, SFTConfig(model=cfg.model, steps=3, batch_size=2, eval_every=2), data, data[:2], out,
                  progress=False)
    with pytest.raises(NegolensError, match="train_examples="):
        train_sft(base, cfg, data[:3], data[:2], out, progress=False)


def _fake_craigslist(root, n=6):
    """A data directory with ``n`` Craigslist-format dialogues per file (no real data needed)."""
    folder = root / "craigslist_bargains"
    folder.mkdir(parents=True)
    lines = []
    for i in range(n):
        price = 100.0 + 10 * i
        lines.append(json.dumps({
            "agent_info": {"Bottomline": ["None", "None"], "Role": ["buyer", "seller"], "Target": [price * 0.8, price]},
            "agent_turn": [0, 1, 0, 1],
            "dialogue_acts": {"intent": ["init-price", "counter-price", "offer", "accept"],
                              "price": [price * 0.7, price * 0.95, price * 0.85, -1.0]},
            "utterance": [f"Would you take ${price * 0.7:.0f}?", f"I can do ${price * 0.95:.0f}.", "", ""],
            "items": {"Category": ["bike", "bike"], "Images": ["", ""], "Price": [price, price],
                      "Description": ["A bike", "A bike"], "Title": [f"Bike {i}", f"Bike {i}"]}}))
    for name in ("test.jsonl", "validation_dev.jsonl"):
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_run_sft_finished_rerun_logs_already_trained(tiny_dirs, tmp_path):
    from negolens.training import SFTConfig, run_sft

    data = _fake_craigslist(tmp_path / "data")
    cfg = SFTConfig(model=str(tiny_dirs["llama"]), steps=2, batch_size=2, eval_every=2, train_dialogues=4,
                    eval_examples=2)
    first = run_sft(cfg, tmp_path / "sft", data=data, progress=False)
    manifest = (first.checkpoint / "negolens_manifest.json").read_bytes()
    messages = []
    again = run_sft(cfg, tmp_path / "sft", data=data, progress=False, log=messages.append)
    assert messages and messages[0].startswith("already trained:") and len(messages) == 1
    assert again.manifest == first.manifest and (first.checkpoint / "negolens_manifest.json").read_bytes() == manifest
    with pytest.raises(NegolensError, match="lr="):
        run_sft(SFTConfig(model=cfg.model, steps=2, batch_size=2, eval_every=2, train_dialogues=4, eval_examples=2,
                          lr=1e-3), tmp_path / "sft", data=data, progress=False)


# -- GRPO ---------------------------------------------------------------------------------------
def test_grpo_rerun_is_a_no_op_and_more_steps_extend_the_run(tiny_dirs, tmp_path):
    from negolens.training import GRPORunConfig, run_grpo

    out = tmp_path / "grpo"
    cfg = GRPORunConfig(model=str(tiny_dirs["llama"]), source="builtin", steps=1, products_per_step=1, group_size=2,
                        max_turns=2, max_utterance_tokens=6, save_every=1, eval_products=2)
    first = run_grpo(cfg, out, progress=False)
    manifest = (out / "final" / "negolens_manifest.json").read_bytes()
    weights = (out / "final" / "adapter_model.safetensors").stat().st_mtime_ns
    evaluated = read_run(out / "eval-final").models[str(out / "final")]
    start_dialogues = (out / "eval-start" / "dialogues.jsonl").read_bytes()
    assert evaluated == model_fingerprint(out / "final")

    messages = []
    again = run_grpo(cfg, out, progress=False, log=messages.append)
    assert any(m.startswith("already trained:") for m in messages)
    assert not (out / "checkpoint-2").exists() and [s["step"] for s in again.steps] == [1]
    assert (out / "final" / "negolens_manifest.json").read_bytes() == manifest  # final/ untouched
    assert (out / "final" / "adapter_model.safetensors").stat().st_mtime_ns == weights
    assert [r["turns"] for r in again.after] == [r["turns"] for r in first.after]

    with pytest.raises(NegolensError, match="lr=5e-05; this run has lr=0.001"):
        run_grpo(GRPORunConfig(**{**cfg.__dict__, "lr": 1e-3}), out, progress=False)

    messages = []
    longer = run_grpo(GRPORunConfig(**{**cfg.__dict__, "steps": 2}), out, progress=False, log=messages.append)
    assert any("resuming from" in m and "checkpoint-1" in m for m in messages)
    final = json.loads((out / "final" / "negolens_manifest.json").read_text(encoding="utf-8"))
    assert final["config"]["steps"] == 2 and [s["step"] for s in final["steps"]] == [1, 2]
    assert final["resumed_from"].endswith("checkpoint-1")
    # the held-out evaluation describes the new final model, not the one-step model
    now = model_fingerprint(out / "final")
    assert now != evaluated and read_run(out / "eval-final").models[str(out / "final")] == now
    assert len(longer.after) == 2 and (out / "eval-start" / "dialogues.jsonl").read_bytes() == start_dialogues

    with pytest.raises(NegolensError, match="trained for 2 steps"):
        run_grpo(cfg, out, progress=False)  # cannot shorten a finished run


# -- study ----------------------------------------------------------------------------------------
def test_study_refuses_a_run_folder_made_with_another_config(tmp_path):
    from negolens.cli.study import Study, StudyConfig, run_study
    from negolens.config import to_dict

    run_dir = tmp_path / "results" / "r1"
    (run_dir / "sft-buyer").mkdir(parents=True)
    (run_dir / "sft-buyer" / ".done.json").write_text("{}", encoding="utf-8")
    (run_dir / "notes.txt").write_text("mine", encoding="utf-8")
    manifest = {"study": "negolens", "config": to_dict(StudyConfig.quick_preset()), "timings_s": {"sft-buyer": 1.0}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    before = (run_dir / "manifest.json").read_bytes()
    logs = []
    with pytest.raises(NegolensError) as err:
        run_study(StudyConfig(seed=7), tmp_path / "results", "r1", log=logs.append)
    msg = str(err.value)
    assert "seed=0" in msg and "seed=7" in msg and "quick=true" in msg and "quick=false" in msg
    assert "--run-id" in msg and "--overwrite" in msg
    assert not logs  # no stage was skipped as "done already"
    assert (run_dir / "manifest.json").read_bytes() == before  # never rewritten with the new config
    Study(StudyConfig.quick_preset(), run_dir, log=logs.append).check()  # the same config resumes
    Study(StudyConfig(seed=7), run_dir, log=logs.append).check(overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt"]


# -- attention / probe ----------------------------------------------------------------------------
def test_attention_and_probe_reruns_with_other_settings(tiny_dirs, tmp_path):
    run = CliRunner()
    neg = run.invoke(app, ["negotiate", "--buyer", "rule", "--n", "3", "--max-turns", "4", "--out", str(tmp_path / "neg")])
    assert neg.exit_code == 0, neg.output
    common = ["--model", str(tiny_dirs["llama"]), "--transcripts", str(tmp_path / "neg" / "dialogues.jsonl")]
    att = ["attention", *common, "--show", "0:1.1", "--out", str(tmp_path / "att")]
    assert run.invoke(app, att).exit_code == 0
    first = (tmp_path / "att" / "attention_heads.csv").read_bytes()
    assert run.invoke(app, att).exit_code == 0  # same settings: fine
    table = (tmp_path / "att" / "attention_heads.csv").read_bytes()  # as that run wrote it
    assert table == first or os.environ.get("NEGOLENS_DEVICE", "cpu") != "cpu"  # on CUDA the last digits vary
    res = run.invoke(app, att + ["--role", "seller"])
    assert isinstance(res.exception, NegolensError) and "role=buyer" in str(res.exception)
    assert "role=seller" in str(res.exception)
    assert (tmp_path / "att" / "attention_heads.csv").read_bytes() == table
    res = run.invoke(app, att + ["--role", "seller", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert read_run(tmp_path / "att").config["role"] == "seller"

    probe = ["probe", *common, "--labels", "speaker", "--out", str(tmp_path / "probe")]
    assert run.invoke(app, probe).exit_code == 0
    res = run.invoke(app, probe[:-2] + ["--n", "2", "--out", str(tmp_path / "probe")])
    assert isinstance(res.exception, NegolensError) and "n=null" in str(res.exception) and "n=2" in str(res.exception)
    assert read_run(tmp_path / "probe").config["n"] is None
