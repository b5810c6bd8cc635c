"""A small fixed negotiation used by examples, the integration tests and the dtype benchmark.

Real scenarios (Craigslist Bargains, AmazonHistoryPrice, the built-in set) live in
``negolens.agents``; this module only needs a realistic, dependency-free example.
"""

from __future__ import annotations

from negolens.chat import Turn

BUYER_SYSTEM = (
    "You are a buyer negotiating on a second-hand marketplace. Item: Trek mountain bike, "
    "21 speeds, new tires, light scratches on the frame. Listed price: $350. Your private "
    "target price is $260: try to pay as little as possible, never above $300. "
    "Reply with one short message that names the price you offer."
)

DIALOGUE = [
    Turn("system", BUYER_SYSTEM),
    Turn("user", "Hi! The bike is still available. I'm asking $350, it's in great shape."),
    Turn("assistant", "Hi, I like it, but $350 is a lot for a used bike. Would you take $250?"),
    Turn("user", "I can't go that low. I could sell it for $320 if you pick it up today."),
]


def long_dialogue(rounds: int) -> list[Turn]:
    """The demo dialogue extended with ``rounds`` more offer/counter exchanges (for benchmarks)."""
    turns = list(DIALOGUE)
    buyer, seller = 260, 320
    for _ in range(rounds):
        buyer, seller = buyer + 5, seller - 5
        turns.append(Turn("assistant", f"I hear you. My best offer is ${buyer}, cash, and I can pay today."))
        turns.append(Turn("user", f"Let's meet in the middle: I would take ${seller} and include the lock."))
    return turns
