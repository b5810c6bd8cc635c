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

from negolens.batching import last_position
from negolens.agents.decoding import digit_tokens, token_pieces
from negolens.analysis.ablation import ablated
from negolens.autobatch import map_chunks
from negolens.errors import NegolensError
from negolens.interventions import Intervention, intervene

__all__ = ["MAX_DIGITS", "greedy_offer", "next_digits", "offer_effects", "offer_sweep", "rerun", "steer", "steering_curve"]

MAX_DIGITS = 7
"""Most digits :func:`greedy_offer` writes."""


@torch.inference_mode()
def greedy_offer(model, points, batch_size: int | str = 8) -> np.ndarray:
    """log(greedy digit-constrained price / list price) per ``offer`` decision point.

    One prefill per batch, then one cached step per digit (the prompt is not re-read). The
    number ends where the model prefers its end-of-turn token to every digit.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel` (interventions active around the call apply).
    points
        Decision points with the ``offer`` metric (prompt ends in ``ACTION: offer $``).
    batch_size
        Points per forward, or ``"auto"`` (halved and retried on out-of-memory).

    Returns
    -------
    numpy.ndarray
        One value per point; NaN where no digit was written or the price is 0.

    Examples
    --------
    The buyer's greedy offers at the offer prompts of four canned dialogues (NaN where no digit):

    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis import decision_points
    >>> model = tiny_model()
    >>> points = decision_points(model, example_transcripts(4), "buyer", "offer", limit=4)
    >>> greedy_offer(model, points).shape
    (4,)
    """
    tok = model.tokenizer
    pieces = token_pieces(tok)
    digits = digit_tokens(tok, pieces).to(model.device)
    out = np.full(len(points), np.nan)

    def decode(part: list) -> None:  # (index, point) rows; retried smaller on out-of-memory
        chunk = [p for _, p in part]
        b = model.batch([list(p.ids) for p in chunk])
        res = model.hf(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                       use_cache=True, logits_to_keep=last_position(model.device))
        past, logits = res.past_key_values, res.logits[:, -1].float()
        mask, pos = b.attention_mask, b.position_ids[:, -1:]
        text, done = [""] * len(chunk), [False] * len(chunk)
        for step in range(MAX_DIGITS):
            nxt = next_digits(logits, digits, pieces, step, text, done, tok.eos_token_id, model.pad_id)
            if all(done) or step == MAX_DIGITS - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos + 1
            res = model.hf(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,
                           past_key_values=past, use_cache=True)
            past, logits = res.past_key_values, res.logits[:, -1].float()
        for r, (i, p) in enumerate(part):
            price = float(text[r]) if text[r] else 0.0
            out[i] = np.log(price / p.scenario.list_price) if price > 0 else np.nan

    map_chunks(decode, list(enumerate(points)), batch_size, model.device, cpu_default=8)
    return out


def next_digits(logits: torch.Tensor, digits: torch.Tensor, pieces: list[str], step: int, text: list[str],
                done: list[bool], eos: int, pad_id: int) -> torch.Tensor:
    """One greedy digit-only step for every row: append to ``text``, mark rows that end in ``done``.

    A row ends when it is done or (after its first digit) prefers ``eos`` to every digit.
    ``logits`` is ``[rows, vocab]``; returns the next input ids (``pad_id`` for ended rows).
    Shared by :func:`greedy_offer` and the belief study's patched decoding.
    """
    best = logits[:, digits].max(-1)
    nxt = torch.full((len(text),), pad_id, dtype=torch.long, device=logits.device)
    for r in range(len(text)):
        if done[r] or (step > 0 and logits[r, eos] > best.values[r]):
            done[r] = True  # the model ends the number here
            continue
        tid = int(digits[best.indices[r]])
        text[r] += pieces[tid]
        nxt[r] = tid
    return nxt


