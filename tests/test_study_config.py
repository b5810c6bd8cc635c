"""Study plumbing that needs no model: the conditions it plays and how its config is composed."""

import dataclasses
import json

import pytest

from negolens.agents.runner import RunConfig
from negolens.analysis import AblationConfig
from negolens.cli.study import Study, StudyConfig
from negolens.probes import AttentionConfig, ProbeConfig
from negolens.training import RECIPE, WARM_START, FilteredConfig, GRPORunConfig, SFTConfig
from negolens.training.heldout import METRICS


def test_conditions_cover_the_matrix_personalities_and_cot(tmp_path):
    full = Study(StudyConfig(), tmp_path / "full", log=lambda m: None).conditions()
    groups = {g: [c for c in full if c["group"] == g] for g in ("matrix", "personality", "cot")}
    assert len(groups["matrix"]) == 9 and len(groups["personality"]) == 9 and len(groups["cot"]) == 4
    assert {(c["buyer_label"], c["seller_label"]) for c in groups["matrix"]} == {
        (b, s) for b in ("untuned", "SFT", "rule") for s in ("untuned", "SFT", "rule")}
    sft = [c for c in groups["matrix"] if c["buyer_label"] == "SFT"][0]
    assert sft["buyer"].endswith("sft-buyer/checkpoint")
    assert all(c["buyer"].endswith("+cot") == c["cot"] for c in groups["cot"])
    quick = Study(StudyConfig.quick_preset(), tmp_path / "quick", log=lambda m: None).conditions()
    assert len([c for c in quick if c["group"] == "personality"]) == 3  # the diagonal only


def _changed(cfg) -> dict:
    plain = type(cfg)()
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(plain, f.name)}


def test_quick_preset_is_composed_from_the_components_presets():
    q = StudyConfig.quick_preset(seed=3)
    assert q.quick and q.seed == 3
    # every component starts from its own quick preset; only the listed fields differ from it
    assert _changed(q.sft).keys() - _changed(SFTConfig.quick()).keys() <= {"steps", "batch_size", "dtype", "seed"}
    assert _changed(q.attention).keys() - _changed(AttentionConfig.quick()).keys() <= {"seed"}
    assert _changed(q.probes).keys() - _changed(ProbeConfig.quick()).keys() <= {"seed"}
    assert _changed(q.ablation).keys() - _changed(AblationConfig.quick()).keys() <= {"metric", "top", "screen_top", "seed"}
    assert _changed(q.grpo).keys() - _changed(GRPORunConfig.quick()).keys() <= {
        "steps", "products_per_step", "group_size", "eval_products", "max_turns", "seed", *RECIPE}
    # every preset trains the buyer with the README's evidence-run levers
    assert all(getattr(c.grpo, k) == v for c in (q, StudyConfig(), StudyConfig.gpu_preset()) for k, v in RECIPE.items())
    # ... and starts GRPO from the README's warm start (a clone of the scripted firm buyer)
    assert dataclasses.asdict(q.bc) == dataclasses.asdict(FilteredConfig.quick(seed=3, **WARM_START))
    assert all(getattr(c.bc, k) == v for c in (q, StudyConfig(), StudyConfig.gpu_preset()) for k, v in WARM_START.items())
    assert q.negotiation == RunConfig(max_turns=4, seed=3)
    # the study seed reaches every component that has one
    assert {q.sft.seed, q.attention.seed, q.probes.seed, q.ablation.seed, q.bc.seed, q.grpo.seed} == {3}


def test_warm_start_is_taught_in_the_dialogues_grpo_plays_and_grpo_starts_from_it(tmp_path, monkeypatch):
    import negolens.training as training

    class Stop(Exception):
        """Raised by the stand-in GRPO: the test needs only the config it was given."""

    def fake_grpo(cfg, out, **kw):
        seen["grpo"] = cfg
        raise Stop

    seen = {}
    monkeypatch.setattr(training, "run_filtered", lambda cfg, out, **kw: seen.update(bc=cfg, out=out))
    monkeypatch.setattr(training, "run_grpo", fake_grpo)
    cfg = StudyConfig(grpo=dataclasses.replace(StudyConfig().grpo, max_turns=6, max_utterance_tokens=10))
    study = Study(cfg, tmp_path / "run", log=lambda m: None)
    study.stage_bc_buyer(study.dir / "bc-buyer")
    bc = seen["bc"]
    assert bc.model == cfg.model and str(seen["out"]) == study.bc_buyer and bc.teacher == "extrapolate"
    assert (bc.teacher_turns, bc.max_utterance_tokens, bc.announce_turns, bc.teacher_scenarios) == (
        6, 10, cfg.grpo.announce_turns, cfg.grpo.source)
    with pytest.raises(Stop):
        study.stage_grpo(study.dir / "grpo")
    assert seen["grpo"].model == study.bc_buyer


