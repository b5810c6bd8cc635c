"""RLVR: a buyer trained with GRPO against a regulated seller, on a verifiable economic reward.

The method (arXiv 2604.09855): for each product, play a *group* of G negotiations with the
current buyer (sampling, temperature 1); score each with the RLVR reward
(:func:`~negolens.agents.metrics.rlvr_reward`: surplus within budget, 0 without a deal, −1 for
an overshoot or a protocol failure); the advantage of a dialogue is its reward minus the
group mean (divided by the group std); the loss raises the log-probability of the buyer's own
tokens in dialogues that did better than their group. A KL term (``beta``) holds the policy
near the starting model.

We use TRL's ``GRPOTrainer`` with a ``rollout_func`` that drives the negotiation runner.
Multi-turn masking is correct there: the rollout returns an ``env_mask`` (see
:mod:`negolens.training.rollouts`) that TRL multiplies into its loss mask, so the seller's
turns and the template carry no gradient. Everything else — optimizer, KL to the reference
(the adapter-disabled model for LoRA), checkpoints every ``save_every`` steps and
``resume_from_checkpoint``, ``accelerate launch`` across GPUs — is TRL's.

Per step we log the paper's phase quantities (reward, deal rate, bargained ratio, overshoot
rate, first offer / budget, dialogue length) to ``steps.jsonl`` and keep every rollout
dialogue under ``rollouts/``.

:func:`run_grpo` is the whole job (train split, training, paired held-out evaluation);
:func:`train_grpo` trains on scenarios you choose.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from negolens.config import option, to_dict
from negolens.distributed import shutdown_at_exit
from negolens.errors import NegolensError, choice
from negolens.paths import data_dir
from negolens.runs import model_refs, refuse_file, start_run
from negolens.training.adapters import point_adapter_at, start_model_callback
from negolens.training.branching import BRANCHING
from negolens.training.devices import cast_weights
from negolens.training.environment import NegotiationRollout, rlvr_reward_func
from negolens.training.fused_head import scored_positions_only
from negolens.training.grpo_runs import GRPO_OUTPUTS, check_steps, last_checkpoint, run_identity
from negolens.training.recipe import CURRICULA, ORDERED_CURRICULA, RECIPE, curriculum_order
from negolens.training.sft import LORA_TARGETS
from negolens.zoo import DEFAULT_MODEL

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RECIPE", "GRPORunConfig", "GRPOResult", "run_grpo", "train_grpo", "read_steps", "NegotiationRollout",
           "rlvr_reward_func"]


@dataclass
class GRPORunConfig:
    """Settings of a GRPO run (every field is a ``negolens train grpo`` option).

    Examples
    --------
    >>> GRPORunConfig().group_size, GRPORunConfig.quick().steps
    (4, 4)
    """

    model: str = option(DEFAULT_MODEL, "starting buyer: zoo name or checkpoint (e.g. the SFT buyer)")
    seller: str = option("rule", "regulated counterpart: rule[:personality] or MODEL spec; a comma list gives each "
                         "product's group one of them in turn (more diverse opponents)")
    source: str = option("amazon", "scenarios: amazon (its train/test split) | builtin (hashed 80/20 split) | craigslist")
    steps: int = option(40, "GRPO steps")
    products_per_step: int = option(2, "training products per step")
    group_size: int = option(4, "G: negotiations per product (advantages are group-relative)")
    micro_batch: int = option(0, "negotiations per forward/backward pass, a divisor of products_per_step x "
                              "group_size (0: all at once); smaller bounds memory, gradients accumulate to one step")
    lr: float = option(5e-5, "learning rate")
    beta: float = option(0.04, "KL coefficient to the starting model")
    loss_type: str = option("grpo", "TRL's GRPO loss type (e.g. grpo, dr_grpo, dapo)")
    scale_rewards: str = option("group", "advantage scaling: group | batch | none")
    temperature: float = option(1.0, "sampling temperature of the rollouts")
    max_turns: int = option(8, "turns per negotiation")
    max_utterance_tokens: int = option(32, "tokens per utterance in the rollouts")
    announce_turns: bool = option(False, "both sides see the turns left after every message (rollouts and "
                                  "evaluations alike)")
    branch: str = option("off", "branching groups (training/branching.py; pair with --loss-type dr_grpo): off | any "
                         "(a group's negotiations share their turns up to a random buyer turn, then differ) | open "
                         "(the same, the turn drawn among those the shared opening reaches undecided) | last (the "
                         "last of those: every group compares its deadline moves)")
    mode: str = option("lora", "lora | full")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha (the adapter is scaled by alpha / r)")
    dtype: str = option("float32", "float32 | bfloat16 (autocast matmuls)")
    rollout_dtype: str = option("same", "same | bfloat16: same = the rollouts play the policy itself; bfloat16 = they "
                                "play a bfloat16 copy of it, its weights refreshed every step (the trainer scores "
                                "the sampled tokens with the policy; a bfloat16 policy plays itself)")
    base_dtype: str = option("same", "same | bfloat16 (LoRA with --dtype bfloat16): hold the frozen base weights in "
                             "bfloat16, cast once, not on every pass (the adapters stay float32, buffers as loaded)")
    save_every: int = option(10, "checkpoint every N steps (a rerun resumes from the last)")
    eval_products: int = option(40, "held-out test products for the before/after evaluation (0: skip)")
    seed: int = option(0, "seed of the rollouts, the data order and the evaluation sample")
    curriculum: str = option("none", "training products: none (all, shuffled) | zopa (mutual-interest only, widest "
                             "zone (budget - cost) / budget first, not shuffled) | mutual (mutual-interest only, shuffled) | "
                             "narrow (every product, narrowest |budget - cost| / budget first, not shuffled: the "
                             "deadline decisions at the budget)")
    stall_cost: float = option(0.0, "reward shaping, off by default: subtract this per buyer turn that names no price "
                               "(talk acts, reject) from the TRAINING reward; evaluations report the paper's reward")
    quit_stalls: bool = option(False, "with --stall-cost: a quit costs it for itself and for each buyer turn it leaves "
                               "unplayed, so quitting early is no cheaper than stalling to the deadline (run 26)")
    max_failure_share: float = option(0.5, "stop the run when more than this share of a step's rollouts end in an agent "
                                      "error (an exception, not a protocol failure); all failed always stops")

    def __post_init__(self) -> None:
        choice(self.mode, ("lora", "full"), "GRPO mode")
        if not 0.0 <= self.max_failure_share <= 1.0:
            raise NegolensError(f"max_failure_share must be between 0 and 1, not {self.max_failure_share}")
        if self.group_size < 2:
            raise NegolensError("group_size must be at least 2: advantages are relative to the group")
        choice(self.dtype, ("float32", "bfloat16"), "dtype")
        choice(self.rollout_dtype, ("same", "bfloat16"), "rollout_dtype")
        choice(self.base_dtype, ("same", "bfloat16"), "base_dtype")
        if self.base_dtype != "same" and (self.mode, self.dtype) != ("lora", "bfloat16"):
            raise NegolensError("base_dtype=bfloat16 needs mode=lora and dtype=bfloat16 (a bfloat16 base under "
                                "float32 adapters); full fine-tuning keeps its trained weights float32")
        choice(self.branch, BRANCHING, "branch")
        choice(self.curriculum, CURRICULA, "curriculum")
        if self.stall_cost < 0:
            raise NegolensError(f"stall_cost must be at least 0, not {self.stall_cost}")
        if self.quit_stalls and not self.stall_cost:
            raise NegolensError("quit_stalls charges quits the stall cost, which is 0: pass --stall-cost too (e.g. 0.05)")
        if self.steps < 1 or self.products_per_step < 1 or self.save_every < 1:
            raise NegolensError("steps, products_per_step and save_every must be at least 1")
        if self.micro_batch < 0 or self.micro_batch and (self.products_per_step * self.group_size) % self.micro_batch:
            raise NegolensError(f"micro_batch must divide products_per_step x group_size = "
                                f"{self.products_per_step * self.group_size} (or be 0: all at once), "
                                f"not {self.micro_batch}")

    @classmethod
    def quick(cls, **overrides) -> "GRPORunConfig":
        """A few-minute preset for tests and demos: few steps, short dialogues, a small evaluation.

        Parameters
        ----------
        **overrides
            Any field, applied after the preset.

        Returns
        -------
        GRPORunConfig
        """
        return cls(**{"steps": 4, "eval_products": 8, "max_turns": 6, "save_every": 2, **overrides})


@dataclass
class GRPOResult:
    """What :func:`run_grpo` returns.

    Attributes
    ----------
    final : Path
        The trained buyer's checkpoint (loads with :func:`negolens.load`).
    steps : list of dict
        Per-step quantities (:func:`read_steps`): reward, deal rate, bargained ratio, overshoot...
    comparison : pandas.DataFrame or None
        The paired start-vs-final evaluation (:func:`~negolens.training.heldout.paired_comparison`);
        ``None`` when ``eval_products`` is 0 (or on a non-main process of a multi-GPU run).
    before, after : list of dict
        The held-out dialogue records of the starting and the trained buyer.
    """

    final: Path
    steps: list[dict]
    comparison: pd.DataFrame | None = None
    before: list[dict] = field(default_factory=list)
    after: list[dict] = field(default_factory=list)


def read_steps(out: str | Path) -> list[dict]:
    """Per-step stats of a run directory, last write per step wins (a resumed run rewrites the
    steps it redoes); ``[]`` before the first step."""
    from negolens.agents.runner import read_records

    path = Path(out) / "steps.jsonl"
    by_step = {rec["step"]: rec for rec in (read_records(path) if path.is_file() else [])}
    return [by_step[k] for k in sorted(by_step)]


def train_grpo(model, cfg: GRPORunConfig, scenarios: list, out: str | Path, resume: bool = True,
               progress: bool = True, overwrite: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Train a buyer with GRPO on ``scenarios``; checkpoints, logs and the final model in ``out``.

    Parameters
    ----------
    model : NegoModel
        The starting buyer (``cfg.model`` loaded; the reference is saved as the adapter's base). With
        ``cfg.base_dtype="bfloat16"`` its weights are cast in place (:func:`~negolens.training.devices.cast_weights`).
    cfg : GRPORunConfig
        The run's settings (``eval_products`` and ``source`` are not used here).
    scenarios : list of Scenario
        Training scenarios (:func:`~negolens.agents.scenarios.split_scenarios` ``"train"``).
    out : str or Path
        Run directory: ``checkpoint-N/``, ``steps.jsonl``, ``rollouts/`` and ``final/``.
    resume : bool
        Continue from the last ``checkpoint-N`` in ``out``.
    progress : bool
        Show a progress bar.
    overwrite : bool
        Replace an earlier run in ``out``. Without it, ``out`` must be new or hold the same run
        (``run.json``: every setting but ``steps``, the starting model, the scenarios):
        finished with ``cfg.steps`` steps, nothing is done; finished with fewer, training goes
        on from the last checkpoint to ``cfg.steps``; another run raises
        :class:`~negolens.errors.NegolensError` naming the differing settings.
    log : callable, optional
        Receives one-line messages (a finished run, a resumed checkpoint).

    Returns
    -------
    Path
        ``out / "final"``, with ``negolens_manifest.json``.

    Examples
    --------
    >>> import negolens, tempfile
    >>> from negolens.testing import tiny_model_dir
    >>> from negolens.agents.scenarios import split_scenarios
    >>> base = str(tiny_model_dir(tempfile.mkdtemp()))
    >>> cfg = GRPORunConfig(model=base, steps=1, products_per_step=1, group_size=2, max_turns=2)
    >>> final = train_grpo(negolens.load(base), cfg, split_scenarios("builtin", "train"), tempfile.mkdtemp(),
    ...                    progress=False)  # doctest: +SKIP
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    if not scenarios:
        raise NegolensError("no training scenarios")
    say = log or (lambda _msg: None)
    out = Path(out)
    if os.environ.get("RANK", "0") == "0":  # one process checks, clears and records the run folder
        start_run(out, run_identity(cfg, scenarios), kind="grpo", owns=GRPO_OUTPUTS, overwrite=overwrite,
                  models=model_refs(cfg.model))
    else:
        refuse_file(out)
    if not overwrite and check_steps(out, cfg) == cfg.steps:
        say(f"already trained: {out / 'final'} ({cfg.steps} steps, same settings); nothing to train")
        return out / "final"
    scenarios = curriculum_order(scenarios, cfg.curriculum)
    if not scenarios:
        raise NegolensError("the curriculum left no training products (no mutual-interest product: budget > cost)")
    by_id = {s.id: s for s in scenarios}
    batch = cfg.products_per_step * cfg.group_size
    micro = cfg.micro_batch or batch  # one rollout of the whole step, trained in batch // micro passes
    args = GRPOConfig(
        output_dir=str(out), max_steps=cfg.steps, learning_rate=cfg.lr, beta=cfg.beta, loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards, per_device_train_batch_size=micro, num_generations=cfg.group_size,
        gradient_accumulation_steps=batch // micro, steps_per_generation=batch // micro, num_iterations=1,
        temperature=cfg.temperature,
        logging_steps=1, save_strategy="steps", save_steps=cfg.save_every, report_to=[], seed=cfg.seed,
        bf16=cfg.dtype == "bfloat16", use_cpu=_trains_on_cpu(model), disable_tqdm=not progress,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0, remove_unused_columns=False,
        gradient_checkpointing=False,  # small models: recomputation only costs time here
        shuffle_dataset=cfg.curriculum not in ORDERED_CURRICULA,
    )
    peft_config = None
    if cfg.mode == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(LORA_TARGETS),
                                 task_type="CAUSAL_LM")
    if cfg.base_dtype != "same":
        cast_weights(model.hf, cfg.base_dtype)  # before PEFT adds its float32 adapters
    rows = [{"prompt": s.id} for s in scenarios]
    model.hf.train()
    trainer = GRPOTrainer(
        model=model.hf, reward_funcs=[rlvr_reward_func], args=args, train_dataset=Dataset.from_list(rows),
        processing_class=model.tokenizer, peft_config=peft_config,
        rollout_func=NegotiationRollout(cfg, by_id, model.tokenizer, out, model.path),
        callbacks=[start_model_callback(out, cfg.model)],
    )
    shutdown_at_exit()  # under `accelerate launch` the trainer has joined a process group by now
    last = last_checkpoint(out) if resume else None
    if last is not None:
        say(f"resuming from {last} (step {last.name.split('-')[-1]}) to {cfg.steps} steps")
    t0 = time.perf_counter()
    with scored_positions_only():  # on the CPU, TRL's head would score every position; elsewhere a no-op
        trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.perf_counter() - t0
    final = out / "final"
    trainer.save_model(str(final))
    if not trainer.accelerator.is_main_process:
        return final
    model.tokenizer.save_pretrained(final)
    point_adapter_at(final, cfg.model)
    manifest = {"kind": "grpo", "base_model": cfg.model, "config": to_dict(cfg), "seconds": seconds,
                "resumed_from": str(last) if last else None, "steps": read_steps(out),
                "data": f"{cfg.source} train split ({len(scenarios)} products)"}
    (final / "negolens_manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return final


def _trains_on_cpu(model) -> bool:
    """Whether TRL should train on the CPU: where the model is. On CUDA, TRL (accelerate) places
    the policy on the process's GPU itself (``cuda:0`` in a single process, ``LOCAL_RANK`` under
    ``accelerate launch``); pick another GPU with ``CUDA_VISIBLE_DEVICES``."""
    device = model.device
    if device.type == "cuda" and "LOCAL_RANK" not in os.environ and (device.index or 0) != 0:
        raise NegolensError(f"GRPO trains on the process's first GPU, but the model is on {device}: run with "
                            f"CUDA_VISIBLE_DEVICES={device.index} and device='cuda' instead")
    if device.type not in ("cpu", "cuda"):
        raise NegolensError(f"GRPO trains on the CPU or CUDA, not on {device}")
    return device.type == "cpu"


def run_grpo(config: GRPORunConfig, out: str | Path, *, data: str | Path | None = None, model=None,
             log: Callable[[str], None] | None = None, progress: bool = True, overwrite: bool = False,
             device: str = "auto") -> GRPOResult:
    """The RLVR buyer: GRPO on the train split, then a paired before/after held-out evaluation.

    Trains against ``config.seller`` on the ``train`` split of ``config.source``
    (:func:`~negolens.agents.scenarios.split_scenarios`), then plays the starting and the final
    buyer greedily, with the rollouts' ``max_utterance_tokens``, on ``config.eval_products``
    scenarios of the ``test`` split and pairs them per scenario
    (:func:`~negolens.training.heldout.paired_comparison`). A rerun of the same run
    (``out/run.json``) resumes from the last checkpoint and from the dialogues already played;
    a finished run is not trained again, and a larger ``steps`` extends it. Each evaluation
    folder records the buyer it played (a content fingerprint of the checkpoint), and is
    played again when that buyer changed, so ``eval.json`` describes the current ``final/``.

    Parameters
    ----------
    config : GRPORunConfig
        What to train (see :meth:`GRPORunConfig.quick` for a few-minute run).
    out : str or Path
        Run directory: checkpoints, ``steps.jsonl``, ``rollouts/``, ``final/``, and with an
        evaluation ``eval-start/``, ``eval-final/`` and ``eval.json``.
    data : str or Path, optional
        The data directory (unused for ``builtin``).
    model : NegoModel, optional
        ``config.model`` already loaded; it is trained in place, or given adapters in place
        (with ``base_dtype="bfloat16"``, its weights are cast in place first).
    log : callable, optional
        Receives one-line messages (the checkpoint, the comparison table).
    device : str
        Where ``config.model`` is loaded (when ``model`` is not given) and trained: ``"auto"``
        (CUDA when available), ``"cpu"`` or ``"cuda"`` (TRL trains on the process's first GPU:
        choose it with ``CUDA_VISIBLE_DEVICES``). The held-out evaluation plays there too.
    progress : bool
        Show progress bars.
    overwrite : bool
        Replace an earlier run in ``out`` instead of raising
        :class:`~negolens.errors.NegolensError` when its settings differ (checked before the
        model loads; see :func:`train_grpo`).

    Returns
    -------
    GRPOResult

    Examples
    --------
    >>> from negolens.training import GRPORunConfig, run_grpo
    >>> result = run_grpo(GRPORunConfig.quick(source="builtin"), "results/grpo")  # doctest: +SKIP
    >>> result.comparison.set_index("metric").loc["reward", "diff"]  # doctest: +SKIP
    """
    from negolens.agents.scenarios import split_scenarios
    from negolens.training.heldout import format_comparison, paired_comparison, play

    say = log or (lambda _msg: None)
    out = Path(out)
    refuse_file(out)
    train = split_scenarios(config.source, "train", data=data, seed=config.seed)
    if os.environ.get("RANK", "0") == "0":  # checked before the model loads; train_grpo finds it recorded
        start_run(out, run_identity(config, train), kind="grpo", owns=GRPO_OUTPUTS, overwrite=overwrite,
                  models=model_refs(config.model), data=data_dir(data))
    if not overwrite and check_steps(out, config) == config.steps:
        say(f"already trained: {out / 'final'} ({config.steps} steps, same settings); nothing to train")
        final = out / "final"
    else:
        if model is None:
            from negolens.hooked import load

            model = load(config.model, attn_implementation="sdpa", device=device)  # no patterns needed
        final = train_grpo(model, config, train, out, progress=progress, log=say)
    del model
    say(f"checkpoint: {final}")
    result = GRPOResult(final, read_steps(out))
    if result.steps:
        from negolens.training.phases import label_phases, phase_spans

        spans = phase_spans(label_phases(result.steps, max_turns=config.max_turns))
        say("phases: " + " -> ".join(f"{r.phase} ({r.start}-{r.end})" for r in spans.itertuples()))
    if not config.eval_products or os.environ.get("RANK", "0") != "0":  # evaluate once, on the main process
        return result
    held = split_scenarios(config.source, "test", config.eval_products, data=data, seed=config.seed)
    kw = dict(max_turns=config.max_turns, seed=config.seed, progress=progress, device=device,
              announce_turns=config.announce_turns, max_utterance_tokens=config.max_utterance_tokens)
    result.before = play(config.model, held, config.seller, out / "eval-start", **kw)
    result.after = play(final, held, config.seller, out / "eval-final", **kw)
    result.comparison = paired_comparison(result.before, result.after, seed=config.seed)
    result.comparison.to_json(out / "eval.json", orient="records", indent=2)
    say(format_comparison(result.comparison, "start", "GRPO"))
    return result
