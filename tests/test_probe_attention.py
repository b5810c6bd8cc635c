"""Attention recording on tiny models: exact against full patterns, and a planted head found."""

import numpy as np
import pytest

import negolens
from negolens.probes.attention import AttentionRecorder, claim, summarize_heads
from negolens.probes.pairs import SCORES

from probe_fixtures import plant_price_head, transcripts


@pytest.fixture(scope="module")
def planted(tiny_dirs):
    model = negolens.load(tiny_dirs["llama"])
    plant_price_head(model, head=0)
    return model


def test_streamed_scores_equal_full_patterns(tiny_llama):
    """The in-hook gather gives exactly what the full cached pattern gives."""
    rec = AttentionRecorder(tiny_llama)
    items = transcripts(3)
    scores = rec.record(items, "buyer", batch_size=3, progress=False)
    for d, tr in enumerate(items):
        view, pairs = rec.prepare(tr, "buyer")
        _, cache = tiny_llama.run_with_cache(tiny_llama.batch([view.chat]), names_filter=lambda n: n.endswith("hook_pattern"))
        for j, name in enumerate(SCORES):
            ps = pairs[name]
            if not ps.q:
                assert np.isnan(scores.tagged[d, j]).all()
                continue
            for layer in range(tiny_llama.shape.n_layers):
                pat = cache[f"blocks.{layer}.attn.hook_pattern"][0].numpy()
                want = sum(w * pat[:, q, k] for q, k, w in zip(ps.q, ps.k, ps.w))
                ctrl = sum(w * pat[:, q, k] for q, k, w in zip(ps.q, ps.ctrl_k, ps.w))
                np.testing.assert_allclose(scores.tagged[d, j, layer], want, atol=1e-5)
                np.testing.assert_allclose(scores.control[d, j, layer], ctrl, atol=1e-5)


def test_planted_price_head_comes_out_first(planted):
    scores = AttentionRecorder(planted).record(transcripts(12), "buyer", progress=False)
    table = summarize_heads(scores, n_perm=2000)
    for score in ("decision_other_price", "decision_own_price"):
        top = table[table.score == score].sort_values("effect", ascending=False).iloc[0]
        assert (top.layer, top["head"]) == (0, 0), score
        assert top.q < 0.01 and top.ci_low > 0.1  # (it also attends to the prices in the system prompt)
    silenced = claim(table, "decision_other_price", 0, 1)  # the uniform partner head
    assert silenced["q"] > 0.01 or abs(silenced["effect"]) < 0.05


def test_claim_errors_for_missing_head(tiny_llama):
    table = summarize_heads(AttentionRecorder(tiny_llama).record(transcripts(3), "buyer", progress=False), n_perm=100)
    with pytest.raises(ValueError, match="no head L1H14"):
        claim(table, "price_verb_across", 1, 14)


def test_controls_are_untagged_words_in_the_same_turn(tiny_llama):
    rec = AttentionRecorder(tiny_llama)
    view, pairs = rec.prepare(transcripts(1)[0], "buyer")
    from negolens.tagging import tag_chat

    tags = tag_chat(view.chat)
    tagged = set(tags.indices("price")) | set(tags.indices("verb")) | set(tags.indices("role"))
    for ps in pairs.values():
        for q, k, c in zip(ps.q, ps.k, ps.ctrl_k):
            assert c not in tagged and tags.token_turn[c] == tags.token_turn[k]
            assert c < q and k < q  # causal: both visible from the query
