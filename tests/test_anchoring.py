"""Anchoring: paired dialogues, the behavioural coefficient, and mediation that finds a planted head."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch

import negolens
from negolens.agents import example_transcripts
from negolens.agents.decoding import digit_tokens, token_pieces
from negolens.analysis import greedy_offer
from negolens.analysis.anchoring import anchoring_effect, anchoring_pairs, coefficient_table, rewrite_price
from negolens.analysis.anchoring_study import AnchoringConfig, run_anchoring
from negolens.analysis.mediation import mediating_set, mediation_screen, offer_shares
from negolens.analysis.patched_decoding import Component, greedy_digits, pair_spans
from negolens.errors import NegolensError
from negolens.testing import tiny_model_dir

PLANTED = [(1, 2), (0, 1)]


def planted_model(root, layer: int, head: int, scale: float = 8.0):
    """A tiny Llama whose ONLY path from the prompt to the decision is head (layer, head).

    Every other head's output projection and every MLP are zeroed, so the residual stream is the
    token embedding plus that head's output. The head is made to read prices: a constant
    embedding direction (dim 0) feeds its query, a "this is a digit" direction (dim 1) its key,
    both on the slowest rotary pair (dims 7/15, almost position-free) — it attends to the digit
    tokens, so its output at the decision carries the opening price.
    """
    model = negolens.load(tiny_model_dir(root), device="cpu")
    hf, H, d = model.hf, model.shape.n_heads, model.shape.d_head
    kv = head // (H // hf.config.num_key_value_heads)
    digits = digit_tokens(model.tokenizer, token_pieces(model.tokenizer))
    with torch.no_grad():
        emb = hf.get_input_embeddings().weight
        emb[:, 0], emb[:, 1] = 1.0, 0.0
        emb[digits, 1] = 1.0
        for i, layer_ in enumerate(hf.model.layers):
            layer_.mlp.down_proj.weight.zero_()
            out = layer_.self_attn.o_proj.weight
            keep = out[:, head * d : (head + 1) * d].clone()
            out.zero_()
            if i == layer:
                out[:, head * d : (head + 1) * d] = keep * scale
                q, k = layer_.self_attn.q_proj.weight, layer_.self_attn.k_proj.weight
                q[head * d : (head + 1) * d] = 0.0
                k[kv * d : (kv + 1) * d] = 0.0
                q[head * d + 7, 0] = 3.0
                k[kv * d + 7, 1] = 3.0
    return model


@pytest.fixture(scope="module", params=PLANTED, ids=lambda p: f"L{p[0]}H{p[1]}")
def planted(request, tmp_path_factory):
    layer, head = request.param
    return planted_model(tmp_path_factory.mktemp("planted"), layer, head), (layer, head)


@pytest.fixture(scope="module")
def deaf(tmp_path_factory):
    """Every head's output and every MLP zeroed: nothing in the prompt reaches the decision."""
    model = negolens.load(tiny_model_dir(tmp_path_factory.mktemp("deaf")), device="cpu")
    with torch.no_grad():
        for layer_ in model.hf.model.layers:
            layer_.self_attn.o_proj.weight.zero_()
            layer_.mlp.down_proj.weight.zero_()
    return model


# -- pairs --------------------------------------------------------------------------------------


def test_rewrite_price_keeps_style_and_every_mention():
    assert rewrite_price("for $1,250.\nACTION: counter $1,250", 1250, 1.2) == (
        "for $1,500.\nACTION: counter $1,500", 1500.0)
    assert rewrite_price("$7.50 each", 7.5, 0.8) == ("$6.00 each", 6.0)
    assert rewrite_price("2k firm", 2000, 1.2) == ("2.4k firm", 2400.0)
    assert rewrite_price("I'd take 300 bucks, it has 21 speeds", 300, 0.8) == ("I'd take 240 bucks, it has 21 speeds", 240.0)
    assert rewrite_price("it is in great shape", 300, 0.8) is None


def test_pairs_differ_only_in_the_opening(tiny_llama):
    pairs = anchoring_pairs(tiny_llama, example_transcripts(5), factors=(1.2, 0.8))
    assert len(pairs) == 5 and pairs.skipped == {}
    for pair in pairs:
        assert pair.factors == (0.8, 1.2)
        low, high = (tiny_llama.decode(p.ids) for p in pair.points)
        assert low.endswith("ACTION: offer $") and high.endswith("ACTION: offer $")
        lo, hi = pair.openings
        assert f"${lo:.0f}" in low and f"${hi:.0f}" in high and f"${hi:.0f}" not in low
        assert low.replace(f"${lo:.0f}", "PRICE") == high.replace(f"${hi:.0f}", "PRICE")
        assert pair.low.turn == 2  # cut after the opening: buyer's offer, seller's opening, the decision


