"""The bridge and the HF model compute the same function, padded or not."""

import torch

from negolens.chat import Turn

TURNS = [Turn("user", "I'm asking $350 for the bike, it has new tires and 21 speeds."), Turn("assistant", "Would you take $250?")]


def test_bridge_logits_match_hf(tiny):
    chats = [tiny.render(TURNS), tiny.render(TURNS[:1], add_generation_prompt=True)]
    batch = tiny.batch(chats)
    assert batch.pad[0] == 0 and batch.pad[1] > 0
    hf, br = tiny.logits(batch), tiny.bridge_logits(batch)
    real = batch.attention_mask.bool()
    assert hf.std() > 0.1  # not a degenerate model
    assert (hf - br)[real].abs().max().item() < 1e-4


def test_left_padding_does_not_change_logits(tiny):
    long, short = tiny.render(TURNS), tiny.render(TURNS[:1])
    alone = tiny.logits(tiny.batch([short]))[0]
    padded = tiny.batch([long, short])
    assert len(short) > 8  # longer than the tiny Gemma's sliding window
    row = tiny.logits(padded)[1, padded.pad[1] :]
    assert torch.allclose(alone, row, atol=1e-4)


def test_hook_shapes(tiny):
    batch = tiny.batch([tiny.render(TURNS)])
    s = tiny.shape
    names = ["blocks.0.attn.hook_z", "blocks.0.attn.hook_k", "blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post"]
    _, cache = tiny.run_with_cache(batch, names_filter=lambda n: n in names)
    T = batch.input_ids.shape[1]
    assert cache["blocks.0.attn.hook_z"].shape == (1, T, s.n_heads, s.d_head)
    assert cache["blocks.0.attn.hook_k"].shape == (1, T, s.n_kv_heads, s.d_head)  # per KV group (GQA)
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, s.n_heads, T, T)
    assert cache["blocks.1.hook_resid_post"].shape == (1, T, s.d_model)


def test_bf16_cast_rebuilds_bridge(tiny_dirs):
    import negolens

    model = negolens.load(tiny_dirs["llama"])
    batch = model.batch([model.render(TURNS)])
    ref = model.logits(batch)
    model.to("bfloat16")
    assert model.dtype == torch.bfloat16 and model.bridge.cfg.dtype == torch.bfloat16
    low = model.bridge_logits(batch).float()
    assert (model.logits(batch).float() - low).abs().max().item() < 1e-2  # bridge == HF in bf16 too
    assert (ref.argmax(-1) == low.argmax(-1)).float().mean().item() > 0.9  # and bf16 ≈ fp32


def test_generate_is_seeded_and_stops(tiny_llama):
    prompt = tiny_llama.render(TURNS[:1], add_generation_prompt=True)
    a = tiny_llama.generate([prompt, prompt], max_new_tokens=6, temperature=1.0, seed=3)
    b = tiny_llama.generate([prompt, prompt], max_new_tokens=6, temperature=1.0, seed=3)
    assert a == b
    greedy = tiny_llama.generate([prompt], max_new_tokens=6)
    assert len(greedy[0]) <= 6 and tiny_llama.tokenizer.eos_token_id not in greedy[0]


def test_last_position_keeps_the_logits_of_logits_to_keep_one(tiny):
    """``negolens.batching.last_position`` (an index, a contiguous gather) gives the last
    position's logits bit for bit as ``logits_to_keep=1`` (a strided slice), padded rows
    included, in float32 and in bfloat16."""
    import copy

    from negolens.batching import last_position

    batch = tiny.batch([tiny.render(TURNS), tiny.render(TURNS[:1])])
    kw = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
    for model in (tiny.hf, copy.deepcopy(tiny.hf).to(torch.bfloat16)):
        with torch.no_grad():
            sliced = model(**kw, logits_to_keep=1).logits
            gathered = model(**kw, logits_to_keep=last_position()).logits
        assert sliced.shape == gathered.shape == (2, 1, tiny.shape.d_vocab)
        assert torch.equal(sliced, gathered)
