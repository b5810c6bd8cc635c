"""The belief study in one call: belief probes with their leakage control, then the causal tests.

:func:`run_belief_study` plays rule-vs-rule dialogues whose seller cost varies
(:func:`~negolens.probes.beliefs.varied_cost_dialogues`), fits the belief probes on the buyer
model's residual stream and on the leakage control (:func:`~negolens.probes.beliefs.fit_beliefs`),
then patches and steers the buyer's next offer on paired dialogues
(:mod:`negolens.analysis.beliefs`) along the probe of ``CausalConfig.steer_label`` at its best
layer. :class:`BeliefStudy` holds every table and writes them as CSVs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from negolens.analysis.beliefs import CausalConfig, belief_effects, concession_pairs
from negolens.errors import NegolensError
from negolens.probes.beliefs import BELIEF_LABELS, BeliefConfig, BeliefProbes, fit_beliefs, varied_cost_dialogues
from negolens.probes.fit import ProbeConfig

__all__ = ["BeliefStudy", "run_belief_study"]

FILES = {"curves": "belief_curves.csv", "effect": "belief_effect.csv", "patching": "belief_patching.csv",
         "steering": "belief_steering.csv", "slopes": "belief_slopes.csv", "pairs": "belief_pairs.csv"}
"""The CSV file of each table of :meth:`BeliefStudy.save`."""


@dataclass
class BeliefStudy:
    """What :func:`run_belief_study` found.

    Attributes
    ----------
    probes : BeliefProbes
        Belief probe curves (dialogues vs leakage control), fitted probes and best layers.
    tables : dict of str to DataFrame
        ``effect``, ``patching``, ``steering``, ``slopes`` and ``pairs`` from
        :func:`~negolens.analysis.beliefs.belief_effects`.
    n_dialogues : int
        Dialogues probed.
    """

    probes: BeliefProbes
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    n_dialogues: int = 0

    def summary(self) -> list[str]:
        """Probe lines, then the concession effect, the best patching layers and the steering slopes."""
        lines = self.probes.summary()
        e = self.tables["effect"].iloc[0]
        lines.append(f"concession effect on the next offer, log(big) − log(small): {e.effect:+.3f} "
                     f"[{e.ci_low:+.3f}, {e.ci_high:+.3f}] over {int(e.n_pairs)} pairs (copying the seller's "
                     f"latest ask would give {e.copy_effect:+.3f}; {e.copy_rate:.0%} of offers are that ask)")
        for positions, df in self.tables["patching"].groupby("positions", sort=False):
            row = df.loc[df.share.abs().idxmax()] if df.share.notna().any() else df.iloc[0]
            lines.append(f"patching {positions:>13}: largest share restored {row.share:+.2f} "
                         f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}] at layer {int(row.layer)}")
        for row in self.tables["slopes"].itertuples():
            lines.append(f"steering {row.direction:>6} direction ({row.label}, layer {row.layer}): slope "
                         f"{row.slope:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}] log-offer per unit of belief")
        return lines

    def save(self, folder: str | Path) -> Path:
        """Write the probe curves and every table as CSVs (:data:`FILES`) into ``folder``; return it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.probes.curves.to_csv(folder / FILES["curves"], index=False)
        for key, table in self.tables.items():
            table.to_csv(folder / FILES[key], index=False)
        return folder


def run_belief_study(model, beliefs: BeliefConfig | None = None, probe: ProbeConfig | None = None,
                     causal: CausalConfig | None = None, *, cache: str | Path | None = None,
                     progress: bool = True) -> BeliefStudy:
    """Belief probes (with the leakage control) and the causal tests on the buyer's next offer.

    Parameters
    ----------
    model : NegoModel
        The buyer model: it reads the dialogues in the buyer's view and writes the next offers.
    beliefs : BeliefConfig, optional
        The belief dialogues (how many, their costs, the agents).
    probe : ProbeConfig, optional
        Layers, folds, ``max_tokens``, batch size (its ``labels`` are not used: the belief
        labels are :data:`~negolens.probes.beliefs.BELIEF_LABELS`).
    causal : CausalConfig, optional
        Pairs, patched layers, steering steps and the steered label.
    cache : str or Path, optional
        A folder for the probes' activations.
    progress : bool
        Show progress bars.

    Returns
    -------
    BeliefStudy

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> study = run_belief_study(tiny_model(), BeliefConfig(n_dialogues=6, turns=3), ProbeConfig(n_splits=3, max_tokens=1024),
    ...                          CausalConfig(n_pairs=2, patch_layers="1"), progress=False)
    >>> sorted(study.tables["slopes"].direction)
    ['belief', 'random']
    """
    beliefs, probe, causal = beliefs or BeliefConfig(), probe or ProbeConfig(), causal or CausalConfig()
    if causal.steer_label not in BELIEF_LABELS:
        raise NegolensError(f"steer_label {causal.steer_label!r} is not a belief label: use one of "
                            f"{', '.join(BELIEF_LABELS)}")
    dialogues = varied_cost_dialogues(beliefs, progress=progress)
    found = fit_beliefs(model, dialogues, config=probe, cache=cache, progress=progress)
    label = causal.steer_label
    pairs = concession_pairs(model, causal)
    tables = belief_effects(model, pairs, found.probes.get(label), found.layers.get(label), causal, progress=progress)
    return BeliefStudy(found, tables, len(dialogues))