def test_pairs_skip_and_count_and_explain(tiny_llama):
    unpriced = example_transcripts(3, priced=False)
    pairs = anchoring_pairs(tiny_llama, unpriced)
    assert len(pairs) == 0 and pairs.skipped == {"no counterpart price": 3}
    tr = example_transcripts(1)[0]
    hidden = dataclasses.replace(tr, turns=[tr.turns[0], dataclasses.replace(tr.turns[1], text="Too low for me.")])
    assert anchoring_pairs(tiny_llama, [hidden]).skipped == {"price not in text": 1}
    with pytest.raises(NegolensError, match="no anchoring pairs.*pass more transcripts"):
        anchoring_effect(tiny_llama, pairs)
    with pytest.raises(NegolensError, match="no anchoring pairs"):
        run_anchoring(tiny_llama, unpriced, AnchoringConfig.quick())
    with pytest.raises(NegolensError, match="factors"):
        anchoring_pairs(tiny_llama, example_transcripts(1), factors=(1.0,))
    with pytest.raises(NegolensError, match="factors"):
        AnchoringConfig(factors=(0.8, 0.8))
    with pytest.raises(NegolensError, match="set_share"):
        AnchoringConfig(set_share=1.5)


def test_pair_spans_right_aligned():
    assert pair_spans([1, 2, 3, 9, 9], [1, 2, 4, 9, 9]) == (3, 2, True)
    assert pair_spans([1, 5, 9], [1, 5, 6, 9]) == (1, 1, False)


# -- behaviour ----------------------------------------------------------------------------------


def test_coefficient_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    rows = []
    for t in range(40):
        base = rng.normal(-0.3, 0.2)
        for f in (0.8, 1.0, 1.2):
            rows.append({"transcript": f"t{t}", "factor": f, "log_opening": np.log(f),
                         "offer": base + 0.4 * np.log(f) + rng.normal(0, 0.01)})
    per, summary = coefficient_table(pd.DataFrame(rows), "offer")
    s = summary.iloc[0]
    assert s.ci_low < 0.4 < s.ci_high and abs(s.coefficient - 0.4) < 0.02 and s.n == 40


def test_deaf_model_shows_no_anchoring(deaf):
    effect = anchoring_effect(deaf, anchoring_pairs(deaf, example_transcripts(6)))
    s = effect.summary.iloc[0]
    assert s.n == 6 and s.coefficient == 0.0 and s.ci_low == 0.0 and s.ci_high == 0.0


def test_planted_model_anchors(planted):
    model, _ = planted
    effect = anchoring_effect(model, anchoring_pairs(model, example_transcripts(8)))
    assert (effect.per_dialogue.coefficient != 0).sum() >= 1  # the opening moves the offer (the deaf model's never does)
    s = effect.summary.iloc[0]
    assert s.n == 8 and s.ci_low <= s.coefficient <= s.ci_high and s.ci_low < s.ci_high


def test_greedy_digits_equal_greedy_offer(tiny_llama):
    pairs = anchoring_pairs(tiny_llama, example_transcripts(4))
    low = [p.low for p in pairs]
    pieces = token_pieces(tiny_llama.tokenizer)
    mine = [float("".join(pieces[t] for t in toks)) for toks in greedy_digits(tiny_llama, low, dot=False)]
    ref = np.exp(greedy_offer(tiny_llama, low)) * np.array([p.list_price for p in pairs])
    np.testing.assert_allclose(mine, ref, rtol=1e-9)
    dotted = greedy_digits(tiny_llama, low)  # the agents' rule: a "." may end the number (then it is the last token)
    eos = tiny_llama.tokenizer.eos_token_id
    for toks in dotted:
        assert all(pieces[t].isdigit() for t in toks[:-1]) and (pieces[toks[-1]].isdigit() or toks[-1] == eos
                                                                 or pieces[toks[-1]] == ".")


# -- mediation ----------------------------------------------------------------------------------


