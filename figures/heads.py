"""Layer × head heatmaps (attention scores vs control; ablation effects), cells not
significant after Benjamini–Hochberg masked.

The one implementation of head heatmaps: :func:`head_heatmap` draws one table,
:func:`score_heatmaps` one heatmap per attention score of a
:func:`~negolens.probes.record_attention` table.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from negolens.figures.style import save, setup

__all__ = ["head_heatmap", "score_heatmaps"]


def head_heatmap(table: pd.DataFrame, path, value: str = "effect", title: str = "", q_max: float | None = 0.05,
                 cmap: str = "RdBu_r") -> list[Path]:
    """Heatmap of ``value`` over (layer, head); cells with q ≥ ``q_max`` are greyed out.

    Parameters
    ----------
    table : DataFrame
        One row per (layer, head), with columns ``layer``, ``head``, ``value`` and optionally
        ``q`` (masking) and ``n_dialogues`` (shown in the title).
    path : str or Path
        Output path without suffix: ``path.png`` and ``path.pdf`` are written.
    value : str
        Column to colour by (diverging, centred on 0).
    title : str
        Figure title.
    q_max : float or None
        Grey out cells with ``q >= q_max``; None masks nothing.
    cmap : str
        Matplotlib colour map.

    Returns
    -------
    list of Path
        The PNG and the PDF.

    Examples
    --------
    >>> import tempfile
    >>> table = pd.DataFrame({"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1], "effect": [0.3, 0.0, -0.1, 0.05],
    ...                       "q": [0.001, 0.5, 0.02, 0.3]})
    >>> [p.suffix for p in head_heatmap(table, f"{tempfile.mkdtemp()}/heads", title="demo")]
    ['.png', '.pdf']
    """
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


def score_heatmaps(table: pd.DataFrame, folder, q_max: float = 0.05, *, stem: str = "attention") -> list[Path]:
    """One heatmap per attention score (tagged − control mass), as ``folder/{stem}_{score}``.

    Parameters
    ----------
    table : DataFrame
        A :func:`~negolens.probes.record_attention` table (``score``, ``layer``, ``head``,
        ``effect``, ``q``, ``n_dialogues``).
    folder : str or Path
        Output folder.
    q_max : float
        Grey out heads with ``q >= q_max``.
    stem : str
        File name prefix.

    Returns
    -------
    list of Path
        PNG and PDF of every score.

    Examples
    --------
    >>> import tempfile
    >>> table = pd.DataFrame({"score": ["price_verb"] * 2, "layer": [0, 1], "head": [0, 0],
    ...                       "effect": [0.2, 0.0], "q": [0.01, 0.9], "n_dialogues": [8, 8]})
    >>> [p.name for p in score_heatmaps(table, tempfile.mkdtemp())]
    ['attention_price_verb.png', 'attention_price_verb.pdf']
    """
    paths = []
    for score, sub in table.groupby("score"):
        paths += head_heatmap(sub, Path(folder) / f"{stem}_{score}", title=f"{score}: tagged − control attention",
                              q_max=q_max)
    return paths
