"""The levers that shape what a buyer trains on: the product curriculum, and the recipe of the
README's evidence runs, which the study uses — a warm start cloned from a scripted buyer
(:data:`WARM_START`, for :class:`~negolens.training.filtered.FilteredConfig`), then GRPO
(:data:`RECIPE`, for :class:`~negolens.training.grpo.GRPORunConfig`)."""

from __future__ import annotations

from negolens.training.validation import conflicting

__all__ = ["CURRICULA", "ORDERED_CURRICULA", "RECIPE", "WARM_START", "curriculum_order"]

CURRICULA = ("none", "zopa", "mutual", "narrow")
ORDERED_CURRICULA = ("zopa", "narrow")
"""The curricula whose order is the point: training must not shuffle them."""


def curriculum_order(scenarios: list, curriculum: str) -> list:
    """The training products in the order a curriculum presents them.

    ``none``: as given (TRL shuffles them). ``zopa``: only mutual-interest products (budget >
    cost), the widest zone of possible agreement relative to the budget first — the easy deals
    before the hard ones. ``mutual``: only mutual-interest products, as given (TRL shuffles
    them): a short run sees narrow zones too, as held-out products have them, where ``zopa``'s
    first steps see only the widest. ``narrow``: every product, the narrowest zone first
    (``|budget - cost| / budget`` ascending, conflicting products included, not shuffled): the
    products where the buyer's deadline number decides between a deal just under the budget, no
    deal, and an overshoot — a run of S steps of P products trains on the S x P narrowest.

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
    >>> conflict = replace(s[0], seller_cost=s[0].buyer_budget + 1)  # cost a dollar over budget: the narrowest
    >>> curriculum_order([*s[1:], conflict], "narrow")[0] is conflict
    True
    """
    if curriculum == "none":
        return list(scenarios)
    if curriculum == "narrow":
        return sorted(scenarios, key=lambda s: abs(s.buyer_budget - s.seller_cost) / s.buyer_budget)
    mutual = [s for s in scenarios if not conflicting(s)]
    if curriculum == "mutual":
        return mutual
    return sorted(mutual, key=lambda s: -(s.buyer_budget - s.seller_cost) / s.buyer_budget)


RECIPE = {"curriculum": "mutual", "stall_cost": 0.05, "max_utterance_tokens": 8, "announce_turns": True,
          "branch": "last", "loss_type": "dr_grpo", "scale_rewards": "none", "lr": 1e-4, "temperature": 1.5}
"""The GRPO levers of the README's evidence runs 13-14 (``GRPORunConfig(**RECIPE)``): mutual-interest
products, a small stall cost, 8-token messages, the deadline announced, groups that branch at the
last buyer turn, Dr. GRPO's unscaled advantages, a learning rate of 1e-4 and rollouts sampled at
temperature 1.5 (so that a group's deadline numbers differ). The study trains its buyer with
them. Plain ``GRPORunConfig()`` keeps them off (no shaping by default)."""

WARM_START = {"teacher": "extrapolate", "min_reward": -1.0}
"""The warm start of the README's run 14 (``FilteredConfig(**WARM_START)``): the buyer cloned from
the scripted buyer that reads the seller (``--teacher extrapolate``, :class:`~negolens.training.Extrapolate`:
half its budget until its last turn, then the seller's last two prices extrapolated to its next
one, capped at the budget), every teacher dialogue kept, the no-deal ones too (``min_reward=-1``).
The study's GRPO stage starts from it. (Runs 11-13 cloned the firm buyer, ``teacher="target"``.)"""
