"""The turn decoder on tiny random models: every turn yields a legal act, planted preferences
are obeyed only where legal, and sampling is seeded per dialogue."""

import pytest
import torch

from negolens.agents.builtin import builtin_scenarios
from negolens.agents.decoding import MAX_PRICE_TOKENS, Request
from negolens.agents.llm_agent import LLMAgent
from negolens.agents.protocol import PRICE_ACTS, Act, Move, Negotiation
from negolens.errors import NegolensError

SCENARIOS = builtin_scenarios()[:3]


def requests(agent, negs, seeds=(1, 2, 3)):
    return [Request(agent.model.render(agent.messages(n), add_generation_prompt=True).input_ids,
                    n.legal_acts(agent.role), seed=s, cot=agent.cot) for n, s in zip(negs, seeds)]


def test_every_turn_yields_a_legal_act(tiny):
    agent = LLMAgent(tiny, "buyer", temperature=1.0, max_utterance_tokens=8)
    negs = [Negotiation(s) for s in SCENARIOS]
    negs[1].apply(Move("hi", Act.GREET))  # now the seller moves in negs[1]...
    negs[1].apply(Move("$300", Act.OFFER, 300.0))  # ...and the buyer faces an offer
    for neg, out in zip(negs, agent.decoder.decode(requests(agent, negs))):
        assert out.act in neg.legal_acts("buyer")
        if out.act in PRICE_ACTS:
            assert out.price is not None and out.price >= 0
        assert out.new_tokens <= 8 + 4 + 6 + 10 + 4
        assert out.prompt_tokens > 0


def boost(model, token_ids, amount=1e4):
    """Plant a preference: add ``amount`` to these tokens' logits at every position."""
    def hook(_, __, out):
        out = out.clone()
        out[..., token_ids] += amount
        return out
    return model.hf.lm_head.register_forward_hook(hook)


def test_planted_preference_obeys_legality(tiny_llama):
    agent = LLMAgent(tiny_llama, "buyer", max_utterance_tokens=4)
    accept_first = agent.decoder.act_ids[Act.ACCEPT][0]
    handle = boost(tiny_llama, [accept_first])
    try:
        fresh, facing = Negotiation(SCENARIOS[0]), Negotiation(SCENARIOS[0], first="seller")
        facing.apply(Move("250?", Act.OFFER, 250.0))
        a, b = agent.decoder.decode(requests(agent, [fresh, facing], seeds=(0, 0)))
    finally:
        handle.remove()
    assert b.act is Act.ACCEPT  # the planted favourite, where it is legal
    assert a.act is not Act.ACCEPT and a.act in fresh.legal_acts("buyer")  # never where it is not


def test_planted_digits_make_the_price(tiny_llama):
    agent = LLMAgent(tiny_llama, "buyer", max_utterance_tokens=3)
    tok = tiny_llama.tokenizer
    offer = agent.decoder.act_ids[Act.OFFER]
    seven = tok.convert_tokens_to_ids("7")
    handle = boost(tiny_llama, [offer[0], seven])
    try:
        (out,) = agent.decoder.decode(requests(agent, [Negotiation(SCENARIOS[0])], seeds=(0,)))
    finally:
        handle.remove()
    assert out.act is Act.OFFER
    assert str(int(out.price)) == "7" * MAX_PRICE_TOKENS  # digits only, capped
    neg = Negotiation(SCENARIOS[0])
    assert neg.apply(Move(out.utterance, out.act, out.price)).failure == "absurd_price"  # recorded, not a crash


def test_sampling_is_per_dialogue_not_per_batch(tiny_llama):
    agent = LLMAgent(tiny_llama, "buyer", temperature=1.0, max_utterance_tokens=6)
    negs = [Negotiation(s) for s in SCENARIOS]
    together = agent.decoder.decode(requests(agent, negs))
    alone = agent.decoder.decode(requests(agent, negs[1:2], seeds=(2,)))
    assert (together[1].utterance, together[1].act, together[1].price) == (alone[0].utterance, alone[0].act, alone[0].price)
    again = agent.decoder.decode(requests(agent, negs))
    assert [(d.utterance, d.act, d.price) for d in again] == [(d.utterance, d.act, d.price) for d in together]


def test_cot_is_decoded_and_hidden(tiny_llama):
    agent = LLMAgent(tiny_llama, "buyer", cot=True, temperature=1.0, max_utterance_tokens=4)
    neg = Negotiation(SCENARIOS[0])
    (out,) = agent.decoder.decode(requests(agent, [neg], seeds=(5,)))
    assert out.reasoning is not None
    neg.apply(Move(out.utterance, out.act, out.price, reasoning="SECRET-PLAN"))
    seller_view = LLMAgent(tiny_llama, "seller").messages(neg)
    assert "THOUGHT" in agent.system_prompt(neg)
    assert all("SECRET-PLAN" not in t.content for t in seller_view)
    assert torch.is_tensor(agent.decoder.digits)


