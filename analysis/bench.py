"""``negolens bench ablation``: naive vs exact-fast vs screened head sweeps, one run, same data.

Data: ``n`` decision points from the Craigslist dev split (buyer about to act after a seller's
price), metric logit(accept) − logit(counter), zero ablation of every head. Reported: each
path's time, the max |difference| between naive and fast effects (fp32), and for each screening
method (:data:`negolens.analysis.screening.SCREENS`: rank every head by an estimate, then ablate the
top ``screen_top`` exactly): its time and speed-up over the naive sweep, how many of the naive
top-10 heads (by |mean effect|) its top-10 recovers, and the Spearman rank correlation between
its scores and the naive |mean effect| over all heads.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from negolens.analysis.screening import SCREENS, screen_scores
from negolens.analysis.decisions import decision_points
from negolens.analysis.sweep import LogitDiff, effects_fast, effects_naive
from negolens.zoo import DEFAULT_MODEL

__all__ = ["bench_ablation"]


def _top(effects: np.ndarray, k: int = 10) -> set[tuple[int, int]]:
    mean = np.nan_to_num(np.abs(effects.mean(axis=0)), nan=-1.0)  # heads not swept rank last
    H = mean.shape[1]
    return {(int(i // H), int(i % H)) for i in np.argsort(-mean, axis=None)[:k]}


def _screened(nm, points, metric, method: str, screen_top: int, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Screen scores ``[L, H]``, the exact effects of the top ``screen_top`` (NaN elsewhere), seconds."""
    t0 = time.perf_counter()
    scores = screen_scores(nm, points, metric, method, batch_size=n)
    H = scores.shape[1]
    picked = [(int(i // H), int(i % H)) for i in np.argsort(-scores, axis=None)[:screen_top]]
    effects = effects_fast(nm, points, metric, heads=picked, batch_size=n, progress=False)
    return scores, effects, time.perf_counter() - t0


def bench_ablation(model: str = DEFAULT_MODEL, seed: int = 0, n: int = 4, max_tokens: int = 384,
                   top_k: int = 10, screen_top: int = 30, screens: tuple[str, ...] = SCREENS) -> dict:
    """Time the naive, fast and screened head sweeps on the same points; return a JSON-ready dict.

    Parameters
    ----------
    model
        Zoo name or model directory.
    seed
        Unused (the points are the first ``n`` of the dev split); kept for the common bench signature.
    n
        Decision points.
    max_tokens
        Longest decision-point prompt, in tokens.
    top_k
        Size of the top set whose overlap is reported.
    screen_top
        Heads ablated exactly after each screen.
    screens
        Screening methods to measure (:data:`negolens.analysis.screening.SCREENS`).

    Returns
    -------
    dict
        Times in seconds, speed-ups over the naive sweep, and per screen ``{method}_s``,
        ``speedup_{method}``, ``top10_overlap_{method}`` (``"k/top_k"``), ``spearman_{method}``.

    Examples
    --------
    >>> bench_ablation(n=2)["top10_overlap_atp"]  # doctest: +SKIP
    '8/10'
    """
    from negolens.agents.transcripts import load_transcripts
    from negolens.hooked import load

    nm = load(model)
    points = decision_points(nm, load_transcripts("craigslist-dev"), "buyer", "accept", max_tokens=max_tokens, limit=n)
    metric = LogitDiff.accept_vs_counter(nm)

    t0 = time.perf_counter()
    fast = effects_fast(nm, points, metric, batch_size=n, progress=False)
    t_fast = time.perf_counter() - t0
    runs = {method: _screened(nm, points, metric, method, screen_top, n) for method in screens}

    nm.bridge  # boot outside the timing
    t0 = time.perf_counter()
    naive = effects_naive(nm, points, metric, batch_size=n, progress=False)
    t_naive = time.perf_counter() - t0

    truth = np.abs(naive.mean(axis=0)).ravel()
    out = {
        "bench": "ablation", "model": model, "points": len(points),
        "tokens": int(max(len(p.ids) for p in points)), "heads": int(nm.shape.n_layers * nm.shape.n_heads),
        "baseline": "naive: one TransformerLens run_with_hooks forward per head", "screen_top": screen_top,
        "naive_s": round(t_naive, 1), "fast_exact_s": round(t_fast, 1),
        "max_abs_diff_fast_vs_naive": float(np.nanmax(np.abs(fast - naive))),
        "speedup_fast": round(t_naive / t_fast, 2),
    }
    for method, (scores, screened, seconds) in runs.items():
        out[f"{method}_s"] = round(seconds, 1)
        out[f"speedup_{method}"] = round(t_naive / seconds, 2)
        out[f"top{top_k}_overlap_{method}"] = f"{len(_top(naive, top_k) & _top(screened, top_k))}/{top_k}"
        out[f"spearman_{method}"] = round(float(pd.Series(scores.ravel()).corr(pd.Series(truth), method="spearman")), 3)
    return out
