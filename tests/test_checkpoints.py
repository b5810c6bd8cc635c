"""Mechanisms across training: checkpoint listing, the battery on a planted checkpoint series,
phase labels, the leading indicator and the `negolens mechanisms` verb."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import negolens
from negolens.agents import example_transcripts
from negolens.analysis.checkpoints import (Checkpoint, CheckpointConfig, checkpoint_battery, list_checkpoints,
                                           run_phases, tracked_heads)
from negolens.analysis.battery import measure_checkpoint
from negolens.analysis.decisions import act_token, decision_points
from negolens.analysis.leading import leading_indicator
from negolens.errors import NegolensError
from negolens.figures.checkpoints import PHASE_COLOURS, checkpoint_curves
from negolens.interventions import capture
from negolens.testing import tiny_model_dir
from negolens.training.phases import PHASES, PhaseRules, label_phases, phase_spans

LAYER, HEAD, D_HEAD = 1, 2, 16  # the planted head (last layer of the tiny Llama)
FACTORS = (0.0, 1.0, 2.0, 3.0)
N_POINTS = 4


def _step(step, reward, deal, overshoot, first, length, bargained=0.9):
    return {"step": step, "reward": reward, "deal_rate": deal, "overshoot_rate": overshoot,
            "first_offer_budget_ratio": first, "length": length, "bargained_ratio": bargained}


# the paper's arc, three steps per phase: naive → anchoring → deadlock → persuasion
ARC = ([_step(s, -0.8, 0.9, 0.8, 0.95, 4.0) for s in (1, 2, 3)]
       + [_step(s, -0.2, 0.6, 0.3, 0.4, 5.0) for s in (4, 5, 6)]
       + [_step(s, 0.0, 0.0, 0.0, 0.4, 8.0, float("nan")) for s in (7, 8, 9)]
       + [_step(s, 0.3, 0.7, 0.0, 0.5, 6.0, 0.8) for s in (10, 11, 12)])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def planted_run(base, tmp_path_factory):
    """checkpoint-1..4 of one tiny model whose head L1H2 writes the accept − counter direction,
    its o_proj slice scaled by 0, 1, 2, 3 (every other weight unchanged), plus a steps log."""
    root = tmp_path_factory.mktemp("planted")
    model = negolens.load(base, device="cpu")
    points = decision_points(model, example_transcripts(N_POINTS), limit=N_POINTS, max_tokens=512)
    with capture(model, "attn_z", [LAYER]) as z:
        model.logits(model.batch([p.ids for p in points]))
    zh = z[LAYER][:, -1, HEAD * D_HEAD:(HEAD + 1) * D_HEAD].float().mean(0)  # [d_head] at the decision position
    unembed = model.hf.get_output_embeddings().weight.detach()
    u = unembed[act_token(model, "accept")] - unembed[act_token(model, "counter")]
    planted = torch.outer(u / u.norm(), zh / zh.norm() ** 2)  # [d_model, d_head]: z ↦ (z·ẑ) · accept direction
    run = root / "run"
    for step, c in enumerate(FACTORS, start=1):
        with torch.no_grad():
            model.hf.model.layers[LAYER].self_attn.o_proj.weight[:, HEAD * D_HEAD:(HEAD + 1) * D_HEAD] = c * planted
        model.hf.save_pretrained(run / f"checkpoint-{step}")
        model.tokenizer.save_pretrained(run / f"checkpoint-{step}")
    (run / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in ARC[:5]), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def battery(planted_run):
    cfg = CheckpointConfig.quick(measures=("accept",), n_transcripts=N_POINTS, n_points=N_POINTS, max_tokens=512, top=2)
    return checkpoint_battery(planted_run, example_transcripts(N_POINTS), cfg, device="cpu", keep_all_heads=True)


def test_planted_head_effect_rises_monotonically_and_is_tracked_throughout(battery):
    eff = tracked_heads(battery, 2)
    eff = eff[eff.measure == "accept_effect"]
    assert len(eff) < len(battery[battery.measure == "accept_effect"])  # tracking dropped some heads
    target = eff[(eff.layer == LAYER) & (eff["head"] == HEAD)].sort_values("step")
    assert target.step.tolist() == [1, 2, 3, 4]  # tracked at every checkpoint, also where it is silent
    size = target.value.abs().to_numpy()
    assert size[0] < 1e-6 and np.all(np.diff(size) > 0.1)  # zero weight: no effect; then rising step by step
    assert (target.ci_low <= target.value).all() and (target.value <= target.ci_high).all()
    assert set(eff.groupby(["layer", "head"]).step.nunique()) == {4}  # every tracked head at every step


def test_control_heads_of_the_same_layer_stay_flat(battery):
    eff = battery[(battery.measure == "accept_effect") & (battery.layer == LAYER)]
    change = eff.pivot_table(index="head", columns="step", values="value")
    change = (change[4] - change[1]).abs()
    assert change[HEAD] > 1.0
    for head in set(change.index) - {HEAD}:  # same layer, weights untouched: they do not move with it
        assert change[head] < 0.1 * change[HEAD]


def test_phase_column_and_accept_logit_follow_the_run(battery):
    # the weights after N updates played logged step N + 1 (steps 2 … 5 are logged here)
    phases = battery.drop_duplicates("step").set_index("step").phase
    labels = label_phases(ARC[:5]).set_index("step").phase
    assert phases[1] == labels[2] and phases[4] == labels[5]
    logit = battery[battery.measure == "accept_logit"].sort_values("step").value.to_numpy()
    assert np.all(np.diff(logit) > 0)  # the planted head pushes accept harder at every step


def test_list_checkpoints_grpo_and_sft_layouts(tmp_path):
    run = tmp_path / "grpo"
    for name in ("checkpoint-2", "checkpoint-10", "final", "rollouts"):
        (run / name).mkdir(parents=True)
    for name in ("checkpoint-2", "checkpoint-10"):
        (run / name / "adapter_config.json").write_text("{}", encoding="utf-8")
    (run / "final" / "config.json").write_text("{}", encoding="utf-8")
    (run / "final" / "negolens_manifest.json").write_text(json.dumps({"config": {"steps": 12}, "base_model": "b"}), encoding="utf-8")
    (run / "run.json").write_text(json.dumps({"kind": "grpo", "config": {"model": "start-model"}}), encoding="utf-8")
    got = [(c.name, c.step, c.path) for c in list_checkpoints(run)]
    assert got == [("start", 0, "start-model"), ("checkpoint-2", 2, str(run / "checkpoint-2")),
                   ("checkpoint-10", 10, str(run / "checkpoint-10")), ("final", 12, str(run / "final"))]
    (run / "final" / "negolens_manifest.json").write_text(json.dumps({"config": {"steps": 10}}), encoding="utf-8")
    assert [c.name for c in list_checkpoints(run, include_start=False)] == ["checkpoint-2", "checkpoint-10"]
    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "adapter_config.json").write_text("{}", encoding="utf-8")
    (sft / "negolens_manifest.json").write_text(json.dumps({"config": {"steps": 30}, "base_model": "base"}), encoding="utf-8")
    assert [(c.name, c.step, c.path) for c in list_checkpoints(sft)] == [("start", 0, "base"), ("sft", 30, str(sft))]
    assert run_phases(sft).empty
    with pytest.raises(NegolensError, match="no checkpoints"):
        list_checkpoints(tmp_path / "grpo" / "rollouts")


def test_attention_and_probe_measures_on_one_checkpoint(base):
    cfg = CheckpointConfig.quick(measures=("attention",), n_transcripts=6, max_tokens=512, top=2)
    table = checkpoint_battery([Checkpoint("tiny", 0, str(base))], example_transcripts(6), cfg, device="cpu")
    assert table.measure.str.startswith("attention:").all() and table.measure.nunique() >= 2
    assert (table.groupby("measure").size() <= 2).all()  # tracked: the top 2 heads per score
    assert (table.ci_low <= table.value + 1e-9).all() and (table.value <= table.ci_high + 1e-9).all()
    # probes: a binary act probe (counter | offer), so the two classes' projections are opposite
    items = example_transcripts(6)
    model = negolens.load(base, device="cpu")
    points = decision_points(model, items, limit=6, max_tokens=512)
    rows = {}
    for cls in ("counter", "offer"):
        rows[cls], effects = measure_checkpoint(model, items, points, CheckpointConfig.quick(
            measures=("probes",), max_tokens=512, accept_class=cls, layers="0,1"), print)
        assert effects is None
    probe = pd.DataFrame(rows["counter"]).query("measure == 'probe'")
    assert probe.probe.eq("act").all() and sorted(probe.layer) == [0, 1] and probe["head"].isna().all()
    proj = {cls: next(r["value"] for r in rs if r["measure"] == "accept_projection") for cls, rs in rows.items()}
    assert proj["counter"] == pytest.approx(-proj["offer"], rel=1e-5) and proj["counter"] != 0


def test_tracked_heads_keep_a_head_that_appears_late():
    t = pd.DataFrame({"checkpoint": ["a"] * 3 + ["b"] * 3, "measure": "accept_effect", "layer": 0,
                      "head": [0, 1, 2] * 2, "value": [2.0, 1.0, 0.0, 2.0, 0.5, 3.0]})
    kept = tracked_heads(t, 1)
    assert sorted(set(kept["head"])) == [0, 2] and len(kept) == 4


def test_phases_follow_the_papers_arc():
    labels = label_phases(ARC, PhaseRules(window=1), max_turns=8)
    assert labels.phase.tolist() == ["naive"] * 3 + ["anchoring"] * 3 + ["deadlock"] * 3 + ["persuasion"] * 3
    assert phase_spans(labels)[["phase", "start", "end"]].values.tolist() == [
        ["naive", 1, 3], ["anchoring", 4, 6], ["deadlock", 7, 9], ["persuasion", 10, 12]]
    smooth = label_phases(ARC, PhaseRules(window=3), max_turns=8)  # a trailing mean: labels change later, never earlier
    first = {p: int(smooth[smooth.phase == p].step.min()) for p in ("anchoring", "deadlock", "persuasion")}
    assert first["anchoring"] >= 4 and first["deadlock"] >= 7 and first["persuasion"] >= 10
    assert label_phases([_step(1, 0.0, 0.3, 0.1, 0.7, 5.0)], max_turns=8).phase.tolist() == ["transition"]
    # a buyer that quits without deals (run 26) is not anchoring, whatever its few offers were
    quits = [_step(1, 0.0, 0.0, 0.0, 0.3, 2.0, float("nan")), _step(2, 0.0, 0.0, 0.0, float("nan"), 4.0),
             _step(3, 0.0, 0.0, 0.0, 0.3, 5.0, float("nan"))]
    assert label_phases(quits, PhaseRules(window=1), max_turns=8).phase.tolist() == ["walkaway", "walkaway",
                                                                                       "anchoring"]
    failures = [_step(1, -1.0, 0.0, 0.0, float("nan"), 1.0, float("nan"))]  # protocol failures at once: not a walkaway
    assert label_phases(failures, PhaseRules(window=1), max_turns=8).phase.tolist() == ["transition"]
    assert set(PHASE_COLOURS) == set(PHASES)
    with pytest.raises(NegolensError, match="deal_rate"):
        label_phases([{"step": 1, "reward": 0.0}])


def test_leading_indicator_finds_the_lag_and_a_shuffled_control_is_not_significant():
    rng = np.random.default_rng(1)
    n, k = 40, 3
    x = rng.normal(size=n)
    table = pd.DataFrame({"step": range(n), "measure": "accept_projection", "value": x})
    steps = [{"step": s + k + 1, "deal_rate": x[s] + 0.3 * rng.normal()} for s in range(n)]  # behaviour k steps later
    lead = leading_indicator(table, steps, "accept_projection", "deal_rate", max_lag=6, n_perm=500, n_boot=300)
    assert lead.best_lag == k and lead.p < 0.01 and lead.leads() and lead.ci_low > 0.5
    significant = 0
    for seed in range(10):
        shuffled = table.assign(value=np.random.default_rng(100 + seed).permutation(x))
        control = leading_indicator(shuffled, steps, "accept_projection", "deal_rate", max_lag=6, n_perm=300,
                                    n_boot=100, seed=seed)
        significant += control.p < 0.05
    assert significant <= 2  # 0.5 expected at the 5% level
    with pytest.raises(NegolensError, match="no rows"):
        leading_indicator(table, steps, "attention:price")


def test_curves_figure(battery, tmp_path):
    phases = label_phases(ARC[:5])
    paths = checkpoint_curves(battery, phases, tmp_path / "curves")
    assert all(p.stat().st_size > 0 for p in paths)


def test_mechanisms_verb_on_a_real_grpo_run(base, tmp_path):
    """A real (tiny) TRL run: LoRA checkpoint-N folders, final/, run.json and steps.jsonl, read by the verb."""
    from typer.testing import CliRunner

    import negolens.cli.checkpoints  # noqa: F401  (registers the verb)
    from negolens.agents.formats import write_transcripts
    from negolens.agents.scenarios import load_scenarios
    from negolens.cli import app
    from negolens.training.grpo import GRPORunConfig, train_grpo

    run = tmp_path / "grpo"
    cfg = GRPORunConfig(model=str(base), steps=2, products_per_step=1, group_size=2, max_turns=4, save_every=1,
                        max_utterance_tokens=8)
    train_grpo(negolens.load(base, device="cpu"), cfg, load_scenarios("builtin", 2), run, progress=False)
    assert [(c.name, c.step) for c in list_checkpoints(run)] == [("start", 0), ("checkpoint-1", 1), ("checkpoint-2", 2)]
    write_transcripts(example_transcripts(2), tmp_path / "held_out.jsonl")
    out = tmp_path / "out"
    args = ["mechanisms", str(run), "--measures", "accept", "--n-points", "2", "--n-transcripts", "2",
            "--max-tokens", "512", "--signal", "accept_logit", "--transcripts", str(tmp_path / "held_out.jsonl")]
    result = CliRunner().invoke(app, args + ["--out", str(out), "--device", "cpu"])
    assert result.exception is None and result.exit_code == 0, result.output
    table = pd.read_csv(out / "mechanisms.csv")
    assert table.checkpoint.unique().tolist() == ["start", "checkpoint-1", "checkpoint-2"]
    assert table.phase.notna().all() and set(table.phase) <= set(run_phases(run).phase)
    assert (out / "phases.csv").is_file() and (out / "mechanisms_curves.png").is_file()
    again = CliRunner().invoke(app, ["mechanisms", str(run), "--measures", "accept", "--out", str(out)])
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)
