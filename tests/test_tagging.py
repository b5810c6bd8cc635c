from negolens.chat import Turn
from negolens.tagging import tag_chat, tag_text

TURNS = [
    Turn("system", "You are the buyer."),
    Turn("user", "I sell it for $1,250. Would you take it?"),
    Turn("assistant", "I offered 1.2k, I can pay 120 bucks more."),
]


def decoded(model, idx):
    return "".join(model.tokenizer.decode([model.render(TURNS).input_ids[i]]) for i in idx)


def test_price_split_across_tokens(tiny):
    chat = tiny.render(TURNS)
    tags = tag_chat(chat)
    prices = tags.of("price")
    assert [p.text for p in prices] == ["$1,250", "1.2k", "120 bucks"]
    assert [p.value for p in prices] == [1250.0, 1200.0, 120.0]
    first = prices[0]
    assert len(first.tokens) >= 5  # ' $' '1' ',' '2' '5' '0': digits are split one per token
    assert decoded(tiny, first.tokens).strip() == "$1,250"
    assert [p.turn for p in prices] == [1, 2, 2]


def test_verbs_roles_and_turns(tiny):
    tags = tag_chat(tiny.render(TURNS))
    assert [(v.text, v.lemma) for v in tags.of("verb")] == [
        ("sell", "sell"), ("take", "take"), ("offered", "offer"), ("pay", "pay"),
    ]
    roles = [(r.lemma, r.turn) for r in tags.of("role")]
    header_roles = [name for name, _ in roles if name != "buyer"]
    assert ("buyer", 0) in roles
    assert header_roles == ["system", "user", "model" if "gemma" in tiny.name else "assistant"][-len(header_roles):]
    assert len(tags.turn_ranges) == 3 and len(tags.header_ranges) == 3
    for (h0, h1), (t0, t1) in zip(tags.header_ranges, tags.turn_ranges):
        assert h1 == t0 and t0 < t1
    mask = tags.mask("price")
    assert mask.sum().item() == len(tags.indices("price"))


def test_tag_text_without_turns(tiny_llama):
    text = "Deal at $300?"
    enc = tiny_llama.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = tag_text(text, enc["offset_mapping"])
    assert [(s.kind, s.text, s.turn) for s in spans] == [("verb", "Deal", -1), ("price", "$300", -1)]
