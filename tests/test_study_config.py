"""Study plumbing that needs no model: the conditions it plays and how its config is composed."""

import dataclasses

import pytest

from negolens.agents.runner import RunConfig
from negolens.analysis import AblationConfig
from negolens.cli.study import Study, StudyConfig
from negolens.probes import AttentionConfig, ProbeConfig
from negolens.training import RECIPE, WARM_START, FilteredConfig, GRPORunConfig, SFTConfig


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
