"""The negotiation environment as TRL sees it: a ``rollout_func`` and a reward function.

:class:`NegotiationRollout` plays one GRPO step's negotiations (the policy as the buyer against
the regulated counterpart), logs them, stops the run loudly when agents fail
(:func:`~negolens.training.rollouts.check_agent_errors`), and returns each dialogue as one
sequence from the buyer's view with TRL's multi-turn ``env_mask``;
:func:`rlvr_reward_func` hands TRL the reward the environment computed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from negolens.training.branching import SharedPrefix, branch_turns
from negolens.training.devices import cast_weights
from negolens.training.rollouts import ErrorWitness, buyer_sequence, check_agent_errors, step_stats

if TYPE_CHECKING:
    from negolens.training.grpo import GRPORunConfig

__all__ = ["NegotiationRollout", "rlvr_reward_func"]


class NegotiationRollout:
    """TRL's ``rollout_func``: prompts are scenario ids, each played as negotiations.

    Parameters
    ----------
    cfg : GRPORunConfig
        Seller, temperature, turns and seed of the rollouts.
    scenarios : dict
        Scenario by id (the ids are the dataset's prompts).
    tokenizer : transformers.PreTrainedTokenizerBase
        The policy's tokenizer.
    out : Path
        Run directory: ``rollouts/stepNNNNN.jsonl`` and ``steps.jsonl`` are written there.
    path : str or Path
        The policy's model directory (for the :class:`~negolens.hooked.NegoModel` wrapper).
    """

    def __init__(self, cfg: GRPORunConfig, scenarios: dict, tokenizer, out: Path, path: str | Path):
        from negolens.agents.factory import make_agent

        self.cfg, self.scenarios, self.tokenizer, self.out, self.path = cfg, scenarios, tokenizer, out, path
        specs = [x.strip() for x in cfg.seller.split(",") if x.strip()]
        self.sellers = [make_agent(spec, "seller", models={}, fetch=True) for spec in specs]
        self._copy = None  # the policy in ``cfg.rollout_dtype``, made at the first step
        (out / "rollouts").mkdir(parents=True, exist_ok=True)

    def __call__(self, prompts: list[str], trainer) -> dict:
        """Play the negotiations of one step; return TRL's rollout dict with the buyer's ``env_mask``."""
        from negolens.agents.llm_agent import LLMAgent
        from negolens.agents.runner import RunConfig
        from negolens.hooked import NegoModel

        model = trainer.accelerator.unwrap_model(trainer.model)
        step = trainer.state.global_step
        policy = NegoModel(model, self.tokenizer, self.path, name=f"grpo-step{step}")
        sampler = self.sampler(model)
        player = policy if sampler is model else NegoModel(sampler, self.tokenizer, self.path, name=policy.name)
        buyer = LLMAgent(player, "buyer", temperature=self.cfg.temperature,
                         max_utterance_tokens=self.cfg.max_utterance_tokens)
        per = self.cfg.group_size if len(set(prompts)) == len(prompts) else 1  # TRL may repeat each prompt G times
        scenarios = [self.scenarios[p] for p in prompts for _ in range(per)]
        rank = trainer.accelerator.process_index  # distinct sampling seeds on every process
        run = RunConfig(max_turns=self.cfg.max_turns, seed=self.cfg.seed * 1_000_003 + step * 1_009 + rank,
                        batch_size=len(scenarios), regulated_seller=True,
                        announce_turns=self.cfg.announce_turns)
        groups = _seller_groups(len(scenarios), self.cfg.group_size, len(self.sellers), step)
        was_training = model.training
        model.eval()
        sampler.eval()
        with torch.no_grad():
            reached = None
            if self.cfg.branch in ("open", "last"):  # each group's scout: its shared opening, played through
                lead = {}  # scenario id -> its group's first row
                for i, s in enumerate(scenarios):
                    lead.setdefault(s.id, i)
                scouts = self._play([scenarios[i] for i in lead.values()], [groups[i] for i in lead.values()],
                                    buyer, run, {sid: self.cfg.max_turns for sid in lead}, step)[0]
                reached = {r["scenario"]["id"]: len(r["turns"]) for r in scouts}
            # branching groups: the same draw on every process, so a group split across processes still shares
            branch = (branch_turns(prompts, self.cfg.max_turns, self.cfg.seed * 7_919 + step, reached=reached,
                                   last=self.cfg.branch == "last") if self.cfg.branch != "off" else {})
            records, witnesses = self._play(scenarios, groups, buyer, run, branch, step)
        model.train(was_training)
        for i, r in enumerate(records):
            r["id"], r["process"], r["step"] = f"s{step + 1}-p{rank}-{i:05d}-{r['scenario']['id']}", rank, step + 1
            r["training_reward"] = shaped_reward(r, self.cfg.stall_cost, self.cfg.quit_stalls)
            if branch:
                r["branch_turn"] = branch[r["scenario"]["id"]]
            if reached:
                r["branch_reached"] = reached[r["scenario"]["id"]]  # turns its group's scout played
        from accelerate.utils import gather_object

        everyone = gather_object(records)  # all processes' dialogues (one process: the same list)
        stats = {"step": step + 1, **step_stats(everyone), "dialogues": len(everyone),
                 "shaped_reward": float(sum(r["training_reward"] for r in everyone) / len(everyone)),
                 "frac_reward_zero_std": frac_zero_std([r["training_reward"] for r in records], self.cfg.group_size)}
        if trainer.accelerator.is_main_process:
            self._log(step + 1, stats, everyone)
        for k, v in stats.items():
            if k not in ("step", "dialogues"):
                trainer._metrics["train"][f"negotiation/{k}"].append(v)
        # logged first (steps.jsonl, rollouts/), then stopped: every process sees the same records
        first = next((w.first for w in witnesses if w.first), None)
        check_agent_errors(everyone, self.cfg.max_failure_share, step + 1, first)
        seqs = [buyer_sequence(policy, r) for r in records]
        return {
            "prompt_ids": [s[0] for s in seqs],
            "completion_ids": [s[1] for s in seqs],
            "logprobs": None,
            "env_mask": [s[2] for s in seqs],
            "rlvr_reward": [r["training_reward"] for r in records],
        }

    def sampler(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model the rollouts play: the policy itself, or its copy in ``cfg.rollout_dtype``.

        The copy is made once and its parameters are overwritten with the policy's before every
        step's rollouts, so it samples from the current policy at the lower precision; buffers
        (rotary frequencies) stay as they are. The trainer then scores the sampled tokens with
        the policy itself, in ``cfg.dtype``, without an importance correction for the copy's
        rounding (TRL is given no sampling log-probabilities).

        Parameters
        ----------
        model : torch.nn.Module
            The policy (unwrapped; a PEFT model in LoRA mode).

        Returns
        -------
        torch.nn.Module
            ``model`` itself when ``rollout_dtype="same"`` or when its frozen weights (every
            weight, in full fine-tuning) are already in that dtype (LoRA adapters may be float32
            on a bfloat16 base); otherwise the refreshed copy.
        """
        if self.cfg.rollout_dtype == "same":
            return model
        dtype = getattr(torch, self.cfg.rollout_dtype)
        weights = [p for p in model.parameters() if p.is_floating_point()]
        frozen = [p for p in weights if not p.requires_grad] or weights
        if all(p.dtype == dtype for p in frozen):
            return model
        if self._copy is None:
            self._copy = copy.deepcopy(model).requires_grad_(False)
            cast_weights(self._copy, dtype)
        with torch.no_grad():
            for mine, theirs in zip(self._copy.parameters(), model.parameters(), strict=True):
                mine.copy_(theirs)
        return self._copy

    def _play(self, scenarios: list, groups: list[int], buyer, run, branch: dict, step: int):
        """Play ``scenarios`` (one batched run per counterpart, ``groups`` naming each one's) with
        the buyer and sellers sharing seeds before each scenario's ``branch`` turn; return the
        records in input order and the error witnesses (buyer first)."""
        from negolens.agents.runner import run_negotiations

        share = (lambda agent: SharedPrefix(agent, branch, salt=step)) if branch else (lambda agent: agent)
        witnesses = [ErrorWitness(share(buyer))]
        records = [None] * len(scenarios)
        for k, seller in enumerate(self.sellers):
            rows = [i for i, g in enumerate(groups) if g == k]
            if not rows:
                continue
            witnesses.append(ErrorWitness(share(seller)))
            played = run_negotiations([scenarios[i] for i in rows], witnesses[0], witnesses[-1], run, progress=False)
            for i, r in zip(rows, played):
                records[i] = r
        return records, witnesses

    def _log(self, step: int, stats: dict, records: list[dict]) -> None:
        with open(self.out / "rollouts" / f"step{step:05d}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
        with open(self.out / "steps.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(stats) + "\n")


def _seller_groups(n: int, group_size: int, n_sellers: int, step: int) -> list[int]:
    """Per dialogue, the index of its counterpart: whole groups share one (advantages compare
    the buyer's moves against the same seller), rotating over groups and steps."""
    return [(i // group_size + step) % n_sellers for i in range(n)]


def shaped_reward(record: dict, stall_cost: float, quit_stalls: bool = False) -> float:
    """The training reward: the paper's RLVR reward minus ``stall_cost`` per buyer turn that
    names no price (talk acts, reject). ``stall_cost=0`` (the default) is the paper's reward.

    With ``quit_stalls`` a buyer's quit costs the stall cost too, once for the quit and once for
    every buyer turn it leaves unplayed, so quitting early is exactly as costly as stalling to
    the deadline. Without it, a buyer that finds no deal pays least by quitting at once: the
    stall cost alone turns a deadlock into a buyer that quits at its first turn (run 26).

    Examples
    --------
    >>> rec = {"metrics": {"reward": 0.0}, "turns": [{"role": "buyer", "act": "inform"},
    ...        {"role": "seller", "act": "counter"}, {"role": "buyer", "act": "offer"}]}
    >>> shaped_reward(rec, 0.05), shaped_reward(rec, 0.0)
    (-0.05, 0.0)
    >>> quit_at_once = {"metrics": {"reward": 0.0}, "max_turns": 8, "first": "buyer",
    ...                 "turns": [{"role": "buyer", "act": "quit"}]}
    >>> shaped_reward(quit_at_once, 0.05), round(shaped_reward(quit_at_once, 0.05, quit_stalls=True), 2)
    (0.0, -0.2)
    """
    turns = record["turns"]
    stalls = sum(t["role"] == "buyer" and t["act"] not in ("offer", "counter", "accept", "quit") for t in turns)
    if quit_stalls and turns and turns[-1]["role"] == "buyer" and turns[-1]["act"] == "quit":
        stalls += 1 + buyer_turns_left(record)
    return float(record["metrics"]["reward"]) - stall_cost * stalls


def buyer_turns_left(record: dict) -> int:
    """The buyer's turns the dialogue's turn limit still allowed after its last turn.

    Examples
    --------
    >>> buyer_turns_left({"max_turns": 8, "first": "buyer", "turns": [{"role": "buyer"}]})
    3
    >>> buyer_turns_left({"max_turns": 8, "first": "seller", "turns": [{"role": "seller"}, {"role": "buyer"}]})
    3
    """
    first = 0 if record["first"] == "buyer" else 1  # the turns' index of the buyer's first turn
    return len(range(len(record["turns"]) + (len(record["turns"]) - first) % 2, record["max_turns"], 2))


def frac_zero_std(rewards: list[float], group_size: int) -> float:
    """Share of groups whose rewards are all equal (zero advantage: the step learns nothing from them).

    Examples
    --------
    >>> frac_zero_std([0, 0, 1, 0], 2)
    0.5
    """
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    return sum(max(g) - min(g) < 1e-9 for g in groups) / len(groups) if groups else float("nan")


def rlvr_reward_func(prompts, completions, rlvr_reward, **_) -> list[float]:
    """TRL reward function: the reward the environment computed during the rollout (the paper's
    RLVR reward, minus the optional stall cost: :func:`shaped_reward`)."""
    return [float(r) for r in rlvr_reward]
