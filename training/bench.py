"""``negolens bench sft``: the negolens SFT step vs a plain HF/peft training loop.

Same LoRA initialisation (seeded), same batches (real Craigslist buyer examples, 8 per step),
same optimizer. Baseline: ``model(input_ids, labels=...)`` — float32, logits for every
position. negolens: logits only at target positions, matmuls in bfloat16 autocast. Reported:
tokens/s of each, the ratio, and the held-out loss after the same steps (numerics check).
"""

from __future__ import annotations

import time

import torch

from negolens.training.data import build_examples
from negolens.training.devices import autocast
from negolens.training.data import collate
from negolens.training.sft import SFTConfig, _prepare, eval_loss, target_loss
from negolens.zoo import DEFAULT_MODEL


def _run(model, cfg, batches, held, fast: bool):
    """Train one loop on ``batches``; (tokens/s, held-out loss)."""
    torch.manual_seed(cfg.seed)
    hf = _prepare(model, cfg)
    params = [p for p in hf.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    tokens, t0 = 0, time.perf_counter()
    for ids, labels, mask in batches:
        if fast:
            with autocast("bfloat16", ids.device):
                loss = target_loss(hf, ids, labels, mask)
        else:
            loss = hf(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens += int(mask.sum())
    seconds = time.perf_counter() - t0
    loss = eval_loss(hf, held, model.pad_id)
    hf.unload() if hasattr(hf, "unload") else None  # drop the adapter: next run starts from the base
    return tokens / seconds, loss


def bench_sft(model: str = DEFAULT_MODEL, seed: int = 0, steps: int = 6, batch: int = 8) -> dict:
    """Time the negolens SFT step against a plain HF/peft loop on the same LoRA batches.

    Parameters
    ----------
    model : str
        Zoo name or model directory.
    seed : int
        Seed of the adapter initialisation and the batch order.
    steps, batch : int
        Optimizer steps and examples per step of each loop.

    Returns
    -------
    dict
        Tokens per second of both loops, their ratio (``speedup``) and the held-out loss of each.

    Examples
    --------
    >>> bench_sft(steps=2)["speedup"] > 0  # doctest: +SKIP
    True
    """
    from negolens.hooked import load
    from negolens.agents.transcripts import load_transcripts

    nm = load(model)
    train = build_examples(nm, load_transcripts("craigslist-test", 40), "buyer", 384)
    held = build_examples(nm, load_transcripts("craigslist-dev", 20), "buyer", 384)[:16]
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=g).tolist()
    batches = [tuple(t.to(nm.device) for t in collate([train[i] for i in order[s * batch : (s + 1) * batch]], nm.pad_id))
               for s in range(steps)]
    cfg = SFTConfig(model=model, mode="lora", lr=2e-4, seed=seed)
    base_tps, base_loss = _run(nm, cfg, batches, held, fast=False)
    fast_tps, fast_loss = _run(nm, cfg, batches, held, fast=True)
    return {
        "bench": "sft", "model": model, "mode": "lora", "steps": steps, "batch": batch,
        "baseline": "plain HF/peft loop (fp32, full logits)",
        "baseline_tokens_per_s": round(base_tps, 1), "negolens_tokens_per_s": round(fast_tps, 1),
        "baseline_eval_loss": round(base_loss, 4), "negolens_eval_loss": round(fast_loss, 4),
        "speedup": round(fast_tps / base_tps, 2),
    }
