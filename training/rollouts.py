"""Negotiation rollouts for RLVR: whole dialogues turned into one masked training sequence each.

GRPO needs, per rollout, token ids and a mask of which tokens the policy produced. A
negotiation is multi-turn: the buyer speaks, the seller answers, the buyer speaks again. We
render the finished dialogue from the buyer's point of view (exactly the chat the buyer saw
turn after turn, :func:`~negolens.agents.prompts.view_messages`) and split it:

* ``prompt_ids`` — system prompt and kick-off line, up to the buyer's first reply;
* ``completion_ids`` — everything after, buyer and seller turns interleaved;
* ``env_mask`` — 1 on the buyer's own generated characters (utterance + action line) and the
  end-of-turn token it emitted, 0 on the seller's messages, the template scaffolding and the
  environment's ``[blocked: ...]`` annotations. Gradients flow only where the mask is 1.

The buyer's hidden reasoning never reaches the seller (the protocol shows public text only).
Token in, token out: the buyer's turns are its decoder's own token ids
(:func:`~negolens.agents.prompts.view_ids`), never re-tokenised from text — BPE is not a
bijection and the action line is reformatted (``$1250.5`` → ``$1250.50``), so re-tokenising would
put the gradient on tokens the policy never produced (TRL issue #5224). The agent read its own
earlier turns back as the same ids, so every trained token is scored in the context it was
sampled in. Only tokens the policy chose (free text, the act, price digits, an end-of-turn it
emitted) carry gradient; forced scaffolding (``\nACTION:``, the rest of an act's tokens, `` $``)
does not.
"""

from __future__ import annotations

import traceback

from negolens.agents.prompts import system_prompt, view_ids
from negolens.agents.protocol import TurnRecord
from negolens.errors import NegolensError

__all__ = ["buyer_sequence", "step_stats", "agent_errors", "check_agent_errors", "ErrorWitness"]


def buyer_sequence(model, record: dict, role: str = "buyer") -> tuple[list[int], list[int], list[int]]:
    """(prompt_ids, completion_ids, env_mask) for the ``role`` side of a finished dialogue record.

    Raises
    ------
    NegolensError
        When the record has no token ids for ``role`` (not played by an LLM agent of this
        version) or no token that ``role``'s policy chose.
    """
    from negolens.agents.scenarios import Scenario

    scenario = Scenario(**record["scenario"])
    personality = (record.get(role) or {}).get("personality", "fair")
    turns = [TurnRecord(**t) for t in record["turns"]]
    if any(t.role == role and t.token_ids is None for t in turns):
        raise NegolensError(f"dialogue {record.get('id')}: a {role} turn has no token_ids; GRPO trains on the "
                            f"tokens an LLM agent generated, so play the rollouts with negolens' LLMAgent")
    ids, trained = view_ids(model, system_prompt(scenario, role, personality), role, turns,
                            add_generation_prompt=False)
    chosen = [i for i, t in enumerate(trained) if t]
    if not chosen:
        raise ValueError(f"dialogue {record.get('id')} has no {role} tokens to train on")
    first, stops = chosen[0], set(model.stop_ids())
    ends = [i for i in range(first, len(ids)) if ids[i] in stops]
    last = max(ends[-1] if ends else len(ids) - 1, chosen[-1])  # drop the template's trailing newline
    return ids[:first], ids[first : last + 1], trained[first : last + 1]


def step_stats(records: list[dict]) -> dict[str, float]:
    """The per-step quantities in which the RLVR paper reads its four phases."""
    import numpy as np

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else float("nan")

    firsts = []
    for r in records:
        prices = [t["price"] for t in r["turns"] if t["role"] == "buyer" and t["price"] is not None
                  and t["act"] in ("offer", "counter")]
        firsts.append(prices[0] / r["scenario"]["buyer_budget"] if prices else None)
    m = [r["metrics"] for r in records]
    return {
        "reward": mean([x["reward"] for x in m]),
        "deal_rate": mean([x["deal"] for x in m]),
        "bargained_ratio": mean([x["bargained_ratio"] for x in m]),
        "overshoot_rate": mean([x["overshoot"] for x in m]),
        "first_offer_budget_ratio": mean(firsts),
        "length": mean([x["length"] for x in m]),
        "protocol_failure_rate": mean([x["protocol_failure"] for x in m]),
        "agent_error_rate": len(agent_errors(records)) / len(records) if records else float("nan"),
    }