def _stage_grpo(tmp_path, monkeypatch, **settings):
    """Run the study's GRPO stage with every model call stood in for; what each call was given."""
    import pandas as pd

    import negolens.agents as agents
    import negolens.training as training

    calls = {"grpo": [], "select": [], "played": []}

    def fake_grpo(cfg, out, **kw):
        calls["grpo"].append((cfg, out))
        (out / "final").mkdir(parents=True)
        return training.GRPOResult(final=out / "final", steps=[], comparison=None, before=[], after=[])

    def fake_choose(cfg, out, **kw):
        calls["select"].append((cfg, out))
        chosen = str(out.parent / "narrow" / "checkpoint-1")
        table = pd.DataFrame({"candidate": [chosen], "n": [1], "reward": [0.0], "reward_ci": [(0.0, 0.0)], "deal": [0.0],
                              "overshoot": [0.0], "overshoots": [0], "eligible": [True], "chosen": [True]})
        return training.CheckpointChoice(table=table, chosen=chosen, scenarios=[])

    monkeypatch.setattr(training, "run_grpo", fake_grpo)
    monkeypatch.setattr(training, "choose_checkpoint", fake_choose)
    monkeypatch.setattr(training, "play", lambda ref, *a, **kw: calls["played"].append(str(ref)) or [
        {"id": "p1", "metrics": {**dict.fromkeys(METRICS, 0.0), "reward": len(calls["played"]) / 4}}])
    monkeypatch.setattr(agents, "split_scenarios", lambda *a, **kw: [])
    monkeypatch.setattr(agents, "summarize", lambda recs, *a, **kw: pd.DataFrame({"n": [0]}))
    study = Study(StudyConfig(**settings), tmp_path / "run", log=lambda m: None)
    study.stage_grpo(study.dir / "grpo")
    return study, calls


def test_grpo_stage_adds_the_narrow_segment_and_plays_the_buyer_chosen_on_validation(tmp_path, monkeypatch):
    study, calls = _stage_grpo(tmp_path, monkeypatch)
    c, grpo = study.cfg, study.dir / "grpo"
    (first, out1), (narrow, out2) = calls["grpo"]
    assert first.model == study.bc_buyer and out1 == grpo and first.curriculum == "mutual"
    assert first.eval_products == narrow.eval_products == 0  # the stage evaluates the buyer it hands on, once
    assert out2 == grpo / "narrow" and narrow.model == str(grpo / "final") and narrow.curriculum == "narrow"
    assert (narrow.steps, narrow.save_every, narrow.seed) == (c.narrow_steps, 1, c.seed + 1)
    # every other setting is the first segment's (the recipe's levers too)
    assert {k: v for k, v in dataclasses.asdict(narrow).items() if getattr(first, k) != v}.keys() == {
        "model", "curriculum", "steps", "save_every", "seed"}
    (select, out3), = calls["select"]
    assert out3 == grpo / "selection" and select.candidates == (str(grpo / "final"), str(grpo / "narrow"))
    assert select.played == (str(grpo),) and select.all_conflicting and select.products == c.select_products == 32
    assert (select.teacher_products, select.teacher_seed) == (c.bc.teacher_products, c.bc.seed)
    assert (select.max_turns, select.announce_turns, select.max_utterance_tokens, select.source) == (
        first.max_turns, first.announce_turns, first.max_utterance_tokens, first.source)
    chosen = str(grpo / "narrow" / "checkpoint-1")
    assert calls["played"] == [c.model, study.sft_buyer, study.bc_buyer, chosen]  # the GRPO row is the chosen buyer
    assert (grpo / "buyer.txt").read_text(encoding="utf-8").strip() == "grpo/narrow/checkpoint-1"
    # eval.json pairs the warm start (BC, the 3rd buyer played: reward 0.75) with the chosen buyer (1.0)
    reward = next(r for r in json.loads((grpo / "eval.json").read_text(encoding="utf-8")) if r["metric"] == "reward")
    assert (reward["before"], reward["after"], reward["diff"]) == (0.75, 1.0, 0.25)


@pytest.mark.parametrize("settings, buyer", [({"select_products": 0}, "grpo/narrow/final"),
                                              ({"narrow_steps": 0}, "grpo/final")])
def test_grpo_stage_without_the_choice_or_the_narrow_segment(tmp_path, monkeypatch, settings, buyer):
    study, calls = _stage_grpo(tmp_path, monkeypatch, **settings)
    assert len(calls["grpo"]) == (2 if settings.get("narrow_steps", 2) else 1) and not calls["select"]
    assert calls["played"][-1] == str(study.dir / buyer)
    assert (study.dir / "grpo" / "buyer.txt").read_text(encoding="utf-8").strip() == buyer


def test_presets_set_the_narrow_segment_and_the_choice():
    from negolens.errors import NegolensError

    q, gpu = StudyConfig.quick_preset(), StudyConfig.gpu_preset()
    assert (q.narrow_steps, q.select_products, q.select_conflicting) == (1, 4, False)
    assert (gpu.narrow_steps, gpu.select_products) == (0, 0)  # at that scale no training product is left unplayed
    with pytest.raises(NegolensError, match="at least 0"):
        StudyConfig(narrow_steps=-1)


def test_a_run_recorded_before_the_narrow_segment_resumes_without_it(tmp_path):
    from negolens.config import to_dict
    from negolens.errors import NegolensError

    old = Study(StudyConfig(), tmp_path / "run", log=lambda m: None)
    old.dir.mkdir(parents=True, exist_ok=True)
    recorded = {k: v for k, v in to_dict(StudyConfig()).items() if k not in ("narrow_steps", "select_products",
                                                                             "select_conflicting")}
    (old.dir / "manifest.json").write_text(json.dumps({"config": recorded}), encoding="utf-8")
    Study(StudyConfig(narrow_steps=0), old.dir, log=lambda m: None).check()  # the same run as recorded
    with pytest.raises(NegolensError, match="narrow_steps"):
        Study(StudyConfig(), old.dir, log=lambda m: None).check()