def test_kv_reuse_changes_nothing_but_speed(tiny_dirs):
    """Turn after turn, decoding with cross-turn (and cross-dialogue prefix) KV reuse equals a
    full prefill every turn — and the reuse really happens."""
    import negolens

    model = negolens.load(tiny_dirs["llama"], attn_implementation="sdpa")
    fast = LLMAgent(model, "buyer", temperature=1.0, max_utterance_tokens=6, reuse_kv=True)
    slow = LLMAgent(model, "buyer", temperature=1.0, max_utterance_tokens=6, reuse_kv=False)
    negs = [Negotiation(s, max_turns=20) for s in SCENARIOS]
    for turn in range(4):
        a = fast.act_batch(negs, seeds=[turn, turn + 1, turn + 2])
        b = slow.act_batch(negs, seeds=[turn, turn + 1, turn + 2])
        assert [(m.utterance, m.act, m.price, m.new_tokens) for m in a] == [(m.utterance, m.act, m.price, m.new_tokens) for m in b]
        assert min(fast.decoder.last_reuse) > 0 and max(slow.decoder.last_reuse) == 0
        for neg, move in zip(negs, a):
            neg.apply(Move(move.utterance, Act.INFORM))  # keep talking: the model's words, a fixed act
            neg.apply(Move("I can do $300.", Act.OFFER, 300.0))


def split_turn(decoder, out):
    """(words, act, price) token ids of a decoded turn: the words end where ``\\nACTION:`` starts."""
    ids, prefix = out.token_ids, decoder.action_prefix
    start = next(i for i in range(len(ids)) if ids[i:i + len(prefix)] == prefix)
    rest = ids[start + len(prefix) + len(decoder.act_ids[out.act]):]
    if out.act in PRICE_ACTS:
        rest = rest[len(decoder.price_prefix):]
        rest = rest[:-1] if rest and rest[-1] == decoder.end_id else rest
    return ids[:start], rest


def test_replay_emits_what_the_decoder_emits(tiny):
    """A move replayed through the state machine (teacher forcing, no model) gives the decoder's
    own token ids and chosen flags for sampled turns of every family, long and short words."""
    for cap in (3, 12):
        agent = LLMAgent(tiny, "buyer", temperature=1.5, max_utterance_tokens=cap)
        negs = [Negotiation(s) for s in SCENARIOS] + [Negotiation(s, first="seller") for s in SCENARIOS]
        for n in negs[3:]:
            n.apply(Move("$300", Act.OFFER, 300.0))
        outs = agent.decoder.decode(requests(agent, negs, seeds=range(6)))
        for neg, out in zip(negs, outs):
            words, price = split_turn(agent.decoder, out)
            ids, chosen = agent.decoder.replay(words, out.act, price, neg.legal_acts("buyer"))
            assert ids == out.token_ids
            ended = len(words)  # the policy may have ended its words with end-of-turn rather than a newline
            assert chosen[:ended] + chosen[ended + 1:] == out.sampled[:ended] + out.sampled[ended + 1:]


def test_replay_refuses_what_the_decoder_cannot_emit(tiny_llama):
    agent = LLMAgent(tiny_llama, "buyer", max_utterance_tokens=3)
    dec, enc = agent.decoder, lambda s: tiny_llama.tokenizer.encode(s, add_special_tokens=False)
    fresh = Negotiation(SCENARIOS[0]).legal_acts("buyer")
    ids, chosen = dec.replay(enc("Hi"), Act.OFFER, enc("120"), fresh)
    assert ids[-1] == dec.end_id and tiny_llama.tokenizer.decode(ids[-4:-1]) == "120" and chosen[-4:] == [1] * 4
    for words, act, price, match in [(enc("one two three four five"), Act.OFFER, enc("1"), "cap"),
                                     (enc("Hi"), Act.ACCEPT, [], "legal"),
                                     (enc("Hi"), Act.OFFER, enc("1a"), "price token"),
                                     (enc("\n"), Act.GREET, [], "newline")]:
        with pytest.raises(NegolensError, match=match):
            dec.replay(words, act, price, fresh)


def test_every_price_the_agent_reads_is_one_its_decoder_can_write(tiny_llama):
    """The budget, the list price and the seller's counters are written in the one format the
    constrained decoder emits (digits, one point): a four-digit budget read as ``$1,165`` could
    not be written back (the decoder ends a number at a comma), so the agent's number would be
    another number than the one it read."""
    import dataclasses
    import re

    from negolens.agents.rule_agent import RuleAgent

    s = dataclasses.replace(SCENARIOS[0], list_price=1199.99, buyer_budget=959.99, buyer_target=839.99,
                            seller_target=1199.99, seller_cost=699.99)
    buyer, neg = LLMAgent(tiny_llama, "buyer", max_utterance_tokens=3), Negotiation(s)
    neg.apply(Move("How about this?", Act.OFFER, 1000.5))
    neg.apply(RuleAgent("seller").act(neg))
    text = "\n".join(t.content for t in buyer.messages(neg))
    read = re.findall(r"\$(\d[\d.,]*\d)", text)
    assert {"1199.99", "959.99", "839.99", "1000.50"} <= set(read) and len(read) >= 5
    enc = lambda x: tiny_llama.tokenizer.encode(x, add_special_tokens=False)  # noqa: E731
    for number in read:
        ids, _ = buyer.decoder.replay(enc("Hi"), Act.COUNTER, enc(number), neg.legal_acts("buyer"))
        written = tiny_llama.tokenizer.decode(ids, skip_special_tokens=True).rsplit("$", 1)[1]
        assert float(written) == float(number)