def agent_errors(records: list[dict]) -> list[str]:
    """The ``agent_error: …`` message of every dialogue that ended in one, in record order.

    An agent error is an exception inside an agent (the runner records it as a protocol
    failure of every dialogue in the batch); a model that merely breaks the protocol is not one.

    Examples
    --------
    >>> ok = {"turns": [{"failure": None}]}
    >>> bad = {"turns": [{"failure": "agent_error: RuntimeError: boom"}]}
    >>> agent_errors([ok, bad, ok])
    ['agent_error: RuntimeError: boom']
    """
    out = []
    for rec in records:
        failure = next((t.get("failure") for t in rec["turns"] if str(t.get("failure") or "").startswith("agent_error")),
                       None)
        if failure is not None:
            out.append(failure)
    return out


def check_agent_errors(records: list[dict], max_share: float, step: int, first_traceback: str | None = None) -> None:
    """Stop a GRPO run whose rollouts failed: raise when every rollout of the step, or more than
    ``max_share`` of them, ended in an agent error.

    Such a step has reward −1 everywhere and zero advantages: training on it changes nothing
    and says nothing (e.g. a sampler on the CPU while the policy runs on CUDA).

    Parameters
    ----------
    records : list of dict
        The step's dialogue records.
    max_share : float
        The largest tolerated share of agent errors (``GRPORunConfig.max_failure_share``).
    step : int
        The step number (for the message).
    first_traceback : str, optional
        The traceback of the first exception (:class:`ErrorWitness`); default the recorded message.

    Raises
    ------
    NegolensError
        With the first error's traceback text.

    Examples
    --------
    >>> bad = {"turns": [{"failure": "agent_error: RuntimeError: boom"}]}
    >>> check_agent_errors([bad], 0.5, step=1)
    Traceback (most recent call last):
    ...
    negolens.errors.NegolensError: GRPO step 1: 1/1 rollouts ended in an agent error ...
    """
    errors = agent_errors(records)
    if not records or not errors:
        return
    share = len(errors) / len(records)
    if share < 1.0 and share <= max_share:
        return
    why = "all of them" if share >= 1.0 else f"more than max_failure_share={max_share:g}"
    raise NegolensError(
        f"GRPO step {step}: {len(errors)}/{len(records)} rollouts ended in an agent error ({why}): every such "
        f"reward is -1 and the policy learns nothing, so the run stops. Fix the error below"
        f"{'' if share >= 1.0 else ' (or raise --max-failure-share)'}. First error:\n{first_traceback or errors[0]}")


class ErrorWitness:
    """An agent wrapper that keeps the traceback of the first exception its agent raises.

    The runner turns an agent's exception into ``agent_error`` failures (and carries on); the
    witness re-raises it unchanged but remembers its full traceback for the error message of
    :func:`check_agent_errors`. Every other attribute is the wrapped agent's.

    Parameters
    ----------
    agent
        An agent with ``act`` and/or ``act_batch``.

    Examples
    --------
    >>> from negolens.agents.rule_agent import RuleAgent
    >>> ErrorWitness(RuleAgent("seller")).config()["kind"]
    'rule'
    """

    def __init__(self, agent):
        self.agent = agent
        self.first: str | None = None
        if hasattr(agent, "act_batch"):
            self.act_batch = lambda negs, seeds: self._call(agent.act_batch, negs, seeds)
        if hasattr(agent, "act"):
            self.act = lambda neg: self._call(agent.act, neg)

    def __getattr__(self, name):
        if name == "agent":  # not set yet (copy/unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.agent, name)

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except Exception:
            if self.first is None:
                self.first = traceback.format_exc()
            raise
