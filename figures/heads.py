"""Layer × head heatmaps (attention scores vs control; ablation effects), cells not
significant after Benjamini–Hochberg masked."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from negolens.figures.style import save, setup


def head_heatmap(table: pd.DataFrame, path, value: str = "effect", title: str = "", q_max: float | None = 0.05,
                 cmap: str = "RdBu_r"):
    """Heatmap of ``value`` over (layer, head); cells with q ≥ ``q_max`` are greyed out."""
    setup()
    grid = table.pivot(index="layer", columns="head", values=value)
    mask = None
    if q_max is not None and "q" in table:
        mask = table.pivot(index="layer", columns="head", values="q").to_numpy() >= q_max
    lim = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * grid.shape[1], 1.0 + 0.22 * grid.shape[0]))
    ax.set_facecolor("#dddddd")
    sns.heatmap(grid, mask=mask, cmap=cmap, center=0, vmin=-lim, vmax=lim, ax=ax,
                cbar_kws={"label": value.replace("_", " ")})
    n = int(table["n_dialogues"].iloc[0]) if "n_dialogues" in table else None
    masked = "" if mask is None else f"; grey: q ≥ {q_max}"
    ax.set_title(f"{title}\n(n = {n} dialogues{masked})" if n else title, fontsize=10)
    ax.invert_yaxis()
    return save(fig, path)


def score_heatmaps(table: pd.DataFrame, folder, q_max: float = 0.05) -> list:
    """One heatmap per attention score: tagged − control mass."""
    paths = []
    for score, sub in table.groupby("score"):
        paths += head_heatmap(sub, f"{folder}/attention_{score}", title=f"{score}: tagged − control attention", q_max=q_max)
    return paths
