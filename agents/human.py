"""A human agent for ``negolens chat``: you type, the environment applies the same protocol.

Type a message; end it with ``/offer 120``, ``/counter 120``, ``/accept``, ``/reject`` or
``/quit`` to make the act explicit. Without a command the act is inferred: a proposed price
(:func:`~negolens.agents.parsing.extract_price`) makes an offer (or a counter when one stands),
a question an ``inquire``, anything else ``inform``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from negolens.agents.parsing import extract_price
from negolens.agents.protocol import Act, Move, Negotiation

COMMAND = re.compile(r"/(offer|counter|accept|reject|quit)\s*\$?([\d,]*\.?\d*)\s*$", re.IGNORECASE)


def parse_human(text: str, neg: Negotiation, role: str) -> Move:
    text = text.strip()
    facing = neg.standing is not None and neg.standing[0] != role
    m = COMMAND.search(text)
    if m:
        act = Act(m.group(1).lower())
        price = float(m.group(2).replace(",", "")) if m.group(2) else None
        return Move(text[: m.start()].strip(), act, price)
    price = extract_price(text)
    if price is not None:
        return Move(text, Act.COUNTER if facing else Act.OFFER, price)
    return Move(text, Act.INQUIRE if text.endswith("?") else Act.INFORM)


@dataclass
class HumanAgent:
    role: str
    ask: Callable[[str], str] = input

    def config(self) -> dict:
        return {"kind": "human", "role": self.role}

    def act(self, neg: Negotiation) -> Move:
        return parse_human(self.ask(f"you ({self.role}) > "), neg, self.role)
