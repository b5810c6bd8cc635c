"""Mechanisms across training: the top heads' effects and the probes' scores over GRPO steps,
with the run's behaviour phases shaded behind every panel."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from negolens.figures.style import save, setup

__all__ = ["checkpoint_curves", "shade_phases", "PHASE_COLOURS"]

PHASE_COLOURS = {"naive": "#9ecae1", "anchoring": "#fdae6b", "deadlock": "#bdbdbd", "persuasion": "#a1d99b",
                 "walkaway": "#c994c7", "transition": "#f7f7f7"}
"""Shading colour of each phase (:data:`negolens.training.phases.PHASES`)."""


def shade_phases(ax, phases: pd.DataFrame | None, at_weights: bool = True) -> None:
    """Shade each logged step's phase behind ``ax``.

    ``at_weights``: the x axis counts optimizer updates (checkpoints), so rollout step k, played
    by the weights after k − 1 updates, is shaded at x = k − 1; otherwise the x axis is the
    rollout step itself and step k is shaded at x = k.
    """
    if phases is None or phases.empty:
        return
    shift = 1 if at_weights else 0
    for step, phase in zip(phases.step.astype(int), phases.phase):
        ax.axvspan(step - shift - 0.5, step - shift + 0.5, color=PHASE_COLOURS.get(phase, "white"), alpha=0.5, lw=0,
                   zorder=0)


def _band(ax, df: pd.DataFrame, label: str) -> None:
    df = df.sort_values("step")
    ax.plot(df.step, df.value, marker="o", ms=3, label=label)
    ax.fill_between(df.step, df.ci_low, df.ci_high, alpha=0.2)


def _top(df: pd.DataFrame, keys: list[str], k: int) -> list[tuple]:
    strength = df.assign(a=df.value.abs()).groupby(keys).a.max().sort_values(ascending=False)
    return list(strength.index[:k])


def checkpoint_curves(table: pd.DataFrame, phases: pd.DataFrame | None, path, top: int = 4,
                      title: str = "Mechanisms across training") -> list[Path]:
    """Curves over training steps of the across-training table, phases shaded.

    Panels (those the table has data for): the ``top`` heads by largest |accept effect|; the
    best-layer score of each probe label; the accept logit and the projection on the probe's
    accept direction; the ``top`` (score, head) attention effects. Every curve has its 95% CI band.

    Parameters
    ----------
    table : DataFrame
        :func:`~negolens.analysis.checkpoints.checkpoint_battery`'s table.
    phases : DataFrame or None
        :func:`~negolens.training.phases.label_phases` (``step``, ``phase``); ``None``: no shading.
    path : str or Path
        Output path without suffix (PNG and PDF).
    top : int
        Heads per head panel.
    title : str
        Figure title.

    Returns
    -------
    list of Path
        The PNG and the PDF.

    Examples
    --------
    >>> import tempfile
    >>> table = pd.DataFrame({"checkpoint": ["a", "b"], "step": [0, 2], "measure": "accept_effect", "layer": 1,
    ...                       "head": 2, "probe": None, "value": [0.0, 1.0], "ci_low": [-0.1, 0.8],
    ...                       "ci_high": [0.1, 1.2]})
    >>> phases = pd.DataFrame({"step": [1, 2, 3], "phase": ["naive", "naive", "deadlock"]})
    >>> [p.suffix for p in checkpoint_curves(table, phases, f"{tempfile.mkdtemp()}/curves")]
    ['.png', '.pdf']
    """
    panels = []
    eff = table[table.measure == "accept_effect"]
    if len(eff):
        picks = _top(eff, ["layer", "head"], top)
        panels.append(("Δ logit(accept − counter), head ablated",
                       [(f"L{int(l)}H{int(h)}", eff[(eff.layer == l) & (eff["head"] == h)]) for l, h in picks]))
    probe = table[table.measure == "probe"]
    if len(probe):
        best = probe.loc[probe.groupby(["step", "probe"]).value.idxmax()]
        panels.append(("probe score at its best layer", [(label, df) for label, df in best.groupby("probe")]))
    for measure, name in (("accept_logit", "logit(accept) − logit(counter)"),
                          ("accept_projection", "projection on the probe's accept direction")):
        sub = table[table.measure == measure]
        if len(sub):
            panels.append((name, [(measure, sub)]))
    att = table[table.measure.str.startswith("attention:")]
    if len(att):
        picks = _top(att, ["measure", "layer", "head"], top)
        panels.append(("attention: tagged − control", [(f"{m.split(':', 1)[1]} L{int(l)}H{int(h)}",
                                                        att[(att.measure == m) & (att.layer == l) & (att["head"] == h)])
                                                       for m, l, h in picks]))
    if not panels:
        raise ValueError("the table has no measure to draw (accept_effect, probe, accept_logit, attention:…)")
    setup()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels):
        shade_phases(ax, phases)
        for label, df in curves:
            _band(ax, df, label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training step (updates)")
        ax.legend(fontsize=7)
    if phases is not None and not phases.empty:
        handles = [plt.Rectangle((0, 0), 1, 1, color=PHASE_COLOURS.get(p, "white"), alpha=0.5)
                   for p in dict.fromkeys(phases.phase)]
        fig.legend(handles, [f"phase: {p}" for p in dict.fromkeys(phases.phase)], loc="upper center",
                   ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout()
    fig.suptitle(title, fontsize=11, y=1.04)
    return save(fig, path)
