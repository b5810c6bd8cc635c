"""negolens.training — makes better agents: SFT role specialists and the RLVR (GRPO) buyer.

May import ``negolens.agents`` and the core; never probes, analysis or figures.

Entry points, one call each, returning their result:

* :func:`run_sft` — a role specialist (full, LoRA or QLoRA) fine-tuned on Craigslist Bargains,
  with a held-out loss curve (:class:`SFTConfig`, :class:`SFTResult`);
* :func:`run_grpo` — a buyer trained with GRPO against a regulated seller on a verifiable
  economic reward, then compared with its start on held-out scenarios
  (:class:`GRPORunConfig`, :class:`GRPOResult`).

Building blocks: :func:`build_examples` and :func:`train_sft` (SFT on examples you choose),
:func:`train_grpo` and :func:`read_steps` (GRPO on scenarios you choose, its per-step log),
:func:`play`, :func:`paired_comparison`, :func:`format_comparison` and :func:`buyer_table`
(held-out, paired evaluation of buyers, split by mutual / conflicting interest,
:mod:`~negolens.training.heldout`); :func:`match_limits` (human budgets made hard limits for
SFT data) and :func:`mask_digits` (SFT on the words, not the numbers), :func:`curriculum_order`
and :func:`shaped_reward` (GRPO levers);
:func:`read_rollouts`, :func:`heldout_dialogues`, :func:`best_rollouts` and :func:`rollout_examples`
(reward-filtered fine-tuning on the best dialogues of GRPO or negotiation runs,
:mod:`~negolens.training.filtered`; the whole job: :class:`FilteredConfig`, :func:`run_filtered`);
:func:`teacher_dialogues` and :func:`imitate` (a scripted teacher's dialogues in the student's own
tokens, :mod:`~negolens.training.imitation`; in the filtered job: ``FilteredConfig(teacher=...)``)
and the scripted teachers :class:`HoldTarget`, :class:`HoldFloor` and :class:`Extrapolate`
(:func:`scripted_agent` from a spec, :mod:`~negolens.training.scripted`);
:func:`next_moves` and :func:`fidelity` (a clone's own next move in its teacher's dialogues, agreement per
act, :mod:`~negolens.training.cloning`); :func:`choose_checkpoint` (:class:`SelectConfig`,
:class:`CheckpointChoice`: a run's checkpoint chosen on validation products that no stage of
training played, :mod:`~negolens.training.selection`; :func:`validation_products`,
:func:`played_products` and :func:`conflicting`, :mod:`~negolens.training.validation`). Modules:
:mod:`~negolens.training.data`, :mod:`~negolens.training.sft`,
:mod:`~negolens.training.rollouts`, :mod:`~negolens.training.grpo`,
:mod:`~negolens.training.heldout`, :mod:`~negolens.training.bench`.

>>> from negolens.training import SFTConfig, GRPORunConfig
>>> SFTConfig.quick().steps, SFTConfig(mode="full").lr
(30, 3e-05)
>>> GRPORunConfig.quick(source="builtin").eval_products
8
>>> result = run_sft(SFTConfig.quick(role="buyer"), "results/sft-buyer")  # doctest: +SKIP
"""

from negolens.training.data import Example, build_examples, human_limits, mask_digits, match_limits, protocol_turns
from negolens.training.environment import frac_zero_std, shaped_reward
from negolens.training.cloning import fidelity, next_moves
from negolens.training.filtered import (FilteredConfig, best_rollouts, heldout_dialogues, read_rollouts,
                                       rollout_examples, run_filtered, teacher_records)
from negolens.training.imitation import Teacher, imitate, teacher_agents, teacher_dialogues
from negolens.training.scripted import Extrapolate, HoldFloor, HoldTarget, scripted_agent
from negolens.training.grpo import GRPOResult, GRPORunConfig, read_steps, run_grpo, train_grpo
from negolens.training.recipe import RECIPE, WARM_START, curriculum_order
from negolens.training.heldout import buyer_table, format_comparison, interest, paired_comparison, play
from negolens.training.phases import PHASES, PhaseRules, label_phases, phase_spans
from negolens.training.rollouts import buyer_sequence, step_stats
from negolens.training.selection import CheckpointChoice, SelectConfig, choose_checkpoint
from negolens.training.validation import conflicting, played_products, validation_products
from negolens.training.sft import SFTConfig, SFTResult, run_sft, train_sft

__all__ = [
    "SFTConfig", "SFTResult", "run_sft", "train_sft", "build_examples", "mask_digits", "protocol_turns", "Example",
    "GRPORunConfig", "GRPOResult", "run_grpo", "train_grpo", "read_steps", "buyer_sequence", "step_stats",
    "play", "paired_comparison", "format_comparison", "PHASES", "PhaseRules", "label_phases", "phase_spans",
    "RECIPE", "WARM_START", "match_limits", "human_limits", "curriculum_order", "shaped_reward", "frac_zero_std",
    "buyer_table", "interest",
    "read_rollouts", "heldout_dialogues", "best_rollouts", "rollout_examples", "FilteredConfig", "run_filtered",
    "teacher_records", "Teacher", "HoldTarget", "HoldFloor", "Extrapolate", "scripted_agent", "teacher_agents", "teacher_dialogues", "imitate",
    "next_moves", "fidelity", "SelectConfig", "CheckpointChoice", "choose_checkpoint", "played_products",
    "validation_products", "conflicting",
]
