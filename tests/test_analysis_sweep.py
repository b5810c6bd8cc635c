"""Head sweeps: the fast exact path equals the naive TransformerLens path, and a planted head is found."""

import numpy as np
import pytest

import negolens
from negolens.analysis.ablation import ablated, reference_means
from negolens.analysis.decisions import decision_points
from negolens.analysis.sweep import LogitDiff, attribution, effects_fast, effects_naive, sweep_heads

from probe_fixtures import plant_copy_head, transcripts


@pytest.fixture(scope="module")
def copy_model(tiny_dirs):
    model = negolens.load(tiny_dirs["llama"])
    plant_copy_head(model)
    return model


def test_fast_sweep_equals_naive(tiny_dirs, tiny):
    points = decision_points(tiny, transcripts(4), "buyer", "accept")
    metric = LogitDiff.accept_vs_counter(tiny)
    fast = effects_fast(tiny, points, metric, progress=False)
    naive = effects_naive(negolens.load(tiny.path), points, metric, progress=False)
    assert np.abs(naive).max() > 1e-2  # heads matter at all
    assert np.nanmax(np.abs(fast - naive)) < 1e-4


def test_planted_copy_head_is_first_and_inert_head_is_not_significant(copy_model):
    points = decision_points(copy_model, transcripts(12), "buyer", "accept")
    assert len(points) >= 12
    table = sweep_heads(copy_model, points, "accept", kind="zero", progress=False)
    table["abs"] = table.effect.abs()
    top = table.sort_values("abs", ascending=False).iloc[0]
    assert (top.layer, top["head"]) == (0, 0) and top.q < 0.01 and top.effect < 0  # ablating it lowers "accept"
    inert = table[(table.layer == 0) & (table["head"] == 1)].iloc[0]
    assert abs(inert.effect) < 1e-4 and inert.ci_low <= 1e-4 and inert.ci_high >= -1e-4
    screened = sweep_heads(copy_model, points, "accept", screen_top=3, progress=False)
    assert len(screened) == 3 and ((screened.layer == 0) & (screened["head"] == 0)).any()


def test_mean_and_resample_and_context_manager(copy_model):
    points = decision_points(copy_model, transcripts(6), "buyer", "accept")
    metric = LogitDiff.accept_vs_counter(copy_model)
    means = reference_means(copy_model, points)
    for kind in ("mean", "resample"):
        e = effects_fast(copy_model, points, metric, kind, heads=[(0, 0), (0, 1)], means=means, progress=False)
        assert np.allclose(e[:, 0, 1], 0.0, atol=1e-4)  # the inert head changes nothing, whatever replaces it
        assert np.isfinite(e[:, 0, 0]).all()
    b = copy_model.batch([points[0].ids])
    clean = copy_model.logits(b)[0, -1]
    with ablated(copy_model, [(0, 0)]):
        zeroed = copy_model.logits(b)[0, -1]
    expected = effects_fast(copy_model, points[:1], metric, heads=[(0, 0)], progress=False)[0, 0, 0]
    got = (zeroed - clean)[metric.plus] - (zeroed - clean)[metric.minus]
    assert abs(float(got) - expected) < 1e-4
    att = attribution(copy_model, points, metric).mean(0)
    assert np.unravel_index(np.abs(att).argmax(), att.shape) == (0, 0)


def test_offer_steering_and_rerun(copy_model):
    from negolens.agents.builtin import builtin_scenarios
    from negolens.agents.rule_agent import RuleAgent
    from negolens.agents.runner import RunConfig
    from negolens.analysis.behaviour import greedy_offer, offer_effects, rerun, steer, steering_curve

    points = decision_points(copy_model, transcripts(4), "buyer", "offer")
    ratios = greedy_offer(copy_model, points)
    assert np.isfinite(ratios).all() and (ratios > 0).all()
    eff = offer_effects(copy_model, points, [(0, 0), (0, 1)])
    assert np.allclose(eff[:, 1], 0.0)  # inert head: same offers
    # steering along the unembedding direction of "accept" − "counter" raises the accept metric
    metric = LogitDiff.accept_vs_counter(copy_model)
    acc_points = decision_points(copy_model, transcripts(4), "buyer", "accept")
    w = copy_model.sites.unembed_weight()
    direction = (w[metric.plus] - w[metric.minus]).detach().cpu().numpy()
    value = lambda m, pts: [float(metric(m.logits(m.batch([p.ids]))[0, -1, metric.tokens()])) for p in pts]  # noqa: E731
    curve = steering_curve(copy_model, acc_points, value, layer=1, direction=direction, alphas=[-4.0, 0.0, 4.0])
    assert curve["mean"].is_monotonic_increasing
    with steer(copy_model, 1, direction, 0.0):
        assert value(copy_model, acc_points[:1]) == pytest.approx(value(copy_model, acc_points[:1]))
    table = rerun(copy_model, [(0, 0)], builtin_scenarios()[:3], RuleAgent("seller"), RunConfig(max_turns=4),
                  buyer_kwargs={"max_utterance_tokens": 4})
    assert set(table.condition) == {"intact", "top heads ablated", "random heads ablated"}
    assert table[table.metric == "deal"]["n"].tolist() == [3, 3, 3]


