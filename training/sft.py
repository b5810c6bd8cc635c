"""Supervised fine-tuning of role specialists: full, LoRA (peft) or QLoRA (bitsandbytes, CUDA).

Configured by :class:`SFTConfig` (TRL-style), run by :func:`train_sft`, saved with a manifest.
The loop computes the 49k-vocabulary logits only at target positions (the last hidden state
is gathered where labels are set, then multiplied by the unembedding) — most positions are
prompt, so this saves most of the head's cost. The checkpoint loads anywhere a model is asked
for: a LoRA adapter directory (merged on load) or a full HF directory.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from negolens.errors import NegolensError
from negolens.training.data import IGNORE, Example

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class SFTConfig:
    model: str = "smollm2-135m-instruct"
    role: str = "buyer"  # buyer | seller | generalist
    mode: str = "lora"  # full | lora | qlora
    lr: float = 2e-4
    steps: int = 200
    batch_size: int = 8
    max_tokens: int = 512
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = LORA_TARGETS
    eval_every: int = 50
    seed: int = 0
    dtype: str = "float32"  # "bfloat16": matmuls under CPU/GPU autocast (weights and optimizer stay fp32)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("full", "lora", "qlora"):
            raise NegolensError(f"mode must be full, lora or qlora, not {self.mode!r}")
        if self.mode == "qlora" and not torch.cuda.is_available():
            raise NegolensError(
                "QLoRA needs a CUDA GPU: bitsandbytes' 4-bit layers do not run on the CPU. "
                "Use --mode lora (same adapters, float base) or --mode full on this machine."
            )


PAD_MULTIPLE = 64  # few distinct shapes: oneDNN's bf16 kernels are built per shape, and memory fragments


def _collate(batch: list[Example], pad_id: int):
    width = -(-max(len(e.input_ids) for e in batch) // PAD_MULTIPLE) * PAD_MULTIPLE
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, e in enumerate(batch):  # right padding: training needs no generation alignment
        ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[r, : len(e.labels)] = torch.tensor(e.labels)
        mask[r, : len(e.input_ids)] = 1
    return ids, labels, mask


def target_loss(hf, ids, labels, mask) -> torch.Tensor:
    """Mean next-token cross-entropy over target tokens, logits computed only there."""
    base = hf.get_base_model() if hasattr(hf, "get_base_model") else hf
    hidden = base.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, T, D]
    pred_at = labels[:, 1:] != IGNORE  # position t predicts token t+1
    h = hidden[:, :-1][pred_at]  # [N, D]
    logits = base.lm_head(h).float()
    return torch.nn.functional.cross_entropy(logits, labels[:, 1:][pred_at])


def autocast(dtype: str):
    """bf16 autocast for matmuls (the AMX path on these CPUs) or a no-op for float32."""
    if dtype == "float32":
        return contextlib.nullcontext()
    if dtype != "bfloat16":
        raise NegolensError(f"dtype must be float32 or bfloat16, not {dtype!r}")
    return torch.autocast("cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)


def _prepare(model, cfg: SFTConfig):
    hf = model.hf
    hf.train()
    if cfg.mode == "full":
        return hf
    from peft import LoraConfig, get_peft_model

    if cfg.mode == "qlora":  # pragma: no cover - CUDA only
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        hf = AutoModelForCausalLM.from_pretrained(
            str(model.path), quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"),
            device_map={"": 0})
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM")
    return get_peft_model(hf, lora)


@torch.no_grad()
def evaluate(hf, examples: list[Example], pad_id: int, batch_size: int = 8) -> float:
    hf.eval()
    total, n = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        ids, labels, mask = _collate(chunk, pad_id)
        count = int((labels[:, 1:] != IGNORE).sum())
        total += float(target_loss(hf, ids, labels, mask)) * count
        n += count
    hf.train()
    return total / max(n, 1)


def train_sft(model, cfg: SFTConfig, train: list[Example], eval_set: list[Example], out: str | Path,
              progress: bool = True) -> Path:
    """Train, evaluate every ``eval_every`` steps, save checkpoint + manifest to ``out``."""
    if not train:
        raise NegolensError("no training examples (all longer than max_tokens?)")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    hf = _prepare(model, cfg)
    params = [p for p in hf.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    curve = [{"step": 0, "eval_loss": evaluate(hf, eval_set, model.pad_id)}] if eval_set else []
    order, seen, t0, tokens = [], 0, time.perf_counter(), 0
    for step in tqdm(range(1, cfg.steps + 1), desc="sft", disable=not progress):
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(train)), len(train))
        batch = [train[order.pop()] for _ in range(cfg.batch_size)]
        ids, labels, mask = _collate(batch, model.pad_id)
        with autocast(cfg.dtype):
            loss = target_loss(hf, ids, labels, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        tokens += int(mask.sum())
        seen += len(batch)
        if eval_set and (step % cfg.eval_every == 0 or step == cfg.steps):
            curve.append({"step": step, "train_loss": float(loss.detach()), "eval_loss": evaluate(hf, eval_set, model.pad_id)})
    seconds = time.perf_counter() - t0
    return _save(model, hf, cfg, out, curve, {"train_examples": len(train), "eval_examples": len(eval_set),
                                            "examples_seen": seen, "tokens_per_s": tokens / seconds, "seconds": seconds})


def _save(model, hf, cfg: SFTConfig, out, curve, stats) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hf.eval()
    hf.save_pretrained(out)
    model.tokenizer.save_pretrained(out)
    if cfg.mode != "full":  # the adapter must find its base by a reference negolens can load
        path = out / "adapter_config.json"
        conf = json.loads(path.read_text())
        conf["base_model_name_or_path"] = cfg.model
        path.write_text(json.dumps(conf, indent=2))
    manifest = {"kind": "sft", "base_model": cfg.model, "config": asdict(cfg), "eval_curve": curve, **stats,
                "data": "craigslist_bargains/test.jsonl (train), validation_dev.jsonl (eval)"}
    (out / "negolens_manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return out
