"""Training figures: RLVR (GRPO) per-step curves and SFT held-out loss curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from negolens.figures.checkpoints import PHASE_COLOURS, shade_phases
from negolens.figures.style import save, setup

RLVR_PANELS = (("reward", "mean reward (paper's, unshaped)"), ("deal_rate", "deal rate"),
               ("first_offer_budget_ratio", "first offer / budget"), ("overshoot_rate", "overshoot rate"),
               ("length", "dialogue length (turns)"), ("bargained_ratio", "deal price / list"),
               ("frac_reward_zero_std", "groups with equal rewards"), ("shaped_reward", "training reward (shaped)"))


def rlvr_curves(steps: list[dict], path, smooth: int = 3, max_turns: int | None = None):
    """The RLVR paper's phase quantities per GRPO step (raw points and a running mean), each
    step's phase (:func:`~negolens.training.phases.label_phases`) shaded behind every panel."""
    from matplotlib.patches import Patch

    from negolens.training.phases import label_phases

    setup()
    df = pd.DataFrame(steps)
    phases = label_phases(steps, max_turns=max_turns) if len(df) else None
    fig, axes = plt.subplots(2, 4, figsize=(14, 5.6))
    for ax, (key, label) in zip(axes.ravel(), RLVR_PANELS):
        if key not in df or df[key].isna().all():
            ax.set_visible(False)
            continue
        shade_phases(ax, phases, at_weights=False)
        ax.plot(df.step, df[key], "o", ms=3, alpha=0.5)
        if len(df) >= smooth:
            ax.plot(df.step, df[key].rolling(smooth, min_periods=1).mean(), lw=1.8)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("GRPO step")
        if key == "first_offer_budget_ratio":
            ax.axhline(1.0, color="tab:red", ls=":", lw=1)
        if key in ("first_offer_budget_ratio", "bargained_ratio") and ratio_scale(df[key]) == "symlog":
            ax.set_yscale("symlog", linthresh=1.0)  # linear up to 1, logarithmic above: an absurd price stays on the page
            ax.set_ylim(bottom=0)
    n = int(df["dialogues"].iloc[0]) if "dialogues" in df and len(df) else 0
    fig.suptitle(f"RLVR buyer: per-step rollout statistics ({n} negotiations per step), phases shaded", fontsize=11)
    if phases is not None:
        seen = list(dict.fromkeys(phases.phase))
        fig.legend([Patch(color=PHASE_COLOURS[p], alpha=0.5) for p in seen], seen, loc="lower center",
                   ncol=len(seen), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save(fig, path)


def ratio_scale(values: pd.Series, limit: float = 10.0) -> str:
    """The y scale of a price-ratio panel: ``"symlog"`` when some step's mean ratio exceeds
    ``limit`` (one buyer that names $1,000,000 on a $300 budget), else ``"linear"``.

    Examples
    --------
    >>> ratio_scale(pd.Series([0.4, 0.9, float("nan")])), ratio_scale(pd.Series([0.4, 1.3e6]))
    ('linear', 'symlog')
    """
    return "symlog" if float(values.max()) > limit else "linear"


def sft_curves(manifests: dict[str, dict], path):
    """Held-out loss over SFT steps, one line per role specialist."""
    setup()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, man in manifests.items():
        curve = man.get("eval_curve", [])
        ax.plot([p["step"] for p in curve], [p["eval_loss"] for p in curve], marker="o", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("held-out loss (target tokens)")
    ax.legend(fontsize=8)
    ax.set_title("SFT role specialists", fontsize=10)
    return save(fig, path)


def steering_plot(curve: pd.DataFrame, path):
    """Behaviour vs steering strength α along a probe direction (the probe's causal check)."""
    setup()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    cols = [c for c in ("mean", "value", "effect") if c in curve]
    y = curve[cols[0]] if cols else curve.iloc[:, -1]
    ax.plot(curve["alpha"], y, marker="o")
    if {"ci_low", "ci_high"} <= set(curve):
        ax.fill_between(curve["alpha"], curve.ci_low, curve.ci_high, alpha=0.25)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlabel("α (residual-norm units)")
    ax.set_ylabel("logit(accept) − logit(counter)")
    probe = curve["probe"].iloc[0] if "probe" in curve else ""
    ax.set_title(f"Steering along {probe}", fontsize=10)
    return save(fig, path)