def offer_effects(model, points, heads, batch_size: int | str = 8, progress: bool = False) -> np.ndarray:
    """Per point and head: change of :func:`greedy_offer` when the head is zero-ablated.

    Returns ``[n_points, len(heads)]``; feed it through
    :func:`~negolens.analysis.sweep.summarize_effects` (as ``run_ablation`` does) for statistics.
    """
    from tqdm.auto import tqdm

    from negolens.analysis.sweep import check_points, sdpa

    check_points(points)
    out = np.zeros((len(points), len(heads)))
    with sdpa(model):  # no patterns needed: SDPA attention is faster than eager
        clean = greedy_offer(model, points, batch_size)
        for j, head in enumerate(tqdm(heads, desc="offer sweep", disable=not progress)):
            with ablated(model, [head]):
                out[:, j] = greedy_offer(model, points, batch_size) - clean
    return out


def offer_sweep(model, points, heads=None, batch_size: int | str = 8, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Zero-ablate each head (default: every head) and summarise its effect on the next offer.

    The statistics of :func:`offer_effects` per head — the columns of
    :func:`~negolens.analysis.sweep.summarize_effects` (effect = mean Δ log(greedy next offer /
    list price)), one row per head in ``heads``.
    """
    from negolens.analysis.sweep import summarize_effects

    L, H = model.shape.n_layers, model.shape.n_heads
    heads = list(heads) if heads is not None else [(l, h) for l in range(L) for h in range(H)]
    eff = offer_effects(model, points, heads, batch_size, progress=progress)
    full = np.full((len(points), L, H), np.nan)
    for j, (l, h) in enumerate(heads):
        full[:, l, h] = eff[:, j]
    return summarize_effects(full, seed=seed)


@contextmanager
def steer(model, layer: int, direction, alpha: float):
    """Add ``alpha`` × unit ``direction`` to the residual stream after ``layer`` (resid_post),
    at every position, for every forward inside the block.

    Examples
    --------
    >>> import numpy as np
    >>> from negolens.testing import tiny_model
    >>> model = tiny_model()
    >>> with steer(model, 1, np.ones(64), alpha=4.0):
    ...     logits = model.logits(model.batch([[5, 6, 7]]))
    """
    vec = torch.as_tensor(np.asarray(direction), dtype=torch.float32)
    vec = (vec / vec.norm()).to(device=model.device, dtype=model.dtype)
    with intervene(model, Intervention("resid_post", layer, kind="add", value=vec, alpha=float(alpha))):
        yield


def steering_curve(model, points, metric_fn, layer: int, direction, alphas) -> pd.DataFrame:
    """Metric for each steering strength: mean over points with a bootstrap CI.

    ``metric_fn(model, points)`` returns one value per point (NaN skipped); it runs inside
    :func:`steer` for each ``alpha``. Returns columns ``alpha, mean, ci_low, ci_high, n``.
    """
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
    """Negotiation metrics: intact vs ``heads`` ablated vs the same number of random heads ablated.

    Parameters
    ----------
    model
        The buyer's :class:`negolens.hooked.NegoModel`.
    heads
        (layer, head) pairs to zero-ablate.
    scenarios
        Scenarios to negotiate (e.g. ``builtin_scenarios()[:8]``).
    seller
        The counterpart agent (e.g. ``RuleAgent("seller")``).
    config
        The runner's ``RunConfig``.
    seed
        Seed of the random-heads control.
    buyer_kwargs
        Extra arguments of the buyer's ``LLMAgent``.

    Returns
    -------
    pandas.DataFrame
        The :func:`negolens.agents.metrics.summarize` table per ``condition`` (``intact``,
        ``top heads ablated``, ``random heads ablated``), with the ablated ``heads``.
    """
    from negolens.agents.llm_agent import LLMAgent
    from negolens.agents.metrics import summarize
    from negolens.agents.runner import run_negotiations

    rng = np.random.default_rng(seed)
    pool = [(l, h) for l in range(model.shape.n_layers) for h in range(model.shape.n_heads) if (l, h) not in set(heads)]
    if len(pool) < len(heads):
        raise NegolensError(f"cannot draw {len(heads)} random control heads: {model.name} has only {len(pool)} "
                            "other heads (re-run fewer top heads)")
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
