"""Belief probes and their causal tests: labels, the leakage control, a planted belief, the offer engine."""

from __future__ import annotations

import dataclasses
import re
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from negolens.agents import example_transcripts
from negolens.analysis.behaviour import greedy_offer
from negolens.analysis.beliefs import CausalConfig, belief_effects, concession_pairs
from negolens.analysis.decisions import DecisionPoint
from negolens.errors import NegolensError
from negolens.probes.activations import collect
from negolens.probes.beliefs import BeliefConfig, fit_beliefs, mask_seller_prices, varied_cost_dialogues
from negolens.probes.fit import ProbeConfig
from negolens.probes.labels import label_table

CONFIG = BeliefConfig(n_dialogues=40, seed=1)  # max_turns 8: the k-th seller ask is at turn 2k - 1
ASK = re.compile(r"let it go for \$([\d,]+(?:\.\d+)?)")
LISTED = re.compile(r"Listed price: \$([\d,]+(?:\.\d+)?)")


@pytest.fixture(scope="module")
def dialogues():
    return varied_cost_dialogues(CONFIG)


@pytest.fixture(scope="module")
def short_dialogues():
    """Three turns each: the buyer's one belief position faces the seller's first ask."""
    return varied_cost_dialogues(dataclasses.replace(CONFIG, turns=3))


def implied_costs(tokenizer, ids: list[int], max_turns: int) -> np.ndarray:
    """Per token: the seller cost / list that the text so far implies (0 before any ask).

    The rule seller asks list + (cost - list) * n / (max_turns - 1) at turn n, so its k-th ask
    a (turn 2k - 1) gives cost = 1 - (1 - a / list) * (max_turns - 1) / (2k - 1). Read from the
    decoded text only: the planted model genuinely derives its belief from the seller's prices.
    """
    pieces = [tokenizer.decode([i]) for i in ids]
    ends = np.cumsum([len(p) for p in pieces])
    text = "".join(pieces)
    listed = LISTED.search(text)
    out = np.zeros(len(ids))
    if listed is None:
        return out
    lp = float(listed.group(1).replace(",", ""))
    for k, m in enumerate(ASK.finditer(text), start=1):
        ask = float(m.group(1).replace(",", "")) / lp
        out[ends >= m.end()] = 1 - (1 - ask) * (max_turns - 1) / (2 * k - 1)
    return out


