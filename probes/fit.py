"""Fit linear probes for negotiation state on a model's residual stream: one call.

:func:`fit_probes` collects (or reuses cached) activations for one speaker's view, labels every
position (:data:`~negolens.probes.labels.PROBE_LABELS`), sweeps every chosen layer with
baselines, control tasks and CIs (:func:`~negolens.probes.sweep.layer_sweep`) and fits the
final probe of each label at its best layer. The :class:`ProbeResult` holds the curves, the
fitted probes with their metadata, and the labels skipped because their score is undefined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from negolens.agents.transcripts import Transcript
from negolens.config import option
from negolens.errors import NegolensError
from negolens.probes.activations import cached_collect
from negolens.probes.labels import PROBE_LABELS, label_spec, label_table
from negolens.probes.linear import LinearProbe
from negolens.probes.sweep import layer_sweep, undefined_reason
from negolens.probes.views import check_role
from negolens.sites import HOOK_NAMES

__all__ = ["ProbeConfig", "ProbeResult", "fit_probes", "parse_layers"]


@dataclass
class ProbeConfig:
    """Settings of :func:`fit_probes`.

    Examples
    --------
    >>> ProbeConfig(layers="0,2").layers
    '0,2'
    >>> ProbeConfig.quick().max_tokens < ProbeConfig().max_tokens
    True
    """

    labels: tuple[str, ...] = option(("act", "last_offer_ratio", "own_target_ratio"),
                                     f"labels to probe, from {', '.join(PROBE_LABELS)}")
    layers: str = option("all", "'all' or a comma list of layers to probe")
    max_tokens: int = option(512, "keep whole turns up to this many tokens")
    batch_size: int | str = option(4, "dialogues per forward pass when collecting activations, or auto "
                                        "(the most that fit; halved on out-of-memory)")
    n_splits: int = option(5, "cross-validation folds, grouped by dialogue")
    seed: int = option(0, "seed of the control task and the bootstrap")

    @classmethod
    def quick(cls, **overrides) -> "ProbeConfig":
        """A fast preset for smoke runs: shorter views, fewer folds."""
        return cls(**{"max_tokens": 256, "n_splits": 3, **overrides})

    def __post_init__(self) -> None:
        from negolens.autobatch import check_batch_size
        from negolens.errors import at_least, choice

        labels = (self.labels,) if isinstance(self.labels, str) else self.labels
        for label in labels:
            choice(label, PROBE_LABELS, "probe label")
        parse_layers(self.layers, None)  # the syntax now; the range once the model is known
        at_least(self.max_tokens, 1, "max_tokens")
        self.batch_size = check_batch_size(self.batch_size)
        at_least(self.n_splits, 2, "n_splits (cross-validation folds)")


def parse_layers(layers, n_layers: int | None) -> list[int]:
    """Layers to probe from ``"all"``, a comma list (``"0,3"``) or a sequence of ints.

    Raises :class:`NegolensError` for a layer that is not an integer in ``0 .. n_layers - 1``
    (with ``n_layers=None``: only checks the syntax and that no layer is negative; ``"all"`` is ``[]``).

    Examples
    --------
    >>> parse_layers("all", 3), parse_layers("2, 0", 3), parse_layers((1,), 3)
    ([0, 1, 2], [2, 0], [1])
    """
    if layers is None or (isinstance(layers, str) and layers.strip() == "all"):
        return list(range(n_layers or 0))
    items = [x.strip() for x in layers.split(",") if x.strip()] if isinstance(layers, str) else list(layers)
    out = []
    for x in items:
        try:
            layer = int(x)
        except (TypeError, ValueError):
            raise NegolensError(f"layer {x!r} is not an integer: use 'all' or a comma list like '0,3'") from None
        if layer < 0 or (n_layers is not None and layer >= n_layers):
            raise NegolensError(f"layer {layer} out of range: " + (f"the model has layers 0..{n_layers - 1}"
                                                                    if n_layers else "layers start at 0"))
        out.append(layer)
    if not out:
        raise NegolensError("no layers chosen: use 'all' or a comma list like '0,3'")
    return out


@dataclass
class ProbeResult:
    """What :func:`fit_probes` found.

    Attributes
    ----------
    curves : DataFrame
        One row per (label, layer): ``label`` then the columns of
        :func:`~negolens.probes.sweep.layer_sweep` (score, CI, baseline, control, selectivity, …).
    probes : dict of str to LinearProbe
        Per label, the probe fitted on all positions at its best layer.
    metadata : dict of str to dict
        Per label, what its probe reads: model, layer, position_rule, label, hook, dtype,
        tl_mode, role.
    skipped : dict of str to str
        Labels not probed, with the reason (e.g. ``"undefined: constant label"``).
    labels : tuple of str
        The labels asked for, in order.
    info : dict
        How the activations were recorded (:attr:`ActivationSet.info`).
    from_cache : bool
        Whether the activations were reused from the cache folder.
    """

    curves: pd.DataFrame
    probes: dict[str, LinearProbe] = field(default_factory=dict)
    metadata: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)
    from_cache: bool = False

    def best(self, label: str) -> pd.Series:
        """The curve row of ``label``'s best layer (highest score)."""
        curve = self.curves[self.curves.label == label]
        if curve.empty:
            raise NegolensError(f"no curve for {label!r}: " + self.skipped.get(label, "it was not asked for"))
        return curve.loc[curve.score.idxmax()]

    def summary(self) -> list[str]:
        """One line per label: its best layer's score, CI, baseline, control and selectivity, or why skipped."""
        lines = []
        for label in self.labels:
            if label in self.skipped:
                lines.append(f"{label:>18} skipped: {self.skipped[label]}")
                continue
            row = self.best(label)
            lines.append(f"{label:>18} best layer {int(row.layer):>2}: {row.score:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]  "
                         f"baseline {row.baseline:.3f}  control {row.control:.3f}  selectivity {row.selectivity:.3f}")
        return lines

    def save(self, folder: str | Path) -> Path:
        """Write each fitted probe with its metadata to ``folder/<label>/`` (:meth:`LinearProbe.save`).

        Load one back with ``LinearProbe.load(folder / label)``; the curves are a DataFrame
        (``result.curves.to_csv(...)``).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for label, probe in self.probes.items():
            probe.save(folder / label, **self.metadata[label])
        return folder


def fit_probes(model, transcripts: Sequence[Transcript], labels: Sequence[str] | None = None, *, view: str = "buyer",
               config: ProbeConfig | None = None, cache: str | Path | None = None, model_name: str | None = None,
               progress: bool = True, log: Callable[[str], None] | None = None) -> ProbeResult:
    """Linear probes for negotiation state, per layer, with baselines, control tasks and CIs.

    Parameters
    ----------
    model : NegoModel or str or Path
        The model, or its zoo name / directory (then loaded only if the cache cannot be reused).
    transcripts : sequence of Transcript
        Dialogues, teacher-forced in ``view``'s view.
    labels : sequence of str, optional
        Labels from :data:`~negolens.probes.labels.PROBE_LABELS`; default ``config.labels``.
    view : {"buyer", "seller"}
        Whose view to render.
    config : ProbeConfig, optional
        Settings; default ``ProbeConfig()``.
    cache : str or Path, optional
        A folder for the activations: reused when model, transcripts, view, their number and
        ``max_tokens`` match what is saved there, else collected and saved there.
    model_name : str, optional
        The model's name in the cache key and the probes' metadata (default ``model.name``).
    progress : bool
        Show progress bars.
    log : callable, optional
        Called with a line of text when the cached activations are reused.

    Returns
    -------
    ProbeResult

    Raises
    ------
    NegolensError
        An unknown label, a layer out of range, an unknown view, or no transcripts / positions.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> items = example_transcripts(6)
    >>> result = fit_probes(model, items, ["speaker", "act"], config=ProbeConfig(n_splits=3), progress=False)
    >>> sorted(result.probes), result.skipped
    (['act', 'speaker'], {})
    >>> print(result.summary()[0])  # doctest: +ELLIPSIS
               speaker best layer ...
    """
    config = config or ProbeConfig()
    if isinstance(labels, str):
        labels = [x.strip() for x in labels.split(",") if x.strip()]
    wanted = tuple(labels if labels is not None else config.labels)
    for label in wanted:
        label_spec(label)
    if not wanted:
        raise NegolensError(f"no labels to probe: choose from {', '.join(PROBE_LABELS)}")
    check_role(view)
    transcripts = list(transcripts)
    if not transcripts:
        raise NegolensError("no transcripts to probe: pass at least one")
    if not isinstance(model, (str, Path)):
        parse_layers(config.layers, model.shape.n_layers)  # fail before any forward pass
    acts, from_cache = cached_collect(model, transcripts, view, cache, model_name=model_name, batch_size=config.batch_size,
                                      max_tokens=config.max_tokens, progress=progress)
    if from_cache and log is not None:
        log(f"reusing cached activations in {cache}")
    if len(acts.meta) == 0:
        raise NegolensError("the transcripts have no turns, so there are no positions to probe")
    layers = parse_layers(config.layers, acts.acts.shape[1])
    table = label_table(acts.meta, transcripts, view)
    curves, probes, metadata, skipped = [], {}, {}, {}
    for label in wanted:
        rule, task = PROBE_LABELS[label]
        sel = ((table.rule == rule) & table[label].notna()).to_numpy()
        y, groups = table.loc[sel, label].to_numpy(), table.loc[sel, "dialogue"].to_numpy()
        reason = undefined_reason(y, groups)
        if reason:
            skipped[label] = reason
            continue
        curve = layer_sweep(acts.acts[sel], y, groups, table.loc[sel, "token_id"].to_numpy(), task, layers=layers,
                            n_splits=config.n_splits, seed=config.seed, progress=progress)
        curve.insert(0, "label", label)
        curves.append(curve)
        best = int(curve.loc[curve.score.idxmax(), "layer"])
        y_fit = y if task == "classification" else y.astype(float)
        probes[label] = LinearProbe(task).fit(acts.acts[sel, best].astype(np.float32), y_fit)
        metadata[label] = {"model": acts.info["model"], "layer": best, "position_rule": rule, "label": label,
                           "hook": HOOK_NAMES["resid_post"].format(layer=best), "dtype": acts.info["dtype"],
                           "tl_mode": acts.info["tl_mode"], "role": view}
    columns = ["label", "layer", "score", "ci_low", "ci_high", "baseline", "control", "control_baseline", "selectivity",
               "n", "n_dialogues", "task"]
    frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=columns)
    return ProbeResult(frame, probes, metadata, skipped, wanted, dict(acts.info), from_cache)
