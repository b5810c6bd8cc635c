"""What an agent sees: its system prompt and the dialogue from its own point of view.

Pure functions, shared by LLM agents (to act) and by the probes (to teacher-force transcripts
exactly as the speaker would have seen them). Fixed instructions come first, the scenario
last, so dialogues of one run share a long prompt prefix (prefilled once per batch).
"""

from __future__ import annotations

from negolens.agents.personas import PERSONA_PROMPTS, PERSONALITIES
from negolens.agents.protocol import format_price, other
from negolens.agents.scenarios import Scenario
from negolens.chat import Turn, render_tokens

FORMAT = (
    "Write one short message to the {other}. Then, on a new line, your move: "
    "ACTION: offer $PRICE, ACTION: counter $PRICE, ACTION: accept, ACTION: reject, ACTION: quit, "
    "or ACTION: greet / inquire / inform."
)
COT = " First think privately on one line that starts with THOUGHT: — the {other} never sees it."


def system_prompt(s: Scenario, role: str, personality: str = "fair", persona: str | None = None, cot: bool = False) -> str:
    """The system prompt of ``role`` in scenario ``s``: role, personality, optional persona,
    message format (with the ``THOUGHT:`` line when ``cot``), the item and the role's OWN limits.

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> print(system_prompt(builtin_scenarios()[0], "buyer").splitlines()[-1])
    Private (the seller does not know this): Your budget is $315: never pay more. Aim for $262.50 or less.
    """
    them = other(role)
    if role == "buyer":
        private = (f"Your budget is {format_price(s.buyer_budget)}: never pay more. "
                   f"Aim for {format_price(s.buyer_target)} or less.")
    else:
        private = (f"Your minimum is {format_price(s.seller_cost)}: never sell for less. "
                   f"Aim for {format_price(s.seller_target)}.")
    lines = [f"You are the {role} in a negotiation on a second-hand marketplace.", PERSONALITIES[personality]]
    if persona:
        lines.append(PERSONA_PROMPTS[persona])
    lines += [
        FORMAT.format(other=them) + (COT.format(other=them) if cot else ""),
        f"Item: {s.title} ({s.category}). {s.description[:200]}",
        f"Listed price: {format_price(s.list_price)}.",
        f"Private (the {them} does not know this): {private}",
    ]
    return "\n".join(lines)


def view_messages(system: str, role: str, turns: list[tuple[str, str]]) -> list[Turn]:
    """Chat turns from ``role``'s point of view: its own turns are ``assistant``, the other's
    ``user``; ``turns`` are (speaker role, public text). A kick-off line precedes an opening move.

    Examples
    --------
    >>> [t.role for t in view_messages("SYS", "seller", [("buyer", "Hi! $200?"), ("seller", "No.")])]
    ['system', 'user', 'assistant']
    """
    out = [Turn("system", system)]
    if not turns or turns[0][0] == role:
        out.append(Turn("user", f"Write your first message to the {other(role)}."))
    out += [Turn("assistant" if speaker == role else "user", text) for speaker, text in turns]
    return out


def view_texts(turns: list, role: str) -> list[tuple[str, str]]:
    """(speaker, text) of each turn as ``role`` reads it, for :func:`view_messages`.

    The other side's turns are their public text, the environment's note included
    (``ACTION: counter $80 [turns left: 2]``). ``role``'s own turns are its message and action
    line only; their note (``[blocked: over budget]``, ``[turns left: 3]``) opens the next
    message instead. An LLM agent ends its price with an end-of-turn token, and it reads its
    own turns back as the tokens it generated (:func:`view_ids`): a note inside its message would
    come between its last digit and that token, so the choice to stop the price would appear in
    no sequence it is trained on (the README's clones that append ``.11`` or ``000000`` to a
    price they copied). A note on the last turn has no next message and is not shown.

    Examples
    --------
    >>> from negolens.agents.protocol import TurnRecord
    >>> turns = [TurnRecord(0, "buyer", "Hi.", "offer", 60.0, turns_left=3),
    ...          TurnRecord(1, "seller", "No.", "counter", 90.0, turns_left=2)]
    >>> [text.replace("\\n", " | ") for _, text in view_texts(turns, "buyer")]
    ['Hi. | ACTION: offer $60', '[turns left: 3] | No. | ACTION: counter $90 [turns left: 2]']
    """
    out, note = [], ""
    for t in turns:
        text = (note.strip() + "\n" if note else "") + t.public_text()
        note = ""
        if t.role == role and t.note():
            note = t.note()
            text = text[: len(text) - len(note)]
        out.append((t.role, text))
    return out


def view_ids(model, system: str, role: str, turns: list, add_generation_prompt: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of ``role``'s view (:func:`view_messages`), its own turns read back as the tokens it generated.

    An LLM agent's turns carry ``token_ids`` (and ``sampled``, :class:`~negolens.agents.protocol.TurnRecord`);
    those are used verbatim for its own messages, to the end-of-turn token that closed the price
    (the environment's note on such a turn opens the next message, :func:`view_texts`), and
    everything else is rendered from text (:func:`~negolens.chat.render_tokens`).
    The agent acts on these ids and GRPO trains on them, so a policy is trained on exactly the
    tokens it sampled, in exactly the context it sampled them in.

    Parameters
    ----------
    model : NegoModel
        Supplies the tokenizer.
    system : str
        ``role``'s system prompt (:func:`system_prompt`).
    role : str
        Whose view.
    turns : list of TurnRecord
        The dialogue so far.
    add_generation_prompt : bool
        End with the header that asks for ``role``'s next turn.

    Returns
    -------
    ids : list of int
    trained : list of int
        Per id, 1 where ``role``'s policy chose the token (its ``sampled`` flags), else 0.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents.protocol import TurnRecord
    >>> model = tiny_model()
    >>> mine = model.tokenizer.encode("Hi\\nACTION: greet", add_special_tokens=False)
    >>> turns = [TurnRecord(0, "buyer", "Hi", "greet", None, token_ids=mine, sampled=[1] * len(mine))]
    >>> ids, trained = view_ids(model, "SYS", "buyer", turns, add_generation_prompt=False)
    >>> [i for i, t in zip(ids, trained) if t] == mine
    True
    """
    msgs = view_messages(system, role, view_texts(turns, role))
    offset = len(msgs) - len(turns)
    given, flags = {}, {}
    for k, t in enumerate(turns):
        if t.role == role and t.token_ids:
            given[offset + k] = list(t.token_ids)
            flags[offset + k] = list(t.sampled or [0] * len(t.token_ids))
    ids, spans = render_tokens(model.tokenizer, msgs, given, add_generation_prompt)
    trained = [0] * len(ids)
    for k, (start, end) in spans.items():
        trained[start:end] = flags[k]
    return ids, trained