@contextmanager
def planted(model, layer: int, direction: torch.Tensor, scale: float):
    """Write ``scale`` × implied cost × ``direction`` into the residual stream entering ``layer``."""
    values = {}

    def read_ids(module, args, output):
        ids = args[0] if args else None
        if ids is not None:
            values["v"] = torch.tensor(np.stack([implied_costs(model.tokenizer, row.tolist(), CONFIG.max_turns)
                                                 for row in ids]), dtype=torch.float32)

    def write(module, args, kwargs):
        h = (args[0] if args else kwargs["hidden_states"]).clone()
        h += scale * values["v"].to(h.device, h.dtype)[..., None] * direction.to(h.device, h.dtype)
        return ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})

    handles = [model.hf.get_input_embeddings().register_forward_hook(read_ids),
               model.sites.module("resid_pre", layer).register_forward_pre_hook(write, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def r2(result, condition: str, layer: int, label: str = "seller_cost_ratio"):
    c = result.curves
    return c[(c.condition == condition) & (c.label == label) & (c.layer == layer)].iloc[0]


def test_planted_belief_is_read_and_the_leakage_control_falls_to_chance(tiny_llama, short_dialogues):
    dialogues = short_dialogues
    config = ProbeConfig(n_splits=5, max_tokens=1024)
    rng = torch.Generator().manual_seed(0)
    direction = torch.randn(tiny_llama.shape.d_model, generator=rng)
    direction /= direction.norm()
    with planted(tiny_llama, 1, direction, scale=1000.0):  # far above the residual norm
        found = fit_beliefs(tiny_llama, dialogues, ["seller_cost_ratio"], config=config, progress=False)
    plain = fit_beliefs(tiny_llama, dialogues, ["seller_cost_ratio"], config=config, leakage_control=False,
                        progress=False)
    read, control = r2(found, "dialogues", 1), r2(found, "leakage control", 1)
    assert read.score > 0.75 and read.ci_low > 0.6         # the planted belief is read after the planted layer
    assert r2(found, "dialogues", 0).score < 0.3            # … and not before it
    assert control.score < control.baseline + 0.15 and control.ci_low < control.baseline + 0.05  # chance
    assert r2(plain, "dialogues", 1).score < 0.3            # the unplanted model does not carry it
    assert found.layers["seller_cost_ratio"] == 1
    unit = found.probes["seller_cost_ratio"].direction()
    # the probe's direction leans on the planted one (a random unit vector in 64 dims: |cos| ~ 0.13)
    assert abs(float(np.dot(unit, direction.numpy()))) > 0.3


def test_belief_labels(tiny_llama, dialogues):
    items = dialogues[:3]
    table = label_table(collect(tiny_llama, items, progress=False, max_tokens=1024).meta, items, "buyer")
    for tr in items:
        rows = table[(table.dialogue == tr.id) & (table.rule == "before_reply")].set_index("turn")
        s = tr.scenario
        assert np.isnan(rows.loc[0, "seller_cost_ratio"])  # the seller has not asked yet
        assert np.isnan(rows.loc[1, "seller_cost_ratio"])  # the seller's own turn
        assert rows.loc[2, "seller_cost_ratio"] == pytest.approx(s.seller_cost / s.list_price)
        assert rows.loc[4, "zopa_ratio"] == pytest.approx((s.buyer_budget - s.seller_cost) / s.list_price)
        assert np.isnan(rows.loc[2, "seller_concession"])
        assert rows.loc[4, "seller_concession"] == pytest.approx((tr.turns[1].price - tr.turns[3].price) / s.list_price)
    seller_view = label_table(collect(tiny_llama, items[:1], "seller", progress=False, max_tokens=1024).meta, items[:1],
                              "seller")
    assert seller_view.seller_cost_ratio.isna().all()
    craigslist = [dataclasses.replace(t, scenario=dataclasses.replace(t.scenario, source="craigslist")) for t in items[:1]]
    cl = label_table(collect(tiny_llama, craigslist, progress=False, max_tokens=1024).meta, craigslist, "buyer")
    assert cl.seller_cost_ratio.isna().all() and cl.seller_concession.notna().any()  # cost unknown, prices known


def test_varied_cost_dialogues(dialogues):
    costs = np.array([t.scenario.seller_cost / t.scenario.list_price for t in dialogues])
    assert len(dialogues) == CONFIG.n_dialogues and costs.min() >= CONFIG.cost_low and costs.max() <= CONFIG.cost_high
    assert costs.std() > 0.1 and len({t.id for t in dialogues}) == len(dialogues)
    assert all(len(t.turns) == CONFIG.turns and [u.role for u in t.turns[:2]] == ["buyer", "seller"] for t in dialogues)
    assert all(u.intent != "accept" for t in dialogues for u in t.turns[:-1])
    with pytest.raises(NegolensError, match="cost_low"):
        BeliefConfig(cost_low=0.9, cost_high=0.5)


def test_mask_seller_prices(dialogues):
    tr = dialogues[0]
    masked = mask_seller_prices([tr])[0]
    shown = f"${tr.scenario.list_price:,.0f}"
    assert masked.id == tr.id and masked.scenario == tr.scenario
    for before, after in zip(tr.turns, masked.turns):
        if before.role == "buyer":
            assert after == before
        else:
            assert after.price == tr.scenario.list_price and after.text.count(shown) == 2
            assert not re.search(r"\$\d", after.text.replace(shown, ""))
    fixed = mask_seller_prices(example_transcripts(1), price=100)[0]
    assert fixed.turns[1].text == "I can sell it for $100." and fixed.turns[1].price == 100


def test_offer_engine_matches_greedy_offer(tiny_llama):
    config = CausalConfig(n_pairs=3, patch_layers="1", steer_deltas=(0.0, 0.5))
    pairs = concession_pairs(tiny_llama, config)
    assert all(len(p.small) == len(p.big) and p.small[: p.start] == p.big[: p.start] for p in pairs)
    assert all(p.asks[1] > p.asks[2] for p in pairs)
    points = [DecisionPoint(ids, p.id, 4, p.scenario, "buyer", "offer") for p in pairs for ids in (p.small, p.big)]
    expected = greedy_offer(tiny_llama, points).reshape(len(pairs), 2)
    rng = np.random.default_rng(0)
    from negolens.probes.linear import LinearProbe

    probe = LinearProbe("regression").fit(rng.normal(size=(40, tiny_llama.shape.d_model)), rng.normal(size=40))
    out = belief_effects(tiny_llama, pairs, probe, layer=1, config=config, progress=False)
    table = out["pairs"]
    np.testing.assert_allclose(table[["small", "big"]].to_numpy(), expected, rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(table["steer belief +0"], table["small"], rtol=1e-5, equal_nan=True)
    assert set(out["slopes"].direction) == {"belief", "random"}
    alphas = out["steering"].groupby("direction").alpha.max()
    assert alphas["belief"] == pytest.approx(alphas["random"])  # the random control has the same norm
    assert list(out["patching"].positions) == ["price tokens", "later tokens"]


def test_causal_config_errors():
    with pytest.raises(NegolensError, match="small_step"):
        CausalConfig(small_step=0.3, big_step=0.1)
    with pytest.raises(NegolensError, match="two different steps"):
        CausalConfig(steer_deltas=(0.1,))


def test_probe_verb_runs_the_belief_study(tiny_dirs, tmp_path):
    from typer.testing import CliRunner

    from negolens.cli import app

    out = tmp_path / "beliefs"
    args = ["probe", "--beliefs", "--model", str(tiny_dirs["llama"]), "--n-dialogues", "4", "--turns", "3",
            "--n-splits", "2", "--max-tokens", "1024", "--n-pairs", "2", "--patch-layers", "1",
            "--steer-deltas=-0.1,0.1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "seller_cost_ratio" in result.output and "leakage control" in result.output
    for name in ("belief_curves.csv", "belief_patching.csv", "belief_steering.csv", "belief_slopes.csv",
                 "belief_effect.csv", "belief_pairs.csv", "beliefs.png"):
        assert (out / name).is_file(), name
    import pandas as pd

    steering = pd.read_csv(out / "belief_steering.csv")
    assert sorted(steering.delta.unique()) == [-0.1, 0.1] and set(steering.direction) == {"belief", "random"}


def test_fit_beliefs_errors(tiny_llama, dialogues):
    with pytest.raises(NegolensError, match="belief label"):
        fit_beliefs(tiny_llama, dialogues[:2], ["act"], progress=False)
    with pytest.raises(NegolensError, match="no transcripts"):
        fit_beliefs(tiny_llama, [], progress=False)
