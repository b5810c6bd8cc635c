"""Reward-filtered fine-tuning: supervised steps on the rollouts that earned a reward.

GRPO can only reinforce a move the policy samples. When the move that pays is rare under the
starting policy — the README's runs 3-5: the SFT buyer names a price at its last turn in a
few percent of dialogues — groups seldom contain it and the run drifts into deadlock before it
is learned. Reward-filtered fine-tuning (RAFT, Dong et al. 2023; ReST-EM, Singh et al. 2023;
"expert iteration") is the cheaper step the literature takes first: keep the rollouts whose
verifiable reward clears a threshold and train on their buyer turns with the plain SFT loss.

The examples are built from the rollouts' own token ids with
:func:`~negolens.training.rollouts.buyer_sequence`, the function GRPO trains on: the loss
covers exactly the tokens the policy sampled (its words, acts and price digits), in exactly
the context it sampled them in, and none of the seller's or the template's. Rollouts come from
training products only (GRPO's train split), so held-out evaluation stays held out.

Examples
--------
>>> from negolens.training.filtered import best_rollouts
>>> recs = [{"metrics": {"reward": r}} for r in (0.4, -1.0, 0.0, 0.9)]
>>> [r["metrics"]["reward"] for r in best_rollouts(recs, min_reward=0.0)]
[0.4, 0.9]
"""

from __future__ import annotations

import json
from pathlib import Path

from negolens.errors import NegolensError
from negolens.training.data import IGNORE, Example
from negolens.training.rollouts import buyer_sequence

__all__ = ["read_rollouts", "best_rollouts", "rollout_examples"]


def read_rollouts(runs) -> list[dict]:
    """Every rollout dialogue a GRPO run logged (``RUN/rollouts/step*.jsonl``), in step order.

    Parameters
    ----------
    runs : str, Path or list of them
        GRPO run directories.

    Raises
    ------
    NegolensError
        When a directory has no logged rollouts.
    """
    out = []
    for run in [runs] if isinstance(runs, (str, Path)) else runs:
        files = sorted((Path(run) / "rollouts").glob("step*.jsonl"))
        if not files:
            raise NegolensError(f"{run}: no rollouts/step*.jsonl; pass the directory of a GRPO run "
                                f"(negolens train grpo --out DIR)")
        for f in files:
            out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def best_rollouts(records: list[dict], min_reward: float = 0.0) -> list[dict]:
    """The dialogues whose paper reward (``metrics.reward``, never a shaped one) is above ``min_reward``."""
    return [r for r in records if r["metrics"]["reward"] is not None and r["metrics"]["reward"] > min_reward]


def rollout_examples(model, records: list[dict], role: str = "buyer", max_tokens: int = 1024) -> list[Example]:
    """One supervised example per dialogue: ``role``'s view of it, labels on the tokens it sampled.

    Parameters
    ----------
    model : NegoModel
        Supplies the tokenizer and chat format (the policy's family).
    records : list of dict
        Dialogue records played by negolens' LLM agent (they carry per-turn ``token_ids``), e.g.
        :func:`best_rollouts` of :func:`read_rollouts`.
    role : str
        Whose turns are trained.
    max_tokens : int
        Longer dialogues are dropped, never cut.

    Returns
    -------
    list of Example
        ``input_ids`` = prompt + completion as GRPO sees them; ``labels`` = the completion ids
        where the policy chose the token, ``IGNORE`` elsewhere (prompt, the other side's
        turns, forced scaffolding such as ``\\nACTION:``).
    """
    out = []
    for r in records:
        prompt, completion, mask = buyer_sequence(model, r, role)
        if len(prompt) + len(completion) > max_tokens:
            continue
        labels = [IGNORE] * len(prompt) + [t if m else IGNORE for t, m in zip(completion, mask)]
        out.append(Example(prompt + completion, labels, r.get("id", ""), role))
    return out
