"""``negolens bench ablation``: naive vs exact-fast vs screened head sweeps, one run, same data.

Data: 4 decision points from the Craigslist dev split (buyer about to act after a seller's
price), metric logit(accept) − logit(counter), zero ablation of every head. Reported: each
path's time, the max |difference| between naive and fast effects (fp32), and how many of the
naive top-10 heads (by |effect|) the screened path's top-10 recovers (screening: attribution
patching ranks all heads, the top 30 are ablated exactly).
"""

from __future__ import annotations

import time

import numpy as np

from negolens.analysis.decisions import decision_points
from negolens.analysis.sweep import LogitDiff, effects_fast, effects_naive, screen_heads
from negolens.zoo import DEFAULT_MODEL

__all__ = ["bench_ablation"]


def _top(effects: np.ndarray, k: int = 10) -> set[tuple[int, int]]:
    mean = np.abs(np.nan_to_num(effects.mean(axis=0), nan=-1.0))
    H = mean.shape[1]
    return {(int(i // H), int(i % H)) for i in np.argsort(-mean, axis=None)[:k]}


def bench_ablation(model: str = DEFAULT_MODEL, seed: int = 0, n: int = 4, max_tokens: int = 384,
                   top_k: int = 10) -> dict:
    """Time the naive, fast and screened head sweeps on the same points; return a JSON-ready dict."""
    from negolens.agents.transcripts import load_transcripts
    from negolens.hooked import load

    nm = load(model)
    points = decision_points(nm, load_transcripts("craigslist-dev"), "buyer", "accept", max_tokens=max_tokens, limit=n)
    metric = LogitDiff.accept_vs_counter(nm)

    t0 = time.perf_counter()
    fast = effects_fast(nm, points, metric, batch_size=n, progress=False)
    t_fast = time.perf_counter() - t0

    t0 = time.perf_counter()
    picked = screen_heads(nm, points, metric, 3 * top_k, batch_size=n)
    screened = effects_fast(nm, points, metric, heads=picked, batch_size=n, progress=False)
    t_screen = time.perf_counter() - t0

    nm.bridge  # boot outside the timing
    t0 = time.perf_counter()
    naive = effects_naive(nm, points, metric, batch_size=n, progress=False)
    t_naive = time.perf_counter() - t0

    overlap = len(_top(naive, top_k) & _top(screened, top_k))
    return {
        "bench": "ablation", "model": model, "points": len(points),
        "tokens": int(max(len(p.ids) for p in points)), "heads": int(nm.shape.n_layers * nm.shape.n_heads),
        "baseline": "naive: one TransformerLens run_with_hooks forward per head",
        "naive_s": round(t_naive, 1), "fast_exact_s": round(t_fast, 1), "screened_s": round(t_screen, 1),
        "max_abs_diff_fast_vs_naive": float(np.nanmax(np.abs(fast - naive))),
        "top10_overlap_screened_vs_naive": f"{overlap}/{top_k}",
        "speedup_fast": round(t_naive / t_fast, 2),
        "speedup_screened": round(t_naive / t_screen, 2),
    }
