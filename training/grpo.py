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
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from negolens.errors import NegolensError
from negolens.training.rollouts import buyer_sequence, step_stats
from negolens.training.sft import LORA_TARGETS


@dataclass
class GRPORunConfig:
    model: str = "smollm2-135m-instruct"  # the starting buyer: zoo name or checkpoint (e.g. the SFT buyer)
    seller: str = "rule"  # counterpart spec (see negolens.agents.factory), regulated by the protocol
    source: str = "amazon"  # scenarios: AmazonHistoryPrice train split (eval on its test split)
    steps: int = 40
    products_per_step: int = 2
    group_size: int = 4  # G rollouts per product
    lr: float = 5e-5
    beta: float = 0.04  # KL coefficient to the starting model
    loss_type: str = "grpo"
    scale_rewards: str = "group"  # group | batch | none
    temperature: float = 1.0
    max_turns: int = 8
    max_utterance_tokens: int = 32
    mode: str = "lora"  # lora | full
    lora_r: int = 16
    lora_alpha: int = 32
    dtype: str = "float32"  # bfloat16: autocast matmuls
    save_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("lora", "full"):
            raise NegolensError(f"GRPO mode must be lora or full, not {self.mode!r}")
        if self.group_size < 2:
            raise NegolensError("group_size must be at least 2: advantages are relative to the group")


class NegotiationRollout:
    """``rollout_func`` for TRL: prompts are scenario ids; each becomes negotiations."""

    def __init__(self, cfg: GRPORunConfig, scenarios: dict, tokenizer, out: Path, path: str | Path):
        from negolens.agents.factory import make_agent

        self.cfg, self.scenarios, self.tokenizer, self.out, self.path = cfg, scenarios, tokenizer, out, path
        self.seller = make_agent(cfg.seller, "seller", models={}, fetch=True)
        (out / "rollouts").mkdir(parents=True, exist_ok=True)

    def __call__(self, prompts: list[str], trainer) -> dict:
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
    """The verifiable reward, computed by the environment during the rollout."""
    return [float(r) for r in rlvr_reward]


def read_steps(out: str | Path) -> list[dict]:
    """Per-step stats, last write per step wins (a resumed run rewrites the steps it redoes)."""
    path = Path(out) / "steps.jsonl"
    by_step = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        by_step[rec["step"]] = rec
    return [by_step[k] for k in sorted(by_step)]


def train_grpo(model, cfg: GRPORunConfig, scenarios: list, out: str | Path, resume: bool = True,
               progress: bool = True) -> Path:
    """Train ``model`` (a NegoModel, the starting buyer) with GRPO; checkpoint + manifest in ``out``."""
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
    manifest = {"kind": "grpo", "base_model": cfg.model, "config": asdict(cfg), "seconds": seconds,
                "resumed_from": str(last) if last else None, "steps": read_steps(out),
                "data": f"{cfg.source} train split ({len(scenarios)} products)"}
    (final / "negolens_manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return final


def _last_checkpoint(out: Path) -> Path | None:
    points = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return points[-1] if points else None