def test_mediation_finds_the_planted_head(planted):
    model, (layer, head) = planted
    pairs = anchoring_pairs(model, example_transcripts(8))
    spans = [pair_spans(list(p.low.ids), list(p.high.ids)) for p in pairs]
    assert any(not s[2] for s in spans) and any(s[2] for s in spans)  # prices of unequal and equal length
    heads = mediation_screen(model, pairs, heads=True)
    assert heads.gap.iloc[0] > 0  # the planted head makes a measurable anchoring gap …
    top = heads.sort_values("share", ascending=False).iloc[0]
    assert (top["layer"], top["head"]) == (layer, head)  # … the screen ranks it first …
    assert top.share == pytest.approx(1.0, abs=1e-4) and top.ci_low == pytest.approx(1.0, abs=1e-4)
    others = heads[(heads.layer != layer) | (heads["head"] != head)]
    assert np.abs(others.share).max() < 1e-4  # … and no other head carries anything
    rng = np.random.default_rng(1)
    control = others.iloc[int(rng.integers(len(others)))]
    table = offer_shares(model, pairs, [[Component("head", layer, head)],
                                        [Component("head", int(control["layer"]), int(control["head"]))]])
    assert table.offer_high.iloc[0] != table.offer_low.iloc[0]
    assert table.share.iloc[0] == pytest.approx(1.0) and table.ci_low.iloc[0] == pytest.approx(1.0)
    assert table.share.iloc[1] == pytest.approx(0.0) and table.ci_high.iloc[1] == pytest.approx(0.0)
    chosen = mediating_set(model, pairs, [Component("head", int(control["layer"]), int(control["head"])),
                                          Component("head", layer, head)])
    assert chosen.reached.tolist() == [False, True] and chosen.share.iloc[-1] == pytest.approx(1.0)


def test_layer_screen_follows_the_path(planted):
    model, (layer, head) = planted
    pairs = anchoring_pairs(model, example_transcripts(8))
    layers = mediation_screen(model, pairs, heads=False).set_index("component").share
    assert layers[f"L{layer} attn"] == pytest.approx(1.0, abs=1e-4)
    assert layers[f"L{1 - layer} attn"] == pytest.approx(0.0, abs=1e-4)
    # the residual at the decision carries the effect only after the planted head has written it
    assert layers["L1 resid_last"] == pytest.approx(1.0 if layer == 0 else 0.0, abs=1e-4)
    assert layers["L0 resid_last"] == pytest.approx(0.0, abs=1e-4)


def test_study_end_to_end_and_deterministic(tmp_path):
    layer, head = PLANTED[0]
    model = planted_model(tmp_path, layer, head)
    cfg = AnchoringConfig.quick(n=6, max_set=2)
    one = run_anchoring(model, example_transcripts(6), cfg).tables()
    two = run_anchoring(model, example_transcripts(6), cfg).tables()
    assert set(one) == {"anchoring_effect", "anchoring_offers", "anchoring_layers", "anchoring_heads",
                        "anchoring_shares", "anchoring_mediating_set"}
    for name in one:
        pd.testing.assert_frame_equal(one[name], two[name])
    final = one["anchoring_mediating_set"].iloc[-1]
    assert final.components == f"L{layer}H{head}" and bool(final.reached)


def test_final_price_arm_runs_whole_negotiations(tiny_llama):
    from negolens.analysis.anchoring_study import anchoring_final

    table = anchoring_final(tiny_llama, negolens.agents.load_scenarios("builtin", 2), max_turns=4)
    assert len(table) == 4 and set(table.factor) == {0.8, 1.2}
    lo, hi = (table[table.factor == f].opening.to_numpy() for f in (0.8, 1.2))
    np.testing.assert_allclose(hi / lo, 1.5, rtol=1e-3)
    assert list(table.attrs["summary"].columns[:4]) == ["coefficient", "ci_low", "ci_high", "n"]


# -- CLI ----------------------------------------------------------------------------------------


