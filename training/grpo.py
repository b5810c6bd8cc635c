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

import torch

from negolens.config import option, to_dict
from negolens.errors import NegolensError
from negolens.training.rollouts import buyer_sequence, step_stats
from negolens.training.sft import LORA_TARGETS
from negolens.zoo import DEFAULT_MODEL

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GRPORunConfig", "GRPOResult", "run_grpo", "train_grpo", "read_steps", "NegotiationRollout",
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
    seller: str = option("rule", "regulated counterpart: rule[:personality] or MODEL spec")
    source: str = option("amazon", "scenarios: amazon (its train/test split) | builtin (hashed 80/20 split) | craigslist")
    steps: int = option(40, "GRPO steps")
    products_per_step: int = option(2, "training products per step")
    group_size: int = option(4, "G: negotiations per product (advantages are group-relative)")
    lr: float = option(5e-5, "learning rate")
    beta: float = option(0.04, "KL coefficient to the starting model")
    loss_type: str = option("grpo", "TRL's GRPO loss type (e.g. grpo, dr_grpo, dapo)")
    scale_rewards: str = option("group", "advantage scaling: group | batch | none")
    temperature: float = option(1.0, "sampling temperature of the rollouts")
    max_turns: int = option(8, "turns per negotiation")
    max_utterance_tokens: int = option(32, "tokens per utterance in the rollouts")
    mode: str = option("lora", "lora | full")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha (the adapter is scaled by alpha / r)")
    dtype: str = option("float32", "float32 | bfloat16 (autocast matmuls)")
    save_every: int = option(10, "checkpoint every N steps (a rerun resumes from the last)")
    eval_products: int = option(40, "held-out test products for the before/after evaluation (0: skip)")
    seed: int = option(0, "seed of the rollouts, the data order and the evaluation sample")

    def __post_init__(self) -> None:
        if self.mode not in ("lora", "full"):
            raise NegolensError(f"GRPO mode must be lora or full, not {self.mode!r}")
        if self.group_size < 2:
            raise NegolensError("group_size must be at least 2: advantages are relative to the group")
        if self.dtype not in ("float32", "bfloat16"):
            raise NegolensError(f"dtype must be float32 or bfloat16, not {self.dtype!r}")
        if self.steps < 1 or self.products_per_step < 1 or self.save_every < 1:
            raise NegolensError("steps, products_per_step and save_every must be at least 1")

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
        self.seller = make_agent(cfg.seller, "seller", models={}, fetch=True)
        (out / "rollouts").mkdir(parents=True, exist_ok=True)

    def __call__(self, prompts: list[str], trainer) -> dict:
        """Play the negotiations of one step; return TRL's rollout dict with the buyer's ``env_mask``."""
        from negolens.agents.llm_agent import LLMAgent
        from negolens.agents.runner import RunConfig, run_negotiations
        from negolens.hooked import NegoModel

        model = trainer.accelerator.unwrap_model(trainer.model)
        policy = NegoModel(model, self.tokenizer, self.path, name=f"grpo-step{trainer.state.global_step}")
        buyer = LLMAgent(policy, "buyer", temperature=self.cfg.temperature,
                         max_utterance_tokens=self.cfg.max_utterance_tokens)
        per = self.cfg.group_size if len(set(prompts)) == len(prompts) else 1  # TRL may repeat each prompt G times
        scenarios = [self.scenarios[p] for p in prompts for _ in range(per)]
        step = trainer.state.global_step
        rank = trainer.accelerator.process_index  # distinct sampling seeds on every process
        run = RunConfig(max_turns=self.cfg.max_turns, seed=self.cfg.seed * 1_000_003 + step * 1_009 + rank,
                        batch_size=len(scenarios), regulated_seller=True)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            records = run_negotiations(scenarios, buyer, self.seller, run, progress=False)
        model.train(was_training)
        records.sort(key=lambda r: r["id"])  # runner order is completion order; ids keep prompt order
        for r in records:
            r["id"], r["process"], r["step"] = f"s{step + 1}-p{rank}-{r['id']}", rank, step + 1
        seqs = [buyer_sequence(policy, r) for r in records]
        from accelerate.utils import gather_object

        everyone = gather_object(records)  # all processes' dialogues (one process: the same list)
        stats = {"step": step + 1, **step_stats(everyone), "dialogues": len(everyone)}
        if trainer.accelerator.is_main_process:
            self._log(step + 1, stats, everyone)
        for k, v in stats.items():
            if k not in ("step", "dialogues"):
                trainer._metrics["train"][f"negotiation/{k}"].append(v)
        return {
            "prompt_ids": [s[0] for s in seqs],
            "completion_ids": [s[1] for s in seqs],
            "logprobs": None,
            "env_mask": [s[2] for s in seqs],
            "rlvr_reward": [r["metrics"]["reward"] for r in records],
        }

    def _log(self, step: int, stats: dict, records: list[dict]) -> None:
        with open(self.out / "rollouts" / f"step{step:05d}.jsonl", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
        with open(self.out / "steps.jsonl", "a") as fh:
            fh.write(json.dumps(stats) + "\n")


def rlvr_reward_func(prompts, completions, rlvr_reward, **_) -> list[float]:
    """TRL reward function: the verifiable reward the environment computed during the rollout."""
    return [float(r) for r in rlvr_reward]


def read_steps(out: str | Path) -> list[dict]:
    """Per-step stats of a run directory, last write per step wins (a resumed run rewrites the
    steps it redoes); ``[]`` before the first step."""
    from negolens.agents.runner import read_records

    path = Path(out) / "steps.jsonl"
    by_step = {rec["step"]: rec for rec in (read_records(path) if path.is_file() else [])}
    return [by_step[k] for k in sorted(by_step)]


def train_grpo(model, cfg: GRPORunConfig, scenarios: list, out: str | Path, resume: bool = True,
               progress: bool = True) -> Path:
    """Train a buyer with GRPO on ``scenarios``; checkpoints, logs and the final model in ``out``.

    Parameters
    ----------
    model : NegoModel
        The starting buyer (``cfg.model`` loaded; the reference is saved as the adapter's base).
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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_id = {s.id: s for s in scenarios}
    batch = cfg.products_per_step * cfg.group_size
    args = GRPOConfig(
        output_dir=str(out), max_steps=cfg.steps, learning_rate=cfg.lr, beta=cfg.beta, loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards, per_device_train_batch_size=batch, num_generations=cfg.group_size,
        gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1, temperature=cfg.temperature,
        logging_steps=1, save_strategy="steps", save_steps=cfg.save_every, report_to=[], seed=cfg.seed,
        bf16=cfg.dtype == "bfloat16", use_cpu=not torch.cuda.is_available(), disable_tqdm=not progress,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0, remove_unused_columns=False,
        gradient_checkpointing=False,  # small models: recomputation only costs time here
    )
    peft_config = None
    if cfg.mode == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(LORA_TARGETS),
                                 task_type="CAUSAL_LM")
    rows = [{"prompt": s.id} for s in scenarios]
    model.hf.train()
    trainer = GRPOTrainer(
        model=model.hf, reward_funcs=[rlvr_reward_func], args=args, train_dataset=Dataset.from_list(rows),
        processing_class=model.tokenizer, peft_config=peft_config,
        rollout_func=NegotiationRollout(cfg, by_id, model.tokenizer, out, model.path),
    )
    last = _last_checkpoint(out) if resume else None
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.perf_counter() - t0
    final = out / "final"
    trainer.save_model(str(final))
    if not trainer.accelerator.is_main_process:
        return final
    model.tokenizer.save_pretrained(final)
    if cfg.mode == "lora":  # the adapter's base is the starting buyer, loadable by negolens
        conf_path = final / "adapter_config.json"
        conf = json.loads(conf_path.read_text())
        conf["base_model_name_or_path"] = str(Path(cfg.model).resolve()) if Path(cfg.model).exists() else cfg.model
        conf_path.write_text(json.dumps(conf, indent=2))
    manifest = {"kind": "grpo", "base_model": cfg.model, "config": to_dict(cfg), "seconds": seconds,
                "resumed_from": str(last) if last else None, "steps": read_steps(out),
                "data": f"{cfg.source} train split ({len(scenarios)} products)"}
    (final / "negolens_manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return final


def _last_checkpoint(out: Path) -> Path | None:
    points = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return points[-1] if points else None


def run_grpo(config: GRPORunConfig, out: str | Path, *, data: str | Path | None = None, model=None,
             log: Callable[[str], None] | None = None, progress: bool = True) -> GRPOResult:
    """The RLVR buyer: GRPO on the train split, then a paired before/after held-out evaluation.

    Trains against ``config.seller`` on the ``train`` split of ``config.source``
    (:func:`~negolens.agents.scenarios.split_scenarios`), then plays the starting and the final
    buyer greedily on ``config.eval_products`` scenarios of the ``test`` split and pairs them
    per scenario (:func:`~negolens.training.heldout.paired_comparison`). A rerun resumes from
    the last checkpoint and from the dialogues already played.

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
        ``config.model`` already loaded; it is trained in place, or given adapters in place.
    log : callable, optional
        Receives one-line messages (the checkpoint, the comparison table).
    progress : bool
        Show progress bars.

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
    train = split_scenarios(config.source, "train", data=data, seed=config.seed)
    if model is None:
        from negolens.hooked import load

        model = load(config.model, attn_implementation="sdpa")  # no patterns needed
    final = train_grpo(model, config, train, out, progress=progress)
    del model
    say(f"checkpoint: {final}")
    result = GRPOResult(final, read_steps(out))
    if not config.eval_products or os.environ.get("RANK", "0") != "0":  # evaluate once, on the main process
        return result
    held = split_scenarios(config.source, "test", config.eval_products, data=data, seed=config.seed)
    kw = dict(max_turns=config.max_turns, seed=config.seed, progress=progress)
    result.before = play(config.model, held, config.seller, out / "eval-start", **kw)
    result.after = play(final, held, config.seller, out / "eval-final", **kw)
    result.comparison = paired_comparison(result.before, result.after, seed=config.seed)
    result.comparison.to_json(out / "eval.json", orient="records", indent=2)
    say(format_comparison(result.comparison, "start", "GRPO"))
    return result
