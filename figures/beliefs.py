"""The belief study in one figure: probe R² by layer vs the leakage control, patching shares, steering."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from negolens.figures.style import save, setup

__all__ = ["belief_figure"]


def belief_figure(curves: pd.DataFrame, patching: pd.DataFrame, steering: pd.DataFrame, path,
                  title: str = "What the buyer believes about the seller's floor") -> list:
    """Three panels: belief-probe R² per layer, patching share per layer, offer under steering.

    Parameters
    ----------
    curves : DataFrame
        ``BeliefProbes.curves`` (or ``belief_curves.csv``): ``condition``, ``label``, ``layer``,
        ``score``, ``ci_low``, ``ci_high``, ``baseline``.
    patching : DataFrame
        ``belief_patching.csv``: ``positions``, ``layer``, ``share``, ``ci_low``, ``ci_high``.
    steering : DataFrame
        ``belief_steering.csv``: ``direction``, ``delta``, ``mean``, ``ci_low``, ``ci_high``
        (may be empty: the panel then says so).
    path : str or Path
        Output path without suffix (PNG and PDF).
    title : str
        Figure title.

    Returns
    -------
    list of Path
        The PNG and the PDF.

    Examples
    --------
    >>> import tempfile
    >>> curves = pd.DataFrame({"condition": ["dialogues"] * 2 + ["leakage control"] * 2, "label": "seller_cost_ratio",
    ...                        "layer": [0, 1, 0, 1], "score": [0.2, 0.6, 0.0, -0.1], "ci_low": [0.1, 0.5, -0.1, -0.2],
    ...                        "ci_high": [0.3, 0.7, 0.1, 0.0], "baseline": -0.02})
    >>> patching = pd.DataFrame({"positions": ["price tokens", "later tokens"], "layer": [0, 0], "share": [0.9, 0.1],
    ...                          "ci_low": [0.7, 0.0], "ci_high": [1.1, 0.2]})
    >>> steering = pd.DataFrame({"direction": ["belief", "belief"], "delta": [-0.1, 0.1], "mean": [-0.3, -0.2],
    ...                          "ci_low": [-0.4, -0.3], "ci_high": [-0.2, -0.1]})
    >>> [p.suffix for p in belief_figure(curves, patching, steering, f"{tempfile.mkdtemp()}/beliefs")]
    ['.png', '.pdf']
    """
    setup()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups, same = {}, {}
    for label, df in curves.groupby("label", sort=False):  # a label collinear with a drawn one is named, not redrawn
        twin = next((k for k, g in groups.items() if len(g) == len(df) and np.allclose(g.score, df.score, atol=1e-6)), None)
        if twin is None:
            groups[label] = df
        else:
            same[twin] = same.get(twin, "") + f" ≡ {label}"
    for color, (label, df) in zip(colors, groups.items()):
        label = label + same.get(label, "")
        for condition, ls in (("dialogues", "-"), ("leakage control", ":")):
            d = df[df.condition == condition]
            if d.empty:
                continue
            ax.plot(d.layer, d.score, ls=ls, color=color, marker="o" if ls == "-" else None, ms=3,
                    label=f"{label} ({condition})")
            ax.fill_between(d.layer, d.ci_low, d.ci_high, color=color, alpha=0.15 if ls == "-" else 0.07)
    if len(curves):
        ax.axhline(curves.baseline.mean(), color="grey", ls="--", lw=1, label="chance (mean predictor)")
    ax.set(xlabel="layer", ylabel="out-of-fold R²", title="belief probes: dialogues vs leakage control")
    ax.set_ylim(max(-0.5, ax.get_ylim()[0]), None)
    ax.legend(fontsize=7)
    ax = axes[1]
    for positions, df in patching.groupby("positions", sort=False):
        ax.errorbar(df.layer, df.share, yerr=[df.share - df.ci_low, df.ci_high - df.share], marker="o", ms=3,
                    capsize=2, label=positions)
    ax.axhline(0, color="grey", lw=1)
    ax.axhline(1, color="grey", lw=1, ls="--")
    ax.set(xlabel="layer patched (big → small concession)", ylabel="share of the offer difference restored",
           title="activation patching")
    ax.legend(fontsize=8)
    ax = axes[2]
    if steering is None or steering.empty:
        ax.text(0.5, 0.5, "no steering (no belief probe)", ha="center", va="center", transform=ax.transAxes)
    else:
        for direction, df in steering.groupby("direction", sort=False):
            ax.errorbar(df.delta, df["mean"], yerr=[df["mean"] - df.ci_low, df.ci_high - df["mean"]], marker="o", ms=3,
                        capsize=2, label=f"{direction} direction")
        ax.legend(fontsize=8)
    ax.set(xlabel="steering step (label units)", ylabel="next offer, log(price / list)", title="steering")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)
