"""The ablation experiment end to end: every head swept at decision points, linked to behaviour.

:func:`run_ablation` is what ``negolens ablate`` runs (the CLI only parses arguments, calls it
and writes :meth:`AblationResult.tables` as CSV plus head heatmaps):

1. every head ablated (``kind``) at ``accept`` decision points: Δ logit(accept − counter);
2. with ``metric="offer"``: every head (or only the top ones) zero-ablated at ``offer``
   decision points: Δ log(greedy next offer / list price);
3. the top heads by |effect|, joined to their attention profile when given one;
4. with ``rerun_n``: built-in negotiations re-run intact / top heads ablated / as many random
   heads ablated;
5. with a probe: the accept metric while steering along the probe's direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from negolens.analysis.ablation import ABLATION_KINDS
from negolens.analysis.behaviour import offer_sweep, rerun, steering_curve
from negolens.analysis.decisions import PREFIX, decision_points
from negolens.analysis.sweep import LogitDiff, check_points, sweep_heads
from negolens.config import option
from negolens.errors import NegolensError

__all__ = ["AblationConfig", "AblationResult", "run_ablation", "top_heads", "logit_diff_values"]

ROLES = ("buyer", "seller")
OFFER_HEADS = ("all", "top")


@dataclass
class AblationConfig:
    """Settings of :func:`run_ablation` (and of ``negolens ablate``).

    Examples
    --------
    >>> AblationConfig.quick().n, AblationConfig.quick(top=2).top
    (2, 2)
    """

    role: str = option("buyer", "whose decisions: buyer | seller")
    metric: str = option("accept", "accept (logit accept − counter) | offer (also: log greedy next offer / list, "
                                   "zero ablation)")
    kind: str = option("zero", "ablation: zero | mean | resample")
    n: int = option(32, "decision points")
    max_tokens: int = option(384, "longest decision-point prompt, in tokens")
    screen_top: int | None = option(None, "attribution-patching screen, then exact on the top K")
    screen: str = option("atp", "estimate the screen ranks by: atp (attribution patching) | atp* (with GradDrop)")
    top: int = option(5, "top heads reported and re-run")
    offer_heads: str = option("all", "offer metric: 'all' heads (full sweep + heatmap) or 'top' heads only")
    rerun_n: int = option(0, "re-run this many built-in negotiations intact / top / random heads ablated")
    rerun_max_turns: int = option(8, "turn limit of the re-run negotiations")
    alphas: tuple[float, ...] = option((-16.0, -8.0, -4.0, 0.0, 4.0, 8.0, 16.0),
                                       "steering strengths (residual-norm units)")
    steer_label: str | None = option(None, "class whose probe direction to steer along (multi-class probes)")
    batch_size: int | str = option(4, "decision points per forward, or auto (the most that fit; halved on "
                                       "out-of-memory)")
    seed: int = option(0, "seed of statistics, random heads and the re-run")

    @classmethod
    def quick(cls, **overrides) -> "AblationConfig":
        """Tiny-scale preset: 2 decision points, short prompts, 3 re-runs of 4 turns, offer sweep on top heads."""
        return cls(**{"n": 2, "max_tokens": 256, "rerun_n": 3, "rerun_max_turns": 4, "offer_heads": "top", **overrides})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "AblationConfig":
        """Raise :class:`NegolensError` naming the valid values for any bad setting; return self.

        Runs on construction too, so a bad setting fails before any model is loaded.
        """
        import math

        from negolens.agents.protocol import check_turn_limit
        from negolens.autobatch import check_batch_size
        from negolens.errors import at_least, choice

        from negolens.analysis.screening import SCREENS

        for name, valid in (("role", ROLES), ("metric", tuple(PREFIX)), ("kind", ABLATION_KINDS),
                            ("offer_heads", OFFER_HEADS), ("screen", SCREENS)):
            choice(getattr(self, name), valid, name)
        for name in ("n", "top", "max_tokens"):
            at_least(getattr(self, name), 1, name)
        if self.screen_top is not None:
            at_least(self.screen_top, 1, "screen_top (or None)")
        self.batch_size = check_batch_size(self.batch_size)
        at_least(self.rerun_n, 0, "rerun_n")
        check_turn_limit(self.rerun_max_turns)
        if not all(isinstance(a, (int, float)) and math.isfinite(a) for a in self.alphas):
            raise NegolensError(f"alphas must be finite numbers, not {self.alphas!r}")
        return self


@dataclass
class AblationResult:
    """Every table :func:`run_ablation` computed (``None`` where that step did not run).

    Attributes
    ----------
    config
        The settings used.
    accept
        The head sweep on the accept metric (:func:`~negolens.analysis.sweep.summarize_effects` columns).
    top_heads
        The ``top`` rows of ``accept`` by |effect|, joined to attention scores when given.
    heads
        Those heads as (layer, head) pairs, largest |effect| first.
    n_points
        Number of accept decision points.
    offer
        Zero-ablation effects on the log greedy next offer / list price (``metric="offer"``).
    rerun
        Negotiation metrics intact / top heads ablated / random heads ablated (``rerun_n > 0``).
    steering
        The accept metric per steering strength (with a probe).
    """

    config: AblationConfig
    accept: pd.DataFrame
    top_heads: pd.DataFrame
    heads: list[tuple[int, int]]
    n_points: int
    offer: pd.DataFrame | None = None
    rerun: pd.DataFrame | None = None
    steering: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The computed tables by file name (without ``.csv``), as ``negolens ablate`` writes them.

        ``ablation_accept_{kind}``, ``top_heads``, and where computed ``ablation_offer_zero``
        (all heads) or ``ablation_offer_top`` (top heads only), ``rerun``, ``steering``.
        """
        out = {f"ablation_accept_{self.config.kind}": self.accept}
        if self.offer is not None:
            out["ablation_offer_zero" if self.config.offer_heads == "all" else "ablation_offer_top"] = self.offer
        out["top_heads"] = self.top_heads
        if self.rerun is not None:
            out["rerun"] = self.rerun
        if self.steering is not None:
            out["steering"] = self.steering
        return out


