"""What an agent sees: its system prompt and the dialogue from its own point of view.

Pure functions, shared by LLM agents (to act) and by the probes (to teacher-force transcripts
exactly as the speaker would have seen them). Fixed instructions come first, the scenario
last, so dialogues of one run share a long prompt prefix (prefilled once per batch).
"""

from __future__ import annotations

from negolens.agents.personas import PERSONA_PROMPTS, PERSONALITIES
from negolens.agents.protocol import format_price, other
from negolens.agents.scenarios import Scenario
from negolens.chat import Turn

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
