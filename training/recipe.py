"""The GRPO levers that shape what a buyer trains on: the product curriculum and the recipe of
the README's evidence runs (:data:`RECIPE`), which the study uses."""

from __future__ import annotations

__all__ = ["CURRICULA", "RECIPE", "curriculum_order"]

CURRICULA = ("none", "zopa", "mutual")


def curriculum_order(scenarios: list, curriculum: str) -> list:
    """The training products in the order a curriculum presents them.

    ``none``: as given (TRL shuffles them). ``zopa``: only mutual-interest products (budget >
    cost), the widest zone of possible agreement relative to the budget first — the easy deals
    before the hard ones. ``mutual``: only mutual-interest products, as given (TRL shuffles
    them): a short run sees narrow zones too, as held-out products have them, where ``zopa``'s
    first steps see only the widest.

    Examples
    --------
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> s = builtin_scenarios()[:3]
    >>> [x.id for x in curriculum_order(s, "zopa")] == sorted(
    ...     [x.id for x in s], key=lambda i: -[(y.buyer_budget - y.seller_cost) / y.buyer_budget for y in s
    ...                                        if y.id == i][0])
    True
    >>> from dataclasses import replace
    >>> [x.id for x in curriculum_order([replace(s[0], seller_cost=1e9), *s[1:]], "mutual")] == [x.id for x in s[1:]]
    True
    """
    if curriculum == "none":
        return list(scenarios)
    mutual = [s for s in scenarios if s.buyer_budget > s.seller_cost]
    if curriculum == "mutual":
        return mutual
    return sorted(mutual, key=lambda s: -(s.buyer_budget - s.seller_cost) / s.buyer_budget)


RECIPE = {"curriculum": "zopa", "stall_cost": 0.05, "max_utterance_tokens": 8}
"""The levers of the README's evidence runs (``GRPORunConfig(**RECIPE)``); the study trains its
buyer with them. Plain ``GRPORunConfig()`` keeps them off (no shaping by default)."""
