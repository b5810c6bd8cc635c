"""The measures one checkpoint gets in :func:`~negolens.analysis.checkpoints.checkpoint_battery`.

:func:`measure_checkpoint` runs the chosen measure groups on one loaded model and returns rows
of the across-training table (without the checkpoint columns): ``attention:<score>`` per head,
``probe`` per label and layer, ``accept_projection``, ``accept_logit``, and the per-point accept
ablation effects, summarised later by :func:`effect_rows` (once every tracked head is swept).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

if TYPE_CHECKING:
    from negolens.analysis.checkpoints import CheckpointConfig

__all__ = ["measure_checkpoint", "accept_effects", "effect_rows"]


def measure_checkpoint(model, transcripts, points, cfg: CheckpointConfig,
                       log: Callable[[str], None]) -> tuple[list[dict], np.ndarray | None]:
    """The rows of ``cfg.measures`` on ``model``, and the per-point accept effects (``None`` without ``accept``).

    Parameters
    ----------
    model : NegoModel
        The checkpoint, loaded.
    transcripts : list of Transcript
        The held-out dialogues (attention and probes).
    points : list of DecisionPoint
        The accept decision points from them (accept sweep, logit, projection).
    cfg : CheckpointConfig
        What to measure and how much.
    log : callable
        Receives a line for each measure skipped.

    Returns
    -------
    (list of dict, ndarray or None)
        Rows with ``measure, layer, head, probe, value, ci_low, ci_high, n``; effects
        ``[n_points, n_layers, n_heads]``.
    """
    from negolens.analysis.sweep import check_points

    rows, effects = [], None
    if "attention" in cfg.measures:
        rows += _attention_rows(model, transcripts, cfg)
    if "probes" in cfg.measures:
        rows += _probe_rows(model, transcripts, points, cfg, log)
    if "accept" in cfg.measures:
        check_points(points)
        rows += _logit_rows(model, points, cfg)
        effects = accept_effects(model, points, cfg)
    return rows, effects


def _row(measure, value, lo, hi, n, layer=None, head=None, probe=None) -> dict:
    return {"measure": measure, "layer": layer, "head": head, "probe": probe, "value": float(value),
            "ci_low": float(lo), "ci_high": float(hi), "n": int(n)}


def _attention_rows(model, transcripts, cfg: CheckpointConfig) -> list[dict]:
    from negolens.probes.attention import AttentionConfig, record_attention

    acfg = AttentionConfig(max_tokens=cfg.max_tokens, batch_size=cfg.batch_size, seed=cfg.seed, n_boot=cfg.n_boot,
                           n_perm=100)
    table = record_attention(model, transcripts, cfg.role, acfg, progress=False)
    return [_row(f"attention:{r.score}", r.effect, r.ci_low, r.ci_high, r.n_dialogues, int(r.layer), int(r.head))
            for r in table.itertuples(index=False)]


def _probe_rows(model, transcripts, points, cfg: CheckpointConfig, log) -> list[dict]:
    from negolens.interventions import capture
    from negolens.probes.fit import ProbeConfig, fit_probes
    from negolens.stats import bootstrap_ci

    pcfg = ProbeConfig(labels=cfg.labels, layers=cfg.layers, max_tokens=cfg.max_tokens, batch_size=cfg.batch_size,
                       n_splits=3, seed=cfg.seed)
    result = fit_probes(model, transcripts, view=cfg.role, config=pcfg, progress=False)
    rows = [_row("probe", r.score, r.ci_low, r.ci_high, r.n_dialogues, int(r.layer), probe=r.label)
            for r in result.curves.itertuples(index=False)]
    for label, why in result.skipped.items():
        log(f"probe {label} skipped: {why}")
    probe = result.probes.get("act")
    if probe is None or not points:
        return rows
    classes = [str(c) for c in probe.classes_]
    if cfg.accept_class not in classes:
        log(f"accept_projection skipped: the act probe has no class {cfg.accept_class!r} (classes: {', '.join(classes)})")
        return rows
    layer = int(result.metadata["act"]["layer"])
    sign = -1.0 if len(classes) == 2 and classes[0] == cfg.accept_class else 1.0  # binary: coef points to classes_[1]
    direction = sign * torch.tensor(probe.direction(cfg.accept_class), dtype=torch.float32)
    values = []
    for start in range(0, len(points), cfg.batch_size):
        with capture(model, "resid_post", [layer]) as acts:
            model.logits(model.batch([p.ids for p in points[start : start + cfg.batch_size]]))
        values += (acts[layer][:, -1].float().cpu() @ direction).tolist()  # [batch]: the decision position
    lo, hi = bootstrap_ci(values, n_boot=cfg.n_boot, seed=cfg.seed)
    rows.append(_row("accept_projection", np.mean(values), lo, hi, len(values), layer, probe=f"act:{cfg.accept_class}"))
    return rows


def accept_effects(model, points, cfg: CheckpointConfig, heads=None) -> np.ndarray:
    """Per-point ablation effects on the accept metric: ``[n_points, n_layers, n_heads]``.

    All heads, the ``cfg.screen_top`` screened ones, or ``heads``; NaN for heads not swept.
    """
    from negolens.analysis.ablation import reference_means
    from negolens.analysis.sweep import LogitDiff, effects_fast, screen_heads

    metric = LogitDiff.accept_vs_counter(model)
    means = reference_means(model, points, cfg.batch_size) if cfg.kind != "zero" else None
    if heads is None and cfg.screen_top:
        heads = screen_heads(model, points, metric, cfg.screen_top, cfg.batch_size, "atp", cfg.kind, means)
    return effects_fast(model, points, metric, cfg.kind, heads, cfg.batch_size, means=means, progress=False)


def _logit_rows(model, points, cfg: CheckpointConfig) -> list[dict]:
    from negolens.analysis.experiment import logit_diff_values
    from negolens.stats import bootstrap_ci

    values = logit_diff_values(model, points, batch_size=cfg.batch_size)
    lo, hi = bootstrap_ci(values, n_boot=cfg.n_boot, seed=cfg.seed)
    return [_row("accept_logit", np.mean(values), lo, hi, len(values))]


def effect_rows(effects: np.ndarray, cfg: CheckpointConfig) -> list[dict]:
    """``accept_effect`` rows (one per swept head, bootstrap CI over points) from :func:`accept_effects`."""
    from negolens.analysis.sweep import summarize_effects

    table = summarize_effects(effects, n_boot=cfg.n_boot, n_perm=100, seed=cfg.seed)
    return [_row("accept_effect", r.effect, r.ci_low, r.ci_high, r.n_points, int(r.layer), int(r.head))
            for r in table.itertuples(index=False)]
