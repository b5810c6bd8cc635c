import pytest

from negolens.chat import Turn, render_chat
from negolens.errors import ChatFormatError

TURNS = [
    Turn("system", "You are a buyer. Target $260."),
    Turn("user", "I'm asking $350 for the bike."),
    Turn("assistant", "Would you take $250?"),
]


def test_ids_equal_apply_chat_template(tiny):
    for gen in (False, True):
        rendered = tiny.render(TURNS, add_generation_prompt=gen)
        ref = tiny.tokenizer.apply_chat_template(
            [{"role": t.role, "content": t.content} for t in TURNS], add_generation_prompt=gen, tokenize=True
        )
        ref = ref["input_ids"] if hasattr(ref, "keys") else ref
        assert rendered.input_ids == list(ref)


def test_turn_spans_and_token_ranges(tiny):
    rendered = tiny.render(TURNS)
    for turn, (start, end) in zip(TURNS, rendered.turn_spans):
        assert rendered.text[start:end] == turn.content
    for i, turn in enumerate(TURNS):
        lo, hi = rendered.turn_token_range(i)
        assert turn.content.strip() in tiny.tokenizer.decode(rendered.input_ids[lo:hi])
    owners = rendered.token_turns()
    assert set(owners) == {-1, 0, 1, 2}
    assert owners[0] == -1  # the first token is template scaffolding


def test_single_bos(tiny):
    ids = tiny.render(TURNS).input_ids
    bos = tiny.tokenizer.bos_token_id
    assert ids.count(bos) <= len(TURNS)  # chatml uses <|im_start|> per turn; gemma one <bos>
    if tiny.tokenizer.bos_token == "<bos>":
        assert ids.count(bos) == 1


def test_dict_messages_and_errors(tiny_llama):
    r = tiny_llama.render([{"role": "user", "content": "hi"}])
    assert r.roles == ["user"]
    with pytest.raises(ChatFormatError, match="unknown chat role"):
        Turn("narrator", "x")
    with pytest.raises(ChatFormatError, match="empty"):
        tiny_llama.render([])


def test_no_template_is_a_clear_error(tiny_llama):
    tok = tiny_llama.tokenizer
    saved, tok.chat_template = tok.chat_template, None
    try:
        with pytest.raises(ChatFormatError, match="no chat template"):
            render_chat(tok, TURNS)
    finally:
        tok.chat_template = saved
