"""A human agent for ``negolens chat``: you type, the environment applies the same protocol.

Type a message; end it with ``/offer 120``, ``/counter 120``, ``/accept``, ``/reject`` or
``/quit`` to make the act explicit. Without a command the act is inferred
(:func:`~negolens.agents.parsing.infer_act`): a proposed price makes an offer (or a counter when
one stands), a question an ``inquire``, a greeting ``greet``, anything else ``inform``; accepting
always takes an explicit ``/accept``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from negolens.agents.parsing import infer_act
from negolens.agents.protocol import Act, Move, Negotiation

COMMAND = re.compile(r"/(offer|counter|accept|reject|quit)\s*\$?([\d,]*\.?\d*)\s*$", re.IGNORECASE)


def parse_human(text: str, neg: Negotiation, role: str) -> Move:
    """Turn a typed line into a :class:`Move` for ``role`` (explicit ``/command`` or inferred act).

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> neg = Negotiation(builtin_scenarios()[0])
    >>> parse_human("Hi, would you do $250? /offer 250", neg, "buyer").price
    250.0
    >>> parse_human("Is it still available?", neg, "buyer").act
    <Act.INQUIRE: 'inquire'>
    """
    text = text.strip()
    facing = neg.standing is not None and neg.standing[0] != role
    m = COMMAND.search(text)
    if m:
        act = Act(m.group(1).lower())
        price = float(m.group(2).replace(",", "")) if m.group(2) else None
        return Move(text[: m.start()].strip(), act, price)
    act, price = infer_act(text, None if not facing else neg.standing[1], first=not neg.turns)
    if act is Act.ACCEPT:  # a person accepts explicitly, with /accept
        act, price = Act.INFORM, None
    return Move(text, act, price)


@dataclass
class HumanAgent:
    """A person at the keyboard; ``ask`` prompts for a line (default: :func:`input`)."""

    role: str
    ask: Callable[[str], str] = input

    def config(self) -> dict:
        """The agent's settings as a JSON-ready dict (stored with every record)."""
        return {"kind": "human", "role": self.role}

    def act(self, neg: Negotiation) -> Move:
        """Ask the person for this turn's message and parse it."""
        return parse_human(self.ask(f"you ({self.role}) > "), neg, self.role)
