"""``negolens bench sft`` and ``grpo-pass``: negolens's training steps against plain HF/peft and TRL's defaults.

``grpo-pass`` (:func:`bench_grpo_pass`): one GRPO micro-batch on the CPU, a bfloat16 frozen base
and a head that scores the completion only, against TRL's CPU default.

``sft``:

Same LoRA initialisation (seeded), same batches (real Craigslist buyer examples, 8 per step),
same optimizer. Baseline: ``model(input_ids, labels=...)`` — float32, logits for every
position. negolens: logits only at target positions, matmuls in bfloat16 autocast. Reported:
tokens/s of each, the ratio, and the held-out loss after the same steps (numerics check).
"""

from __future__ import annotations

import contextlib
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


def _grpo_pass(hf, ids, mask, labels, compact: bool) -> torch.Tensor:
    """One GRPO micro-batch as TRL runs it: the reference's log-probabilities (adapters off, no
    gradient), then the policy's, backpropagated; returns the policy's log-probabilities."""
    from negolens.training.fused_head import scored_positions_only

    hf.zero_grad()
    with scored_positions_only() if compact else contextlib.nullcontext(), autocast("bfloat16", ids.device):
        with torch.no_grad(), hf.disable_adapter():
            hf(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        out = hf(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        out.log_probs.sum().backward()
    return out.log_probs.detach()


def bench_grpo_pass(model: str = DEFAULT_MODEL, seed: int = 0, rows: int = 4, length: int = 288,
                    completion: int = 40) -> dict:
    """Time a GRPO training pass on the CPU as negolens runs it against TRL's default there.

    Both: LoRA (the same seeded adapters) through TRL's fused LM head, the reference pass then
    the policy's forward and backward, under bfloat16 autocast, on ``rows`` real Craigslist
    dialogues cut to ``length`` tokens (a negotiation rollout's size), whose last ``completion``
    tokens are the scored completion. Baseline: TRL's CPU
    default (a float32 base; the head scores every position, the prompt's too). negolens: the
    base held in bfloat16 (:func:`~negolens.training.devices.cast_weights`) and the head
    scoring the completion only (:func:`~negolens.training.fused_head.scored_positions_only`).
    The compact head alone (float32 base) is timed too. Numerics: how far the completion's
    log-probabilities move with the compact head alone and with both.

    Returns
    -------
    dict
        Seconds per pass of each (best of 3), their ratios to the baseline (``speedup`` last)
        and the absolute differences of the completion's log-probabilities.

    Examples
    --------
    >>> bench_grpo_pass(rows=2)["speedup"] > 0  # doctest: +SKIP
    True
    """
    import copy

    from peft import LoraConfig, get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from negolens.agents.transcripts import load_transcripts
    from negolens.hooked import load
    from negolens.training.devices import cast_weights
    from negolens.training.sft import LORA_TARGETS

    nm = load(model)
    examples = build_examples(nm, load_transcripts("craigslist-test", 8 * rows), "buyer", 512)
    seen, distinct = set(), []  # the longest examples, no two alike in their first `length` tokens
    for e in sorted(examples, key=lambda e: -len(e.input_ids)):
        if tuple(e.input_ids[:length]) not in seen:
            seen.add(tuple(e.input_ids[:length]))
            distinct.append(e)
    examples = distinct[:rows]
    width = min(min(len(e.input_ids) for e in examples), length)  # no padding: each row its first `width` tokens
    ids = torch.tensor([e.input_ids[:width] for e in examples])
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :-completion] = -100  # the prompt
    passes, logps = {}, {}
    for name, compact, bf16_base in (("baseline", False, False), ("compact", True, False), ("negolens", True, True)):
        hf = copy.deepcopy(nm.hf)
        if bf16_base:
            cast_weights(hf, "bfloat16")
        add_fused_lm_head(hf, outputs=("log_probs", "entropy"))
        torch.manual_seed(seed)
        hf = get_peft_model(hf, LoraConfig(r=16, lora_alpha=32, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM"))
        logps[name] = _grpo_pass(hf, ids, mask, labels, compact=compact)  # also the warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            _grpo_pass(hf, ids, mask, labels, compact=compact)
            times.append(time.perf_counter() - t0)
        passes[name] = min(times)
    scored = labels[:, 1:] != -100
    diff = {k: (logps["baseline"] - logps[k])[scored].abs() for k in ("compact", "negolens")}
    return {
        "bench": "grpo-pass", "model": model, "rows": rows, "tokens": int(mask.sum()), "scored": int(scored.sum()),
        "baseline": "TRL's CPU default (float32 base under bf16 autocast, every position scored)",
        "baseline_s": round(passes["baseline"], 3), "compact_head_s": round(passes["compact"], 3),
        "negolens_s": round(passes["negolens"], 3),
        "speedup_compact_head": round(passes["baseline"] / passes["compact"], 2),
        "max_abs_logprob_diff_compact_head": round(diff["compact"].max().item(), 6),
        "max_abs_logprob_diff": round(diff["negolens"].max().item(), 4),
        "mean_abs_logprob_diff": round(diff["negolens"].mean().item(), 5),
        "speedup": round(passes["baseline"] / passes["negolens"], 2),
    }
