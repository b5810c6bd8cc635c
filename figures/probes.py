"""Probe accuracy (or R²) by layer, with its 95% CI band, the majority/mean baseline and the
control task (Hewitt & Liang)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from negolens.figures.style import save, setup


def probe_curves(curves: dict[str, pd.DataFrame], path, title: str = "Linear probes by layer"):
    """``curves``: label → :func:`~negolens.probes.sweep.layer_sweep` table."""
    setup()
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, (label, df) in zip(axes[0], curves.items()):
        metric = "accuracy" if df["task"].iloc[0] == "classification" else "R²"
        ax.plot(df.layer, df.score, marker="o", ms=3, label="probe")
        ax.fill_between(df.layer, df.ci_low, df.ci_high, alpha=0.25, label="95% CI")
        ax.plot(df.layer, df.baseline, ls="--", color="grey", label="majority / mean")
        ax.plot(df.layer, df.control, ls=":", color="tab:red", label="control task")
        ax.set_title(f"{label} (n = {df.n_dialogues.iloc[0]} dialogues)", fontsize=10)
        ax.set_xlabel("layer")
        ax.set_ylabel(metric)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)
