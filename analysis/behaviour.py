"""Behaviour under intervention: the next offer, steering along probe directions, and whole
negotiations re-run with heads ablated (against random heads of the same count).

* :func:`greedy_offer` — at ``offer`` decision points (prompt ending in ``ACTION: offer $``),
  the price the model writes under greedy digit-only decoding, as log(price / list price): a
  log ratio, because an untuned model's greedy digits can run to seven figures and one such
  point would swamp a mean of plain ratios.
* :func:`steer` — add ``alpha`` × a unit direction (e.g. a probe's, from ``negolens probe``) to
  the residual stream after a layer, at every position, during any forward inside the block.
* :func:`rerun` — negotiation metrics intact, with the chosen heads ablated, and with random
  heads of the same count ablated (the control), through the batched runner.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from negolens.analysis.ablation import ablated

MAX_DIGITS = 7


@torch.inference_mode()
def greedy_offer(model, points, batch_size: int = 8) -> np.ndarray:
    """log(greedy digit-constrained price / list price) per point (NaN if no digit or 0).

    One prefill per batch, then one cached step per digit (the prompt is not re-read).
    """
    tok = model.tokenizer
    pieces = tok.batch_decode([[i] for i in range(len(tok))])
    digits = torch.tensor([i for i, p in enumerate(pieces) if p.isdigit()])
    out = np.full(len(points), np.nan)
    for start in range(0, len(points), batch_size):
        chunk = points[start : start + batch_size]
        b = model.batch([list(p.ids) for p in chunk])
        res = model.hf(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                       use_cache=True, logits_to_keep=1)
        past, logits = res.past_key_values, res.logits[:, -1].float()
        mask, pos = b.attention_mask, b.position_ids[:, -1:]
        text, done = [""] * len(chunk), [False] * len(chunk)
        for step in range(MAX_DIGITS):
            best = logits[:, digits].max(-1)
            nxt = torch.full((len(chunk),), model.pad_id, dtype=torch.long)
            for r in range(len(chunk)):
                if done[r] or (step > 0 and logits[r, tok.eos_token_id] > best.values[r]):
                    done[r] = True  # the model ends the number here
                    continue
                tid = int(digits[best.indices[r]])
                text[r] += pieces[tid]
                nxt[r] = tid
            if all(done) or step == MAX_DIGITS - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos + 1
            res = model.hf(input_ids=nxt[:, None].to(mask.device), attention_mask=mask, position_ids=pos,
                           past_key_values=past, use_cache=True)
            past, logits = res.past_key_values, res.logits[:, -1].float()
        for r, p in enumerate(chunk):
            price = float(text[r]) if text[r] else 0.0
            out[start + r] = np.log(price / p.scenario.list_price) if price > 0 else np.nan
    return out


def offer_effects(model, points, heads, batch_size: int = 8, progress: bool = False) -> np.ndarray:
    """Per point and head: change of the log offer ratio when the head is zero-ablated. [n, len(heads)]."""
    from tqdm.auto import tqdm

    from negolens.analysis.sweep import sdpa

    out = np.zeros((len(points), len(heads)))
    with sdpa(model):  # no patterns needed: SDPA attention, ~1.6× faster than eager here
        clean = greedy_offer(model, points, batch_size)
        for j, head in enumerate(tqdm(heads, desc="offer sweep", disable=not progress)):
            with ablated(model, [head]):
                out[:, j] = greedy_offer(model, points, batch_size) - clean
    return out


@contextmanager
def steer(model, layer: int, direction, alpha: float):
    """Add ``alpha`` × unit ``direction`` to the output of decoder layer ``layer`` (resid_post)."""
    vec = torch.as_tensor(np.asarray(direction), dtype=model.dtype)
    vec = vec / vec.norm()

    def hook(module, args, output):
        if isinstance(output, tuple):
            return (output[0] + alpha * vec, *output[1:])
        return output + alpha * vec

    handle = model.hf.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def steering_curve(model, points, metric_fn, layer: int, direction, alphas) -> pd.DataFrame:
    """Metric (mean over points, with per-point values) for each steering strength."""
    from negolens.stats import bootstrap_ci

    rows = []
    for alpha in alphas:
        with steer(model, layer, direction, alpha):
            vals = np.asarray(metric_fn(model, points), dtype=float)
        vals = vals[~np.isnan(vals)]
        lo, hi = bootstrap_ci(vals)
        rows.append({"alpha": alpha, "mean": float(vals.mean()) if len(vals) else np.nan, "ci_low": lo, "ci_high": hi,
                     "n": len(vals)})
    return pd.DataFrame(rows)


def rerun(model, heads: list[tuple[int, int]], scenarios, seller, config, seed: int = 0, buyer_kwargs=None) -> pd.DataFrame:
    """Negotiation metrics: intact vs ``heads`` ablated vs the same number of random heads ablated."""
    from negolens.agents.llm_agent import LLMAgent
    from negolens.agents.metrics import summarize
    from negolens.agents.runner import run_negotiations

    rng = np.random.default_rng(seed)
    pool = [(l, h) for l in range(model.shape.n_layers) for h in range(model.shape.n_heads) if (l, h) not in set(heads)]
    random_heads = [pool[i] for i in rng.choice(len(pool), size=len(heads), replace=False)]
    tables = []
    for name, chosen in (("intact", []), ("top heads ablated", heads), ("random heads ablated", random_heads)):
        buyer = LLMAgent(model, "buyer", **(buyer_kwargs or {}))
        with ablated(model, chosen):
            recs = run_negotiations(scenarios, buyer, seller, config, progress=False)
        t = summarize(recs)
        t.insert(0, "condition", name)
        t["heads"] = ";".join(f"L{l}H{h}" for l, h in chosen)
        tables.append(t)
    return pd.concat(tables, ignore_index=True)
