"""Chat rendering: role turns → token ids, with each turn's character and token span.

A negotiation is a list of :class:`Turn`. ``render_chat`` renders it with the tokenizer's chat
template to text, then tokenises that text once with offsets. Rendering via text (rather than
``apply_chat_template(tokenize=True)``) gives the offset mapping that token tagging needs; the
ids are identical (tested), and because the template already writes BOS we tokenise with
``add_special_tokens=False`` — passing templated text through ``to_tokens`` would add a second
BOS (a TransformerLens pitfall).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from negolens.errors import ChatFormatError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Turn:
    """One chat message. ``role`` is a chat role: system, user or assistant."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ChatFormatError(f"unknown chat role {self.role!r}; use one of {ROLES}")


@dataclass(frozen=True)
class RenderedChat:
    """A rendered conversation.

    Attributes:
        text: the templated text.
        input_ids: its token ids (BOS included when the template writes one).
        offsets: per token, the ``[start, end)`` character span in ``text``.
        turn_spans: per turn, the character span of its content in ``text``.
        roles: per turn, its chat role.
        generation_prompt: whether the text ends with the header that asks for a reply.
    """

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    turn_spans: list[tuple[int, int]]
    roles: list[str]
    generation_prompt: bool

    def __len__(self) -> int:
        """Number of tokens."""
        return len(self.input_ids)

    def token_turns(self) -> list[int]:
        """Per token, the index of the turn whose content it overlaps; -1 for template scaffolding."""
        owner = [-1] * len(self.input_ids)
        for turn, (start, end) in enumerate(self.turn_spans):
            for i in tokens_overlapping(self.offsets, start, end):
                owner[i] = turn
        return owner

    def turn_token_range(self, turn: int) -> tuple[int, int]:
        """``[first, last+1)`` token indices of a turn's content (empty turns give ``(i, i)``)."""
        start, end = self.turn_spans[turn]
        idx = tokens_overlapping(self.offsets, start, end)
        if not idx:
            first = next((i for i, (s, _) in enumerate(self.offsets) if s >= start), len(self))
            return first, first
        return idx[0], idx[-1] + 1


def tokens_overlapping(offsets: list[tuple[int, int]], start: int, end: int) -> list[int]:
    """Indices of tokens whose character span overlaps ``[start, end)`` (zero-width tokens never do).

    Examples
    --------
    >>> tokens_overlapping([(0, 2), (2, 5), (5, 5), (5, 9)], 3, 6)
    [1, 3]
    """
    return [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]


def as_turns(messages: Iterable[Turn | Mapping[str, str]]) -> list[Turn]:
    """Accept ``Turn`` objects or ``{"role", "content"}`` dicts; return ``Turn`` objects.

    Examples
    --------
    >>> as_turns([{"role": "user", "content": "Hi"}, Turn("assistant", "Hello")])
    [Turn(role='user', content='Hi'), Turn(role='assistant', content='Hello')]
    """
    return [m if isinstance(m, Turn) else Turn(m["role"], m["content"]) for m in messages]


