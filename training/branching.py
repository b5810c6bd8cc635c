"""Branching groups: a GRPO group's negotiations share their opening and differ from one turn on.

GRPO gives every token of a dialogue the dialogue's one advantage. When a group's G dialogues
differ from their first turn, a good closing move late in a dialogue is credited together with
every earlier move of that dialogue, and a bad early move is blamed on all of them (the README's
run 3: the buyer learned to stall at every turn although the last-turn offers it sampled were
paid). With branching, each group picks a *branch turn* ``k`` (one of the buyer's turns, at
random with ``any``; with ``open`` among the turns the group's shared opening reaches
undecided; with ``last`` the last of those, the deadline move): before ``k`` its G dialogues
sample with the same seeds, so they are the same dialogue (same messages, same tokens); from
``k`` on each samples its own. The group's advantages then compare moves made in the same
state, and the shared tokens carry advantages that sum to zero over the group (with TRL's
``loss_type="dr_grpo"``, whose normaliser is a constant, their gradients cancel exactly).

:class:`SharedPrefix` wraps an agent so that dialogues of one scenario draw the same sampling
seed for every turn before the scenario's branch turn; :func:`branch_turns` draws the turns.
A rule agent is deterministic and needs no wrapper, but wrapping it is harmless.
"""

from __future__ import annotations

import random

from negolens.agents.runner import turn_seed

__all__ = ["BRANCHING", "SharedPrefix", "branch_turns"]

BRANCHING = ("off", "any", "open", "last")
"""Branching modes: none, a random buyer turn, a buyer turn the shared opening reaches undecided,
the last buyer turn it reaches undecided."""


def branch_turns(scenario_ids: list[str], max_turns: int, seed: int, first: str = "buyer",
                 reached: dict[str, int] | None = None, last: bool = False) -> dict[str, int]:
    """A branch turn per scenario: one of the buyer's turn indices, drawn with ``seed``.

    Parameters
    ----------
    scenario_ids
        The step's scenarios (each a group).
    max_turns
        Turn limit of the negotiations.
    seed
        Seed of the draw (e.g. derived from the run seed and the step).
    first
        Who opens: the buyer's turns are the even indices when it is ``"buyer"``, else the odd.
    reached : dict, optional
        Scenario id → number of turns its shared opening (the scout) played: the turn is drawn
        among the buyer turns before that, the turns where the dialogue was still undecided. A
        scout that ended before the buyer's first turn leaves that first turn.
    last : bool
        Take the last of those turns instead of drawing one: every group compares moves at its
        deadline (or wherever its opening still stood undecided last).

    Returns
    -------
    dict
        Scenario id → turn index.

    Examples
    --------
    >>> turns = branch_turns(["a", "b", "c"], max_turns=8, seed=0)
    >>> sorted(turns) == ["a", "b", "c"] and all(t in (0, 2, 4, 6) for t in turns.values())
    True
    >>> t = branch_turns(["a", "b"], max_turns=8, seed=0, reached={"a": 3, "b": 1})
    >>> t["a"] in (0, 2), t["b"]       # "a" reached turns 0-2 undecided, "b" ended at turn 0
    (True, 0)
    >>> branch_turns(["a", "b"], max_turns=8, seed=0, reached={"a": 3, "b": 8}, last=True)
    {'a': 2, 'b': 6}
    """
    rng = random.Random(seed)
    mine = [t for t in range(max_turns) if t % 2 == (0 if first == "buyer" else 1)]
    limit = reached or {}
    pick = (lambda turns: turns[-1]) if last else rng.choice
    return {sid: pick([t for t in mine if t < limit.get(sid, max_turns)] or mine[:1])
            for sid in sorted(set(scenario_ids))}


class SharedPrefix:
    """An agent whose dialogues of one scenario sample alike before the scenario's branch turn.

    Parameters
    ----------
    agent
        The wrapped agent (``act_batch`` and/or ``act``); every other attribute is its own.
    branch : dict
        Scenario id → branch turn (:func:`branch_turns`); scenarios not in it never share.
    salt : int
        Mixed into the shared seeds (e.g. the step), so groups of different steps differ.

    Examples
    --------
    >>> from negolens.agents.rule_agent import RuleAgent
    >>> SharedPrefix(RuleAgent("seller"), {"x": 2}, salt=0).config()["kind"]
    'rule'
    """

    def __init__(self, agent, branch: dict[str, int], salt: int):
        self.agent, self.branch, self.salt = agent, dict(branch), salt
        if hasattr(agent, "act_batch"):
            self.act_batch = self._act_batch
        if hasattr(agent, "act"):
            self.act = agent.act  # unseeded (deterministic) agents are alike without help

    def __getattr__(self, name):
        if name == "agent":  # not set yet (copy/unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.agent, name)

    def _act_batch(self, negs, seeds):
        shared = [turn_seed(self.salt, f"branch-{n.scenario.id}", len(n.turns))  # one seed per scenario and turn
                  if len(n.turns) < self.branch.get(n.scenario.id, 0) else s for n, s in zip(negs, seeds)]
        return self.agent.act_batch(negs, shared)
