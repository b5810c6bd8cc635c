"""The anchoring figure: offers against openings, and where the effect is carried.

:func:`anchoring_figure` draws the tables of :func:`negolens.analysis.anchoring_study.run_anchoring`
(or the saved ``anchoring_*.csv``): the greedy next offer against the opening price per dialogue
(log / list, one line per dialogue, the coefficient in the title); the share of the effect
restored by patching each layer (all heads, the residual after the price, the residual at the
decision), with 95% CIs; and, when heads were screened, the per-head share as a heatmap
(:func:`negolens.figures.heads.head_heatmap`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from negolens.figures.heads import head_heatmap
from negolens.figures.style import save, setup

__all__ = ["anchoring_figure"]

LABELS = {"attn": "all heads of the layer", "resid_after": "residual, after the price",
          "resid_last": "residual, at the decision"}


def anchoring_figure(offers: pd.DataFrame, effect: pd.DataFrame, layers: pd.DataFrame, path,
                     heads: pd.DataFrame | None = None) -> list[Path]:
    """Offers vs openings and per-layer shares (``path``), plus a head heatmap (``path``\\_heads).

    Parameters
    ----------
    offers : DataFrame
        ``anchoring_offers``: ``transcript, log_opening, offer`` per (dialogue, anchor).
    effect : DataFrame
        ``anchoring_effect``: one row with ``coefficient, ci_low, ci_high, n``.
    layers : DataFrame
        ``anchoring_layers``: ``kind, layer, share, ci_low, ci_high, n_pairs``.
    path : str or Path
        Output path without suffix (PNG and PDF).
    heads : DataFrame, optional
        ``anchoring_heads`` (``layer, head, share``): drawn to ``{path}_heads``.

    Returns
    -------
    list of Path
        Every file written.

    Examples
    --------
    >>> import tempfile
    >>> offers = pd.DataFrame({"transcript": ["a", "a", "b", "b"], "log_opening": [-0.3, 0.1, -0.3, 0.1],
    ...                        "offer": [-0.5, -0.2, -0.4, -0.4]})
    >>> effect = pd.DataFrame([{"coefficient": 0.37, "ci_low": 0.0, "ci_high": 0.75, "n": 2}])
    >>> layers = pd.DataFrame({"kind": ["attn", "attn"], "layer": [0, 1], "share": [0.1, 0.8],
    ...                        "ci_low": [0.0, 0.6], "ci_high": [0.2, 1.0], "n_pairs": [2, 2]})
    >>> [p.suffix for p in anchoring_figure(offers, effect, layers, f"{tempfile.mkdtemp()}/anchoring")]
    ['.png', '.pdf']
    """
    setup()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for _, g in offers.groupby("transcript", sort=False):
        left.plot(g.log_opening, g.offer, "o-", color="#4c72b0", alpha=0.5, lw=1, ms=3)
    lo, hi = offers.log_opening.min(), offers.log_opening.max()
    left.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=0.8, label="offer = opening (slope 1)")
    left.legend(fontsize=8)
    e = effect.iloc[0]
    left.set_xlabel("log(opening / list)")
    left.set_ylabel("log(greedy next offer / list)")
    left.set_title(f"anchoring coefficient {e.coefficient:.2f} [{e.ci_low:.2f}, {e.ci_high:.2f}] "
                   f"(n = {int(e.n)})", fontsize=10)
    for kind, g in layers.groupby("kind", sort=False):
        g = g.sort_values("layer")
        line = right.plot(g.layer, g.share, "o-", ms=3, label=LABELS.get(kind, kind))[0]
        right.fill_between(g.layer, g.ci_low, g.ci_high, color=line.get_color(), alpha=0.15)
    right.axhline(0, color="black", lw=0.6)
    right.axhline(1, color="grey", lw=0.6, ls="--")
    right.set_xlabel("layer")
    right.xaxis.get_major_locator().set_params(integer=True)
    right.set_ylabel("share of the effect restored")
    n = int(layers.n_pairs.iloc[0]) if len(layers) else 0
    right.set_title(f"patching high → low anchor, next-digit logit diff (n = {n} pairs)", fontsize=10)
    right.legend(fontsize=8)
    lim = np.nanmax(np.abs(layers[["ci_low", "ci_high"]].to_numpy())) if len(layers) else 1.0
    if np.isfinite(lim) and lim > 3:
        right.set_ylim(-3, 3)  # a near-zero gap makes shares explode; keep the plot readable
    out = save(fig, path)
    if heads is not None and len(heads):
        out += head_heatmap(heads, f"{path}_heads", value="share", q_max=None,
                            title="share of the anchoring effect restored per head")
    return out
