"""Validation products: products of the train split that no stage of training played.

The test split is played once, by the buyer a study reports; every choice before that (which
checkpoint, which run) is made on validation products instead. :func:`played_products` reads
which products a run's dialogues used; :func:`validation_products` samples from the rest.

Conflicting-interest products (budget at or below the seller's cost) are few — 42 of the 742
AmazonHistoryPrice training products — and they are where a buyer's overshoot lives: any deal
there is over budget. A uniform sample of 100 holds about six; ``all_conflicting=True`` keeps
every one that is left instead and samples the rest from the mutual-interest products.

Examples
--------
>>> from negolens.agents.scenarios import split_scenarios
>>> train = split_scenarios("builtin", "train")
>>> first = validation_products("builtin", 2, {train[0].id})
>>> [s.id for s in first] == [s.id for s in validation_products("builtin", 2, {train[0].id})]  # seeded
True
"""

from __future__ import annotations

import random
from pathlib import Path

from negolens.errors import NegolensError

__all__ = ["played_products", "validation_products", "conflicting"]


def conflicting(scenario) -> bool:
    """Whether a product's interests conflict: the buyer's budget is at or below the seller's
    cost, so no deal is within the budget (the complement of
    :func:`~negolens.training.heldout.interest`'s ``"mutual"``).

    Parameters
    ----------
    scenario : Scenario
        A product (``buyer_budget`` and ``seller_cost`` are read).

    Returns
    -------
    bool

    Examples
    --------
    >>> from dataclasses import replace
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> s = builtin_scenarios()[0]
    >>> conflicting(s), conflicting(replace(s, seller_cost=s.buyer_budget))
    (False, True)
    """
    return scenario.buyer_budget <= scenario.seller_cost


def played_products(runs) -> set[str]:
    """The scenario ids of every dialogue the runs logged (GRPO rollouts, negotiation dialogues).

    Parameters
    ----------
    runs : str, Path or list of them
        What :func:`~negolens.training.filtered.read_rollouts` reads.

    Returns
    -------
    set of str

    Examples
    --------
    >>> played_products([])
    set()
    """
    from negolens.training.filtered import read_rollouts

    return {r["scenario"]["id"] for r in read_rollouts(runs)} if runs else set()


def validation_products(source: str, n: int, played: set[str] = frozenset(), *, teacher_products: int | None = None,
                        teacher_seed: int = 0, all_conflicting: bool = False, data: str | Path | None = None,
                        seed: int = 0) -> list:
    """``n`` products of the train split that were not played in training: validation products.

    Parameters
    ----------
    source : str
        ``amazon`` or ``builtin`` (:func:`~negolens.agents.scenarios.split_scenarios`).
    n : int
        How many (a seeded sample of those left).
    played : set of str
        Scenario ids to leave out (:func:`played_products` of the GRPO runs).
    teacher_products : int, optional
        Also leave out the sample a scripted teacher played in ``negolens train filtered
        --teacher-products N --seed S`` (it draws ``split_scenarios(source, "train", N or None,
        seed=S)``: 0 is every training product, as there); ``None``: no teacher.
    teacher_seed : int
        That run's seed.
    all_conflicting : bool
        Keep every conflicting-interest product left (:func:`conflicting`; say ``k`` of them) and
        sample only the other ``n - k`` from the mutual-interest ones; ``False``: one uniform
        sample (the same one as before this option existed).
    data : str or Path, optional
        The data directory.
    seed : int
        Seed of the sample.

    Returns
    -------
    list of Scenario
        Sorted by id.

    Raises
    ------
    NegolensError
        When ``n`` is below 1, fewer than ``n`` training products are left, or
        (``all_conflicting``) more than ``n`` conflicting ones.

    Examples
    --------
    >>> from negolens.agents.scenarios import split_scenarios
    >>> train = split_scenarios("builtin", "train")
    >>> val = validation_products("builtin", 3, {train[0].id})
    >>> len(val), train[0].id in {s.id for s in val}
    (3, False)

    The built-in products are all mutual-interest, so keeping the conflicting ones changes nothing:

    >>> validation_products("builtin", 3, all_conflicting=True) == validation_products("builtin", 3)
    True
    """
    from negolens.agents.scenarios import split_scenarios

    if n < 1:
        raise NegolensError(f"ask for at least one validation product (--products); got {n}")
    train = split_scenarios(source, "train", data=data)
    used = set(played)
    if teacher_products is not None:
        used |= {s.id for s in split_scenarios(source, "train", teacher_products or None, data=data, seed=teacher_seed)}
    left = [s for s in train if s.id not in used]
    if len(left) < n:
        raise NegolensError(f"only {len(left)} of the {len(train)} training products of {source} were not played in "
                            f"training; ask for at most {len(left)} validation products (--products)")
    rng = random.Random(seed)
    if not all_conflicting:
        return sorted(rng.sample(left, n), key=lambda s: s.id)
    kept = [s for s in left if conflicting(s)]
    if len(kept) > n:
        raise NegolensError(f"{len(kept)} conflicting-interest training products are left, more than --products {n}: "
                            f"ask for at least {len(kept)}, or sample them uniformly (no --all-conflicting)")
    mutual = [s for s in left if not conflicting(s)]
    return sorted(kept + rng.sample(mutual, n - len(kept)), key=lambda s: s.id)