def test_ablate_cli(tiny_dirs, tmp_path):
    import json

    from typer.testing import CliRunner

    from negolens.cli import app

    path = tmp_path / "t.jsonl"
    rows = []
    for tr in transcripts(4):
        rows.append({"id": tr.id, "scenario": tr.scenario.to_dict(), "outcome": "deal", "turns": [
            {"index": i, "role": u.role, "utterance": u.text, "act": "offer" if u.price else "inform", "price": u.price}
            for i, u in enumerate(tr.turns)]})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    from negolens.probes.linear import LinearProbe

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 64)), rng.integers(0, 2, 40)
    LinearProbe().fit(X, y).save(tmp_path / "probe", layer=0, label="toy")
    res = CliRunner().invoke(app, ["ablate", "--model", str(tiny_dirs["llama"]), "--transcripts", str(path), "--n", "4",
                                   "--metric", "offer", "--top", "2", "--rerun-n", "2", "--out", str(tmp_path / "out"),
                                   "--steer", str(tmp_path / "probe"), "--alphas", "-2,0,2", "--max-tokens", "1024"])
    assert res.exit_code == 0, res.output
    for name in ("ablation_accept_zero.csv", "ablation_accept_zero.png", "top_heads.csv", "ablation_offer_zero.csv", "ablation_offer_zero.png",
                 "rerun.csv", "steering.csv"):
        assert (tmp_path / "out" / name).is_file(), name


def test_patching_restores_the_gap(copy_model):
    from negolens.analysis.patching import budget_pairs, patch_heads

    pairs = budget_pairs(copy_model, transcripts(4), "buyer", factor=1.5)
    assert pairs and all(a.ids != b.ids for a, b in pairs)
    layers = patch_heads(copy_model, pairs, layers_only=True)
    # patching every layer's attention (the only place the prompts interact) restores a
    # consistent fraction; the last layer's whole-layer patch is exact for its own heads
    assert np.isfinite(layers.restored).all() and len(layers) == copy_model.shape.n_layers
    heads = patch_heads(copy_model, pairs)
    assert len(heads) == copy_model.shape.n_layers * copy_model.shape.n_heads
    inert = heads[(heads.layer == 0) & (heads["head"] == 1)].iloc[0]
    assert abs(inert.delta) < 1e-4  # an inert head carries nothing to patch


def test_layer_ablation_equals_head_set(copy_model):
    from negolens.analysis.ablation import ablated
    from negolens.analysis.sweep import layer_effects

    points = decision_points(copy_model, transcripts(3), "buyer", "accept")
    metric = LogitDiff.accept_vs_counter(copy_model)
    per_layer = layer_effects(copy_model, points, metric)
    b = copy_model.batch([p.ids for p in points])
    clean = metric(copy_model.logits(b)[:, -1, metric.tokens()])
    with ablated(copy_model, [(0, h) for h in range(copy_model.shape.n_heads)]):
        whole = metric(copy_model.logits(b)[:, -1, metric.tokens()])
    assert np.allclose(per_layer[:, 0], (whole - clean).cpu().numpy(), atol=1e-4)


def test_cached_greedy_offer_equals_rereading_the_prompt(tiny):
    """The KV-cached digit decoder writes the same prices as a full forward per digit."""
    import torch

    from negolens.analysis.behaviour import MAX_DIGITS, greedy_offer

    points = decision_points(tiny, transcripts(3), "buyer", "offer")
    tok = tiny.tokenizer
    pieces = tok.batch_decode([[i] for i in range(len(tok))])
    digits = [i for i, p in enumerate(pieces) if p.isdigit()]
    expected = []
    for p in points:
        ids, text = list(p.ids), ""
        for step in range(MAX_DIGITS):
            with torch.no_grad():
                logits = tiny.hf(input_ids=torch.tensor([ids], device=tiny.device)).logits[0, -1].float()
            best = int(torch.argmax(logits[digits]))
            if step > 0 and logits[tok.eos_token_id] > logits[digits[best]]:
                break
            text += pieces[digits[best]]
            ids.append(digits[best])
        expected.append(np.log(float(text) / p.scenario.list_price) if text and float(text) > 0 else np.nan)
    got = greedy_offer(tiny, points, batch_size=2)
    assert np.allclose(got, expected, equal_nan=True, atol=1e-9)
