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
                pat = cache[f"blocks.{layer}.attn.hook_pattern"][0].cpu().numpy()
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


# -- record_attention / attention_html: the library entry points ---------------------------------

from negolens.errors import NegolensError  # noqa: E402
from negolens.probes import AttentionConfig, attention_html, record_attention  # noqa: E402
from negolens.probes.attention import HEAD_COLUMNS  # noqa: E402


def test_record_attention_table_finds_the_planted_head(planted):
    table = record_attention(planted, transcripts(12), config=AttentionConfig(n_perm=2000), progress=False)
    assert list(table.columns) == list(HEAD_COLUMNS)
    n_heads = planted.shape.n_layers * planted.shape.n_heads
    assert len(table) == n_heads * table.score.nunique() and set(table.score) <= set(SCORES)
    assert table.attrs["view"] == "buyer" and table.attrs["n_transcripts"] == 12
    top = table[table.score == "decision_other_price"].sort_values("effect", ascending=False).iloc[0]
    assert (top.layer, top["head"]) == (0, 0) and top.q < 0.01
    # the same numbers as the recorder + summarize_heads by hand
    scores = AttentionRecorder(planted).record(transcripts(12), "buyer", progress=False, max_tokens=512)
    by_hand = summarize_heads(scores, n_perm=2000)
    np.testing.assert_allclose(table.effect.to_numpy(), by_hand.effect.to_numpy(), atol=1e-6)


def test_record_attention_rejects_bad_input(tiny_llama):
    with pytest.raises(NegolensError, match="no transcripts"):
        record_attention(tiny_llama, [], progress=False)
    with pytest.raises(NegolensError, match="buyer, seller"):
        record_attention(tiny_llama, transcripts(2), view="referee", progress=False)


def test_too_few_dialogues_is_a_clear_error_not_an_empty_table(tiny_llama):
    # Statistics over one dialogue would be fabricated: every score needs at least 2.
    with pytest.raises(NegolensError, match="at least 2"):
        record_attention(tiny_llama, transcripts(1), config=AttentionConfig.quick(), progress=False)


def test_attention_html_needs_no_recorder(tiny_llama, tmp_path):
    page = attention_html(tiny_llama, transcripts(1)[0], "seller", 1, 1, tmp_path / "L1H1.html", max_tokens=200)
    html = page.read_text(encoding="utf-8")
    assert "unpkg.com" not in html and "CircuitsVis" in html and "seller's view" in html
    with pytest.raises(NegolensError, match="no head L1H9"):
        attention_html(tiny_llama, transcripts(1)[0], "buyer", 1, 9, tmp_path / "bad.html")
