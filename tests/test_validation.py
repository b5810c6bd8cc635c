"""Issue #14: bad input fails at the edge, in one line, before any work — and no statistic is
computed over nothing.

CLI cases call :func:`negolens.cli.main` in-process (the real entry point, so the one-line
format and the exit status are what a user sees); a few run ``python -m negolens.cli`` in a
subprocess for what only a real process shows (a hang, no traceback on stderr).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from negolens.errors import NegolensError, choice

PY = [sys.executable, "-m", "negolens.cli"]


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run ``negolens ARGS`` through ``main``; (exit status, stdout, stderr)."""
    from negolens.cli import main

    with pytest.raises(SystemExit) as done:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def one_line_error(code: int, err: str, *needles: str) -> str:
    """Assert exit 2 and a single ``negolens: error:`` line on stderr that contains every needle."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert lines and lines[-1].startswith("negolens: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


# -- data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A runner dialogues.jsonl of 3 rule-vs-rule dialogues, and broken variants of it."""
    from negolens.agents import load_scenarios, negotiate

    root = tmp_path_factory.mktemp("transcripts")
    negotiate("rule", "rule:aggressive", load_scenarios("builtin", 3), max_turns=6, out=root / "run", progress=False)
    good = root / "run" / "dialogues.jsonl"
    records = [json.loads(line) for line in good.read_text(encoding="utf-8").splitlines()]
    paths = {"good": good, "empty": root / "empty.jsonl", "garbage": root / "garbage.jsonl",
             "zero_turn": root / "zero_turn.jsonl", "wrong_shape": root / "wrong_shape.jsonl"}
    paths["empty"].write_text("", encoding="utf-8")
    paths["garbage"].write_text("this is not json\n{{{\n", encoding="utf-8")
    paths["zero_turn"].write_text("".join(json.dumps({**r, "turns": []}) + "\n" for r in records), encoding="utf-8")
    paths["wrong_shape"].write_text(json.dumps({"dialogue": "no turns key"}) + "\n", encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def model_dir(tiny_dirs):
    return tiny_dirs["llama"]


# -- the hang and the process-level format (subprocess) ------------------------------------------


def test_first_nobody_ends_with_one_line_instead_of_looping(tmp_path):
    # used to spin forever at 100% CPU; the timeout only guards the test run against that hang
    proc = subprocess.run(PY + ["negotiate", "--buyer", "rule", "--seller", "rule", "--n", "2", "--first", "nobody",
                                "--out", str(tmp_path / "o")], capture_output=True, text=True, encoding="utf-8", timeout=600)
    one_line_error(proc.returncode, proc.stderr, "first speaker", "'nobody'", "buyer, seller")


def test_debug_flag_shows_the_traceback(tmp_path):
    proc = subprocess.run(PY + ["negotiate", "--buyer", "rule", "--n", "2", "--budget-guard", "blok", "--debug",
                                "--out", str(tmp_path / "o")], capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "NegolensError" in proc.stderr and "did you mean 'block'" in proc.stderr


def test_internal_bug_shows_traceback_and_asks_for_a_report(capsys, monkeypatch, tmp_path):
    import negolens.agents

    def broken(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(negolens.agents, "load_scenarios", broken)
    code, _, err = cli(capsys, "negotiate", "--buyer", "rule", "--n", "2", "--out", tmp_path / "o")
    assert code == 1
    assert "Traceback" in err and "KeyError" in err and "internal error" in err and "report" in err


def test_usage_error_is_one_line(capsys):
    code, _, err = cli(capsys, "negotiate", "--bogus", "1")
    one_line_error(code, err, "--bogus", "negolens negotiate --help")


# -- negotiate ------------------------------------------------------------------------------

NEGOTIATE_CASES = {
    "n_zero": (["--n", "0"], "at least 1"),
    "n_negative": (["--n", "-3"], "at least 1"),
    "batch_size_zero": (["--batch-size", "0"], "batch_size must be a whole number ≥ 1 or 'auto'"),
    "budget_guard_typo": (["--budget-guard", "blok"], "did you mean 'block'"),
    "persona_for_buyer": (["--buyer", "rule:injection"], "only valid for sellers"),
    "personality_typo": (["--seller", "rule:agressive"], "did you mean 'aggressive'"),
    "max_turns_zero": (["--max-turns", "0"], "max_turns"),
    "max_turns_negative": (["--max-turns", "-1"], "max_turns"),
    "max_turns_unbounded": (["--max-turns", "100000"], "max_turns"),
    "temperature_negative": (["--temperature", "-1"], "temperature must be at least 0"),
    "dtype_typo": (["--dtype", "float33"], "did you mean 'float32'"),
    "split_unknown": (["--split", "foo"], "split 'foo'"),
    "scenarios_typo": (["--scenarios", "builtn"], "did you mean 'builtin'"),
}


@pytest.mark.parametrize("case", sorted(NEGOTIATE_CASES))
def test_negotiate_rejects_bad_settings_before_playing(case, capsys, tmp_path):
    extra, needle = NEGOTIATE_CASES[case]
    args = ["negotiate", "--buyer", "rule", "--seller", "rule", "--n", "2", "--out", tmp_path / "o"]
    code, _, err = cli(capsys, *args, *extra)
    one_line_error(code, err, needle)
    assert not (tmp_path / "o" / "dialogues.jsonl").exists()  # nothing played


# -- reading internals: attention, probe, ablate ------------------------------------------------------


@pytest.mark.parametrize("verb", ["ablate", "probe", "attention"])
@pytest.mark.parametrize("kind", ["empty", "garbage", "zero_turn", "wrong_shape"])
def test_unusable_transcripts_are_one_clear_line(verb, kind, files, model_dir, capsys, tmp_path):
    code, _, err = cli(capsys, verb, "--model", model_dir, "--transcripts", files[kind], "--out", tmp_path / "o")
    line = one_line_error(code, err)
    assert "nan" not in line.lower()


def test_attention_needs_two_usable_dialogues(files, model_dir, capsys, tmp_path):
    code, _, err = cli(capsys, "attention", "--model", model_dir, "--transcripts", files["good"], "--n", "1",
                       "--out", tmp_path / "o")
    one_line_error(code, err, "at least 2")


@pytest.mark.parametrize("n", ["0", "-1"])
def test_attention_n_must_be_positive(n, files, model_dir, capsys, tmp_path):
    code, _, err = cli(capsys, "attention", "--model", model_dir, "--transcripts", files["good"], "--n", n,
                       "--out", tmp_path / "o")
    one_line_error(code, err, n)


def test_attention_show_out_of_range_fails_before_computing(files, model_dir, capsys, monkeypatch, tmp_path):
    import negolens.probes

    def must_not_run(*a, **k):
        raise AssertionError("record_attention ran before --show was checked")

    monkeypatch.setattr(negolens.probes, "record_attention", must_not_run)
    code, _, err = cli(capsys, "attention", "--model", model_dir, "--transcripts", files["good"], "--show", "0:99.99",
                       "--out", tmp_path / "o")
    one_line_error(code, err, "--show", "out of range")


def test_probe_layer_out_of_range(files, model_dir, capsys, tmp_path):
    code, _, err = cli(capsys, "probe", "--model", model_dir, "--transcripts", files["good"], "--layers", "99",
                       "--out", tmp_path / "o")
    one_line_error(code, err, "layer 99 out of range")


@pytest.mark.parametrize("extra,needle", [(["--kind", "foo"], "unknown kind 'foo'"),
                                          (["--metric", "foo"], "unknown metric 'foo'"),
                                          (["--steer", "/missing"], "--steer /missing")])
def test_ablate_rejects_bad_settings(extra, needle, files, model_dir, capsys, tmp_path):
    code, _, err = cli(capsys, "ablate", "--model", model_dir, "--transcripts", files["good"], *extra,
                       "--out", tmp_path / "o")
    one_line_error(code, err, needle)


def test_train_sft_unknown_role(capsys, tmp_path):
    code, _, err = cli(capsys, "train", "sft", "--role", "foo", "--out", tmp_path / "o")
    one_line_error(code, err, "'foo'")
    assert "training examples" not in err


# -- model files -------------------------------------------------------------------------------


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_local_model_names_the_file(model_dir, capsys, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    _truncate(broken / "model.safetensors")
    code, _, err = cli(capsys, "models", "info", broken)
    one_line_error(code, err, "model.safetensors", "truncated")


def test_truncated_zoo_cache_entry_says_fetch_force(model_dir, capsys, monkeypatch, tmp_path):
    from negolens import fetching

    monkeypatch.setenv("NEGOLENS_CACHE", str(tmp_path / "cache"))
    name = "smollm2-135m-instruct"
    entry = fetching.cached_path(name)
    shutil.copytree(model_dir, entry)
    (entry / fetching.MANIFEST).write_text(json.dumps({"name": name}), encoding="utf-8")
    _truncate(entry / "model.safetensors")
    assert not fetching.is_cached(name) and "model.safetensors" in fetching.cache_problem(name)
    code, _, err = cli(capsys, "models", "info", name)
    one_line_error(code, err, "model.safetensors", f"negolens models fetch {name} --force")
    code, out, _ = cli(capsys, "models", "list")
    row = next(line for line in out.splitlines() if line.startswith(name))
    assert code == 0 and "BROKEN" in row and "--force" in row and not row.rstrip().endswith(str(entry))


def test_manifest_sizes_catch_a_changed_file(model_dir, tmp_path):
    from negolens import fetching

    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    (folder / fetching.MANIFEST).write_text(json.dumps({"files": {"config.json": (folder / "config.json").stat().st_size}}), encoding="utf-8")
    assert fetching.model_files_problem(folder) is None
    (folder / "config.json").write_text((folder / "config.json").read_text(encoding="utf-8") + " ", encoding="utf-8")
    assert "config.json" in fetching.model_files_problem(folder)


# -- the library under the CLI ---------------------------------------------------------------------


def test_choice_suggests_the_closest_name():
    with pytest.raises(NegolensError, match=r"did you mean 'seller'\?"):
        choice("seler", ("buyer", "seller"), "role")
    with pytest.raises(NegolensError) as err:
        choice("zzz", ("buyer", "seller"), "role")
    assert "did you mean" not in str(err.value) and "buyer, seller" in str(err.value)


def test_every_dialogue_has_a_hard_turn_bound():
    from negolens.agents.builtin import builtin_scenarios
    from negolens.agents.protocol import MAX_TURNS, Act, Move, Negotiation
    from negolens.agents.runner import RunConfig

    for bad in ({"first": "nobody"}, {"max_turns": 0}, {"max_turns": MAX_TURNS + 1}):
        with pytest.raises(NegolensError):
            Negotiation(builtin_scenarios()[0], **bad)
        with pytest.raises(NegolensError):
            RunConfig(**bad)
    neg = Negotiation(builtin_scenarios()[0], max_turns=MAX_TURNS)
    while not neg.done:  # talk forever: the protocol still ends the dialogue
        neg.apply(Move("hello", Act.GREET))
    assert neg.outcome == "turn_limit" and len(neg.turns) == MAX_TURNS


def test_summarize_effects_gives_no_p_value_to_an_undefined_effect():
    from negolens.analysis import summarize_effects

    effects = np.random.default_rng(0).normal(size=(8, 1, 3))
    effects[:, 0, 1] = np.nan
    table = summarize_effects(effects, n_boot=50, n_perm=50)
    assert list(zip(table["layer"], table["head"])) == [(0, 0), (0, 2)]
    assert table.effect.notna().all() and table.p.notna().all()
    with pytest.raises(NegolensError):
        summarize_effects(np.empty((0, 1, 3)))


def test_summarize_heads_gives_no_p_value_to_an_undefined_effect():
    from negolens.probes.attention import AttentionScores, summarize_heads

    rng = np.random.default_rng(0)
    tagged, control = rng.random((6, 1, 2, 2)), rng.random((6, 1, 2, 2))
    control[2, 0, 1, 1] = np.nan  # one head undefined in one dialogue
    table = summarize_heads(AttentionScores(tagged, control, scores=("s",)), n_boot=50, n_perm=50)
    bad = table[(table.layer == 1) & (table["head"] == 1)].iloc[0]
    assert np.isnan(bad.effect) and np.isnan(bad.p) and np.isnan(bad.q)
    assert table.drop(index=bad.name).p.notna().all()
    with pytest.raises(NegolensError, match="at least 2"):  # one dialogue: nothing to test
        summarize_heads(AttentionScores(tagged[:1], control[:1], scores=("s",)), n_boot=50, n_perm=50)


def test_probe_on_a_constant_label_is_undefined_and_saves_nothing(tiny_llama, tmp_path):
    import dataclasses

    from negolens.agents import example_transcripts
    from negolens.probes import ProbeConfig, fit_probes

    items = [dataclasses.replace(t, deal=True) for t in example_transcripts(6)]  # every dialogue: a deal
    result = fit_probes(tiny_llama, items, ["speaker", "deal"], config=ProbeConfig(n_splits=3, layers="0"),
                        progress=False)
    assert "constant" in result.skipped["deal"] and "deal" not in result.probes
    assert not (result.curves.label == "deal").any()
    result.save(tmp_path / "probes")
    assert not (tmp_path / "probes" / "deal").exists()
    assert np.isfinite(result.probes["speaker"].direction()).all()
    assert any("deal" in line and "constant" in line for line in result.summary())


def test_config_classes_validate_on_construction():
    from negolens.analysis import AblationConfig
    from negolens.probes import AttentionConfig, ProbeConfig

    for make in (lambda: AblationConfig(kind="foo"), lambda: AblationConfig(metric="ofer"), lambda: AblationConfig(n=0),
                 lambda: AttentionConfig(n_perm=0), lambda: AttentionConfig(batch_size=0),
                 lambda: ProbeConfig(labels=("act", "nope")), lambda: ProbeConfig(layers="first"),
                 lambda: ProbeConfig(n_splits=1)):
        with pytest.raises(NegolensError):
            make()
