"""Probe accuracy (or R²) by layer, with its 95% CI band, the majority/mean baseline and the
control task (Hewitt & Liang)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from negolens.figures.style import save, setup

__all__ = ["probe_curves"]


def probe_curves(curves: pd.DataFrame | dict[str, pd.DataFrame], path, title: str = "Linear probes by layer") -> list[Path]:
    """One panel per label: probe score by layer, CI band, baseline and control task.

    Parameters
    ----------
    curves : DataFrame or dict of str to DataFrame
        ``ProbeResult.curves`` (or a saved ``probe_curves.csv``): one table with a ``label``
        column; or label → :func:`~negolens.probes.sweep.layer_sweep` table.
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
    >>> curve = pd.DataFrame({"label": "act", "layer": [0, 1], "score": [0.5, 0.8], "ci_low": [0.4, 0.7],
    ...                       "ci_high": [0.6, 0.9], "baseline": 0.5, "control": 0.5, "n_dialogues": 20,
    ...                       "task": "classification"})
    >>> [p.suffix for p in probe_curves(curve, f"{tempfile.mkdtemp()}/curves")]
    ['.png', '.pdf']
    """
    if isinstance(curves, pd.DataFrame):
        curves = {label: df for label, df in curves.groupby("label", sort=False)}
    if not curves:
        raise ValueError("no probe curves to draw (every label was skipped?)")
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