def top_heads(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` rows of a sweep table with the largest |effect|, largest first."""
    order = table.effect.abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].head(k).reset_index(drop=True)


def _with_attention(top: pd.DataFrame, attention: pd.DataFrame) -> pd.DataFrame:
    """Join each head's attention effect per score (one column per score) onto ``top``."""
    missing = {"score", "layer", "head", "effect"} - set(attention.columns)
    if missing:
        raise NegolensError(f"attention table lacks columns {sorted(missing)}: pass the table of "
                            "negolens.probes.record_attention (attention_heads.csv)")
    wide = attention.pivot_table(index=["layer", "head"], columns="score", values="effect").reset_index()
    wide.columns.name = None
    return top.merge(wide, on=["layer", "head"], how="left")


@torch.inference_mode()
def logit_diff_values(model, points, metric: LogitDiff | None = None, batch_size: int = 8) -> list[float]:
    """The logit-difference metric (default accept − counter) at each decision point."""
    metric = metric or LogitDiff.accept_vs_counter(model)
    out = []
    for start in range(0, len(points), batch_size):
        batch = model.batch([p.ids for p in points[start : start + batch_size]])
        out += metric(model.logits(batch)[:, -1, metric.tokens()].float()).tolist()
    return out


def _steering(model, points, probe_folder, cfg: AblationConfig) -> pd.DataFrame:
    from negolens.probes.linear import LinearProbe

    folder = Path(probe_folder)
    if not (folder / "probe.json").is_file():
        raise NegolensError(f"steer_probe {folder}: not a saved probe folder (run `negolens probe` and pass "
                            "OUT/probes/LABEL)")
    probe, meta = LinearProbe.load(folder)
    curve = steering_curve(model, points, logit_diff_values, int(meta["layer"]), probe.direction(cfg.steer_label),
                           [float(a) for a in cfg.alphas])
    curve.insert(0, "probe", f"{meta['label']}:{cfg.steer_label or ''}@L{meta['layer']}")
    return curve


def run_ablation(model, transcripts, config: AblationConfig | None = None, *, attention: pd.DataFrame | None = None,
                 steer_probe: str | Path | None = None, progress: bool = True) -> AblationResult:
    """Sweep every head at decision points and link the top heads to behaviour (module docstring).

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    transcripts
        Transcripts (:func:`negolens.agents.load_transcripts`) to take decision points from.
    config
        :class:`AblationConfig` (default settings when ``None``).
    attention
        The table of :func:`negolens.probes.record_attention`: the top heads get one column per
        attention score (that head's effect).
    steer_probe
        A saved probe folder (``negolens probe`` → ``OUT/probes/LABEL``): adds the steering curve.
    progress
        Show progress bars.

    Returns
    -------
    AblationResult
        Every table; :meth:`AblationResult.tables` names them as ``negolens ablate`` writes them.

    Raises
    ------
    NegolensError
        For an invalid setting, or when the transcripts yield no decision points.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> result = run_ablation(model, example_transcripts(4), AblationConfig.quick(max_tokens=512, top=3, rerun_n=1,
    ...                       rerun_max_turns=2), progress=False)
    >>> sorted(result.tables())
    ['ablation_accept_zero', 'rerun', 'top_heads']
    """
    cfg = (config or AblationConfig()).validate()
    items = list(transcripts)
    points = decision_points(model, items, cfg.role, "accept", max_tokens=cfg.max_tokens, limit=cfg.n)
    check_points(points)
    accept = sweep_heads(model, points, "accept", kind=cfg.kind, screen_top=cfg.screen_top, screen=cfg.screen,
                         batch_size=cfg.batch_size, seed=cfg.seed, progress=progress)
    top = top_heads(accept, cfg.top)
    heads = [(int(r.layer), int(r["head"])) for _, r in top.iterrows()]
    result = AblationResult(cfg, accept, top if attention is None else _with_attention(top, attention), heads,
                            len(points))
    if cfg.metric == "offer":
        offer_points = decision_points(model, items, cfg.role, "offer", max_tokens=cfg.max_tokens, limit=cfg.n)
        result.offer = offer_sweep(model, offer_points, None if cfg.offer_heads == "all" else heads,
                                   batch_size=cfg.batch_size, seed=cfg.seed, progress=progress)
    if cfg.rerun_n:
        from negolens.agents.builtin import builtin_scenarios
        from negolens.agents.rule_agent import RuleAgent
        from negolens.agents.runner import RunConfig

        result.rerun = rerun(model, heads, builtin_scenarios()[: cfg.rerun_n], RuleAgent("seller"),
                             RunConfig(max_turns=cfg.rerun_max_turns, seed=cfg.seed), seed=cfg.seed)
    if steer_probe is not None:
        result.steering = _steering(model, points, steer_probe, cfg)
    return result