def test_ablate_anchoring_cli(tiny_dirs, tmp_path):
    from typer.testing import CliRunner

    from negolens.agents.formats import write_transcripts
    from negolens.cli import app

    path = tmp_path / "dialogues.jsonl"
    write_transcripts(example_transcripts(4), path)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["ablate", "--anchoring", "--model", str(tiny_dirs["llama"]), "--transcripts",
                                   str(path), "--n", "3", "--top", "2", "--max-set", "2", "--max-tokens", "512",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("effect", "offers", "layers", "heads", "shares", "mediating_set"):
        assert (out / f"anchoring_{name}.csv").is_file(), name
    assert (out / "anchoring.png").is_file() and (out / "anchoring_heads.png").is_file()
    assert "anchoring coefficient" in res.output
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["config"]["anchoring"] is True
    assert not (out / "top_heads.csv").exists()  # the head sweep did not run


def test_atp_screen_ranks_the_planted_head_first(planted):
    model, (layer, head) = planted
    pairs = anchoring_pairs(model, example_transcripts(8))
    atp = mediation_screen(model, pairs, heads=True, method="atp")
    top = atp.sort_values("share", ascending=False).iloc[0]
    assert (top["layer"], top["head"]) == (layer, head) and set(atp.method) == {"atp"}
    others = atp[(atp.layer != layer) | (atp["head"] != head)]
    assert np.abs(others.share).max() < 1e-4  # a zeroed output projection has no gradient path
    with pytest.raises(NegolensError, match="heads only"):
        mediation_screen(model, pairs, heads=False, method="atp")


def test_suffix_reruns_equal_full_reruns(tiny_llama):
    from negolens.analysis.mediation import _all_components, _exact_chunk, _screen_inputs
    from negolens.analysis.sweep import sdpa

    pairs = anchoring_pairs(tiny_llama, example_transcripts(4))
    lo_ids, hi_ids, metric = _screen_inputs(tiny_llama, pairs.pairs)
    spans = [pair_spans(a, b) for a, b in zip(lo_ids, hi_ids)]
    assert max(s[0] for s in spans) < min(len(x) for x in lo_ids) // 4  # the span is a short suffix
    # one row, no padding (SDPA then gets no mask at all): a pair whose two anchors' offers differ
    one = next(x for x in (_screen_inputs(tiny_llama, [p]) for p in pairs.pairs) if x[2].plus != x[2].minus)
    cases = [(lo_ids, hi_ids, metric, spans), (*one, [pair_spans(one[0][0], one[1][0])])]
    for (lo, hi, met, sp), heads, attention in itertools.product(cases, (True, False), ("eager", "sdpa")):
        groups = _all_components(tiny_llama, heads)
        with torch.inference_mode(), (sdpa(tiny_llama) if attention == "sdpa" else contextlib.nullcontext()):
            fast, gap = _exact_chunk(tiny_llama, groups, lo, hi, met, sp, suffix=True)
            full, gap2 = _exact_chunk(tiny_llama, groups, lo, hi, met, sp, suffix=False)
        np.testing.assert_allclose(fast, full, atol=1e-4)
        np.testing.assert_allclose(gap, gap2)
        assert np.abs(full).max() > 1e-3  # the random model's heads do move the metric


def test_lockstep_reuses_prefills_without_changing_offers(tiny_llama):
    from negolens.analysis.patched_decoding import Lockstep

    pairs = anchoring_pairs(tiny_llama, example_transcripts(4))
    low, high = [p.low for p in pairs], [p.high for p in pairs]
    lock = Lockstep(tiny_llama, low, high)
    assert lock.P > 0  # the low prompts' unpatched prefix is computed once
    assert lock.run([]) == greedy_digits(tiny_llama, low)
    sets = [[Component("head", 1, 0)], [Component("attn", 0), Component("resid_last", 1)]]
    again = [lock.run(c) for c in sets]  # the cached prefills are reused, not consumed
    assert again == [lock.run(c) for c in sets]
    assert lock.run([Component("resid_after", 0)]) == lock.run([])  # identical tokens after the price: no-op
    assert [Lockstep(tiny_llama, low, high).run(c) for c in sets] == again
    everything = [Component("attn", l) for l in range(2)]
    assert lock.run(everything) == greedy_digits(tiny_llama, high)  # every head patched: the high run's offer


def test_comma_continues_the_number(tiny_llama):
    from negolens.analysis.patched_decoding import offer_value

    pieces = token_pieces(tiny_llama.tokenizer)
    comma = pieces.index(",")
    assert offer_value(pieces, [pieces.index("9"), comma, pieces.index("0"), pieces.index("0"), pieces.index("0")],
                       900.0) == pytest.approx(np.log(10.0))
    pairs = anchoring_pairs(tiny_llama, example_transcripts(4))
    low = [p.low for p in pairs]
    plain, with_comma = greedy_digits(tiny_llama, low), greedy_digits(tiny_llama, low, comma=True)
    for a, b in zip(plain, with_comma):
        assert b[0] == a[0] and all(t != comma for t in a)  # same first digit; no comma without the option
        assert all(not (x == comma and y == comma) for x, y in zip(b, b[1:]))  # never two separators in a row
