"""Negotiation figures: buyer × seller matrices (AgreeMate style), condition bars with
bootstrap CIs, re-runs with heads ablated, and model comparisons.

Inputs are the tidy tables the study writes (one row per condition × metric with ``mean``,
``ci_low``, ``ci_high``, ``n``), so every figure can be redrawn without recomputing anything.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from negolens.figures.style import save, setup

MATRIX_METRICS = (("deal", "agreement rate", "viridis", (0, 1)), ("fairness", "fairness", "viridis", (0, 1)),
                  ("bias", "bias (+ favours seller)", "RdBu_r", (-1, 1)))


def matrix_heatmaps(table: pd.DataFrame, path, order=("untuned", "SFT", "rule")):
    """One heatmap per metric: rows buyers, columns sellers; each cell ``mean`` and ``n``."""
    setup()
    sub = table[table.group == "matrix"]
    fig, axes = plt.subplots(1, len(MATRIX_METRICS), figsize=(4.3 * len(MATRIX_METRICS), 3.6))
    for ax, (metric, label, cmap, (lo, hi)) in zip(axes, MATRIX_METRICS):
        m = sub[sub.metric == metric]
        grid = m.pivot(index="buyer_label", columns="seller_label", values="mean").reindex(index=order, columns=order)
        n = m.pivot(index="buyer_label", columns="seller_label", values="n").reindex(index=order, columns=order)
        annot = np.vectorize(lambda v, k: "–" if np.isnan(v) else f"{v:.2f}\nn={int(k)}")(grid.to_numpy(), n.fillna(0).to_numpy())
        sns.heatmap(grid, annot=annot, fmt="", cmap=cmap, vmin=lo, vmax=hi, ax=ax, cbar=True,
                    annot_kws={"fontsize": 8})
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("seller")
        ax.set_ylabel("buyer")
    fig.suptitle("Buyer × seller (held-out Craigslist scenarios; n = dialogues with the metric defined)", fontsize=10)
    return save(fig, path)


def condition_bars(table: pd.DataFrame, group: str, path, metrics=("deal", "fairness", "bias", "reward"),
                   title: str = ""):
    """Bars with 95% bootstrap CIs, one panel per metric, one bar per condition in ``group``."""
    setup()
    sub = table[(table.group == group) & table.metric.isin(metrics)]
    names = list(dict.fromkeys(sub.name))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        m = sub[sub.metric == metric].set_index("name").reindex(names)
        x = np.arange(len(names))
        err = np.vstack([m["mean"] - m.ci_low, m.ci_high - m["mean"]]).clip(min=0)
        ax.bar(x, m["mean"], yerr=err, capsize=3, color=sns.color_palette("deep", len(names)))
        ax.set_xticks(x, [n.split(":", 1)[-1] for n in names], rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{metric} (n ≤ {int(m.n.max()) if m.n.notna().any() else 0})", fontsize=10)
        ax.axhline(0, color="black", lw=0.6)
    fig.tight_layout()
    fig.suptitle(title or group, fontsize=11, y=1.04)
    return save(fig, path)


def rerun_bars(rerun: pd.DataFrame, path, metrics=("deal", "reward", "overshoot", "first_offer_ratio_buyer")):
    """Re-run negotiations: intact vs top heads ablated vs random heads ablated (the control)."""
    setup()
    conds = list(dict.fromkeys(rerun.condition))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    colors = {"intact": "tab:grey", "top heads ablated": "tab:red", "random heads ablated": "tab:blue"}
    for ax, metric in zip(axes[0], metrics):
        m = rerun[rerun.metric == metric].set_index("condition").reindex(conds)
        err = np.vstack([m["mean"] - m.ci_low, m.ci_high - m["mean"]]).clip(min=0)
        ax.bar(range(len(conds)), m["mean"], yerr=np.nan_to_num(err), capsize=3,
               color=[colors.get(c, "tab:green") for c in conds])
        ax.set_xticks(range(len(conds)), [c.replace(" ablated", "\nablated") for c in conds], fontsize=8)
        ax.set_title(f"{metric} (n = {int(m.n.max()) if m.n.notna().any() else 0})", fontsize=10)
        ax.axhline(0, color="black", lw=0.6)
    heads = rerun.loc[rerun.condition == "top heads ablated", "heads"]
    fig.tight_layout()
    fig.suptitle(f"Negotiations re-run with heads ablated (top: {heads.iloc[0] if len(heads) else '?'})", fontsize=10,
                 y=1.04)
    return save(fig, path)


def model_comparison(table: pd.DataFrame, path, metrics=("reward", "deal", "overshoot", "bargained_ratio")):
    """The buyers of `table` (untuned, SFT, BC, GRPO) on the same held-out products: bars with 95% CIs."""
    setup()
    models = list(dict.fromkeys(table.model))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.3), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        m = table[table.metric == metric].set_index("model").reindex(models)
        err = np.vstack([m["mean"] - m.ci_low, m.ci_high - m["mean"]]).clip(min=0)
        ax.bar(range(len(models)), m["mean"], yerr=np.nan_to_num(err), capsize=3,
               color=sns.color_palette("muted", len(models)))
        ax.set_xticks(range(len(models)), models, fontsize=8)
        ax.set_title(f"{metric} (n = {int(m.n.max()) if m.n.notna().any() else 0})", fontsize=10)
        ax.axhline(0, color="black", lw=0.6)
    fig.tight_layout()
    fig.suptitle("Buyers vs the regulated rule seller, held-out AmazonHistoryPrice products", fontsize=10, y=1.04)
    return save(fig, path)