def render_tokens(
    tokenizer, messages: Iterable[Turn | Mapping[str, str]], given: Mapping[int, Sequence[int]],
    add_generation_prompt: bool = False,
) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """Render a chat to ids, using ``given`` token ids for some turns' content instead of their text.

    Token-in/token-out for multi-turn RL: a model's own earlier turns are read back as the
    tokens it generated, not re-tokenised from text (BPE is not a bijection, and the text may be
    reformatted), so the ids a policy sampled are exactly the ids it is trained on. The template
    scaffolding and every other turn are tokenised from the rendered text piece by piece (each
    template piece and each content on its own), so a chat is always a token prefix of the same
    chat with more turns. When a given turn ends with the very token that the template writes
    next (an end-of-turn token the model emitted), the template's copy is dropped.

    Parameters
    ----------
    tokenizer
        A fast HF tokenizer with a chat template.
    messages
        The conversation.
    given : mapping of int to list of int
        Turn index → the ids of that turn's content.
    add_generation_prompt
        End with the header that asks for the next ``assistant`` turn.

    Returns
    -------
    ids : list of int
    spans : dict of int to (int, int)
        Turn index → ``[start, end)`` token positions of its given ids.

    Examples
    --------
    >>> from negolens.testing import tiny_tokenizer
    >>> tok = tiny_tokenizer()
    >>> own = tok.encode("Only $320.", add_special_tokens=False)
    >>> ids, spans = render_tokens(tok, [Turn("user", "Hi"), Turn("assistant", "Only $320.")], {1: own})
    >>> ids == render_chat(tok, [Turn("user", "Hi"), Turn("assistant", "Only $320.")]).input_ids
    True
    >>> ids[slice(*spans[1])] == own
    True
    """
    chat = render_chat(tokenizer, messages, add_generation_prompt)
    ids: list[int] = []
    spans: dict[int, tuple[int, int]] = {}
    cursor, emitted = 0, None  # emitted: the last token of the previous given turn

    def scaffold(text: str) -> None:
        piece = tokenizer.encode(text, add_special_tokens=False) if text else []
        if emitted is not None and piece and piece[0] == emitted:
            piece = piece[1:]
        ids.extend(piece)

    for k, (start, end) in enumerate(chat.turn_spans):
        scaffold(chat.text[cursor:start])
        emitted = None
        if k in given:
            spans[k] = (len(ids), len(ids) + len(given[k]))
            ids.extend(given[k])
            emitted = ids[-1] if given[k] else None
        else:
            ids.extend(tokenizer.encode(chat.text[start:end], add_special_tokens=False))
        cursor = end
    scaffold(chat.text[cursor:])
    return ids, spans


def render_chat(
    tokenizer, messages: Iterable[Turn | Mapping[str, str]], add_generation_prompt: bool = False
) -> RenderedChat:
    """Render turns with the tokenizer's chat template and tokenise with offsets.

    Parameters
    ----------
    tokenizer
        A fast HF tokenizer with a chat template (``model.tokenizer`` of a loaded model).
    messages
        The conversation, as :class:`Turn` objects or ``{"role", "content"}`` dicts.
    add_generation_prompt
        End with the header that asks the model for the next ``assistant`` turn.

    Returns
    -------
    RenderedChat
        Text, token ids, per-token character offsets and per-turn character spans.

    Raises
    ------
    ChatFormatError
        The tokenizer has no chat template or is not a fast tokenizer (offsets need one).

    Examples
    --------
    >>> from negolens.testing import tiny_tokenizer
    >>> tok = tiny_tokenizer()                      # a small ChatML tokenizer, built offline
    >>> chat = render_chat(tok, [Turn("system", "You are the buyer."), Turn("user", "Only $320.")],
    ...                    add_generation_prompt=True)
    >>> chat.text
    '<|im_start|>system\\nYou are the buyer.<|im_end|>\\n<|im_start|>user\\nOnly $320.<|im_end|>\\n<|im_start|>assistant\\n'
    >>> chat.roles, chat.text[slice(*chat.turn_spans[1])]
    (['system', 'user'], 'Only $320.')
    >>> first, end = chat.turn_token_range(1)       # the user turn's tokens
    >>> tok.decode(chat.input_ids[first:end])
    'Only $320.'
    """
    turns = as_turns(messages)
    if not turns:
        raise ChatFormatError("cannot render an empty conversation")
    if not getattr(tokenizer, "chat_template", None):
        raise ChatFormatError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; set "
            "tokenizer.chat_template (see negolens.chat_templates for ChatML and Gemma turns)"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ChatFormatError("token offsets need a fast (tokenizers-backed) tokenizer")
    text = tokenizer.apply_chat_template(
        [{"role": t.role, "content": t.content} for t in turns],
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans, cursor = [], 0
    for turn in turns:
        at = text.find(turn.content, cursor)
        if at < 0:
            raise ChatFormatError(
                f"the chat template rewrote a {turn.role} message (content not found verbatim "
                "in the rendered text); negolens needs templates that insert content as is"
            )
        spans.append((at, at + len(turn.content)))
        cursor = at + len(turn.content)
    return RenderedChat(
        text=text,
        input_ids=list(enc["input_ids"]),
        offsets=[tuple(o) for o in enc["offset_mapping"]],
        turn_spans=spans,
        roles=[t.role for t in turns],
        generation_prompt=add_generation_prompt,
    )
