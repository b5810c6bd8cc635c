"""Mechanisms across training: the same battery on every saved checkpoint of a run.

:func:`checkpoint_battery` loads each checkpoint of a GRPO run (``checkpoint-N/``, ``final/``
and, from ``run.json``, the starting model as step 0) or of an SFT run (the run folder and its
base), and measures on the SAME held-out transcripts and decision points:

* ``attention:<score>`` — each head's attention on prices / verbs minus matched controls
  (:func:`~negolens.probes.record_attention`);
* ``probe`` — each label's probe score per layer (:func:`~negolens.probes.fit_probes`);
  ``accept_projection`` — the decision points' residual at the ``act`` probe's best layer
  projected on its ``accept_class`` direction (a candidate leading indicator);
* ``accept_effect`` — each head's ablation effect on logit(accept) − logit(counter)
  (:func:`~negolens.analysis.sweep_heads`' fast path); ``accept_logit`` — that metric itself.

The measures live in :mod:`~negolens.analysis.battery`. Every value comes with a bootstrap 95%
CI over dialogues or decision points. Head measures keep the union of the top-``top`` heads by
|value| at any checkpoint, so a head that appears, strengthens or dies is in the table at every
step. Each checkpoint's ``phase`` is the phase
(:func:`~negolens.training.phases.label_phases`) of the rollouts its weights played: the
checkpoint after N updates played step N + 1 (the last logged step for the final one).
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from negolens.analysis.battery import accept_effects, effect_rows, measure_checkpoint
from negolens.config import option
from negolens.errors import NegolensError

__all__ = ["CheckpointConfig", "Checkpoint", "MEASURES", "TABLE_COLUMNS", "list_checkpoints", "run_phases",
           "checkpoint_battery", "tracked_heads"]

MEASURES = ("attention", "probes", "accept")
"""Measure groups a battery can run (:attr:`CheckpointConfig.measures`)."""

TABLE_COLUMNS = ("checkpoint", "step", "phase", "measure", "layer", "head", "probe", "value", "ci_low", "ci_high", "n")
"""Columns of :func:`checkpoint_battery`'s table (``n``: dialogues or decision points behind the value)."""


@dataclass
class CheckpointConfig:
    """Settings of :func:`checkpoint_battery` (and of ``negolens mechanisms``).

    Examples
    --------
    >>> CheckpointConfig.quick().n_points < CheckpointConfig().n_points
    True
    """

    measures: tuple[str, ...] = option(MEASURES, f"what to measure at each checkpoint: {', '.join(MEASURES)}")
    role: str = option("buyer", "whose view and decisions: buyer | seller")
    n_transcripts: int = option(32, "held-out transcripts (the first N)")
    n_points: int = option(16, "accept decision points taken from those transcripts")
    max_tokens: int = option(384, "longest view / decision-point prompt, in tokens")
    labels: tuple[str, ...] = option(("act", "last_offer_ratio"), "probe labels (probes.PROBE_LABELS)")
    layers: str = option("all", "probe layers: 'all' or a comma list")
    accept_class: str = option("agree", "class of the act probe whose direction accept_projection reads")
    kind: str = option("zero", "ablation kind of the accept sweep: zero | mean | resample")
    screen_top: int | None = option(None, "sweep only the top K heads by attribution patching at each checkpoint "
                                          "(tracked heads missed there are then ablated exactly)")
    top: int = option(5, "heads tracked: the union of each checkpoint's top K by |value|, per measure")
    include_start: bool = option(True, "also measure the run's starting model (step 0)")
    n_boot: int = option(1000, "bootstrap resamples for every CI")
    batch_size: int = option(4, "sequences per forward pass")
    seed: int = option(0, "seed of bootstraps, controls and probe folds")

    @classmethod
    def quick(cls, **overrides) -> "CheckpointConfig":
        """A few-minute preset: few transcripts and points, one probe label, short views."""
        return cls(**{"n_transcripts": 8, "n_points": 6, "max_tokens": 256, "labels": ("act",), "top": 3,
                      "n_boot": 300, **overrides})

    def __post_init__(self) -> None:
        from negolens.analysis.ablation import check_kind
        from negolens.errors import at_least, choice
        from negolens.probes.fit import parse_layers
        from negolens.probes.labels import label_spec

        for m in self.measures:
            choice(m, MEASURES, "measure")
        choice(self.role, ("buyer", "seller"), "role")
        for label in self.labels:
            label_spec(label)
        parse_layers(self.layers, None)
        check_kind(self.kind)
        for name in ("n_transcripts", "n_points", "max_tokens", "top", "n_boot", "batch_size"):
            at_least(getattr(self, name), 1, name)
        if self.screen_top is not None:
            at_least(self.screen_top, 1, "screen_top (or None)")


@dataclass(frozen=True)
class Checkpoint:
    """One model of a run: its ``name``, training ``step`` (updates) and loadable ``path`` (or zoo name)."""

    name: str
    step: int
    path: str


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()


def _manifest_steps(folder: Path) -> int | None:
    import json

    path = folder / "negolens_manifest.json"
    if not path.is_file():
        return None
    steps = json.loads(path.read_text(encoding="utf-8")).get("config", {}).get("steps")
    return int(steps) if steps is not None else None


def _start_ref(run: Path) -> str | None:
    """The model a run started from: ``run.json``'s ``model`` setting, else the manifest's base."""
    import json

    from negolens.runs import read_run

    record = read_run(run)
    if record is not None and record.config.get("model"):
        return str(record.config["model"])
    for folder in (run, run / "final"):
        path = folder / "negolens_manifest.json"
        if path.is_file():
            base = json.loads(path.read_text(encoding="utf-8")).get("base_model")
            if base:
                return str(base)
    return None


def list_checkpoints(run: str | Path, include_start: bool = True) -> list[Checkpoint]:
    """The checkpoints of a GRPO or SFT run folder, by step.

    Parameters
    ----------
    run : str or Path
        A GRPO run (``checkpoint-N/`` → step N; ``final/`` → its manifest's ``steps``, left out
        when a ``checkpoint-N`` has the same step) or an SFT run (the folder is the checkpoint).
    include_start : bool
        Add the starting model (``run.json``'s ``model``, else the manifest's base) as step 0.

    Returns
    -------
    list of Checkpoint

    Examples
    --------
    >>> import tempfile
    >>> from negolens.testing import tiny_model_dir
    >>> run = Path(tempfile.mkdtemp())
    >>> for n in (4, 2):
    ...     _ = tiny_model_dir(run).rename(run / f"checkpoint-{n}")
    >>> [(c.name, c.step) for c in list_checkpoints(run)]
    [('checkpoint-2', 2), ('checkpoint-4', 4)]
    """
    run = Path(run)
    if not run.is_dir():
        raise NegolensError(f"{run}: no such run folder (pass the --out of `negolens train grpo` or `train sft`)")
    found: list[Checkpoint] = []
    if _is_model(run):  # an SFT run: the folder is its checkpoint
        found.append(Checkpoint(run.name, _manifest_steps(run) or 1, str(run)))
    for folder in run.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", folder.name)
        if m and folder.is_dir() and _is_model(folder):
            found.append(Checkpoint(folder.name, int(m.group(1)), str(folder)))
    final = run / "final"
    if final.is_dir() and _is_model(final):
        step = _manifest_steps(final) or max((c.step for c in found), default=0)
        if all(c.step != step for c in found):
            found.append(Checkpoint("final", step, str(final)))
    if not found:
        raise NegolensError(f"no checkpoints in {run}: expected checkpoint-N/ or final/ folders (a GRPO run, "
                            "save_every) or a model folder (an SFT run)")
    start = _start_ref(run) if include_start else None
    if start is not None and all(c.step != 0 for c in found):
        found.append(Checkpoint("start", 0, start))
    return sorted(found, key=lambda c: c.step)


def run_phases(run: str | Path, rules=None) -> pd.DataFrame:
    """Phase labels of a GRPO run's logged steps (empty when it logged none, e.g. an SFT run).

    Reads ``steps.jsonl`` (:func:`~negolens.training.grpo.read_steps`) and the run's turn limit
    from ``run.json``; see :func:`~negolens.training.phases.label_phases` for the columns.
    """
    from negolens.runs import read_run
    from negolens.training.grpo import read_steps
    from negolens.training.phases import label_phases

    steps = read_steps(run)
    if not steps:
        return pd.DataFrame(columns=["step", "phase"])
    record = read_run(run)
    max_turns = record.config.get("max_turns") if record is not None else None
    return label_phases(steps, rules, max_turns=max_turns)


def _phase_at(phases: pd.DataFrame, step: int) -> str | None:
    """The phase of the rollouts the weights after ``step`` updates played (logged step ``step + 1``)."""
    if phases.empty:
        return None
    seen = phases[phases.step <= step + 1]
    return str(seen.phase.iloc[-1]) if len(seen) else None


def tracked_heads(table: pd.DataFrame, top: int) -> pd.DataFrame:
    """Per head measure, the rows of the union of each checkpoint's top ``top`` heads by |value|.

    Rows of measures without heads are kept as they are.

    Examples
    --------
    >>> t = pd.DataFrame({"checkpoint": ["a", "a", "b", "b"], "measure": "accept_effect", "layer": 0,
    ...                   "head": [0, 1, 0, 1], "value": [1.0, 0.1, 0.1, 2.0]})
    >>> len(tracked_heads(t, 1)), len(tracked_heads(t[t["head"] == 0], 1))
    (4, 2)
    """
    has_head = table["head"].notna()
    ranked = table[has_head].assign(_abs=table.loc[has_head, "value"].abs())
    best = ranked.sort_values("_abs", ascending=False, kind="stable").groupby(["checkpoint", "measure"]).head(top)
    keep = best[["measure", "layer", "head"]].drop_duplicates()
    kept = table[has_head].merge(keep, on=["measure", "layer", "head"])
    return pd.concat([table[~has_head], kept], ignore_index=True)


def checkpoint_battery(checkpoints: str | Path | Sequence[Checkpoint], transcripts,
                       config: CheckpointConfig | None = None, *, phases: pd.DataFrame | None = None, device: str = "auto",
                       keep_all_heads: bool = False, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Attention, probes and the accept head sweep at every checkpoint of a run, as one tidy table.

    Parameters
    ----------
    checkpoints : str, Path or sequence of Checkpoint
        A run folder (:func:`list_checkpoints`) or the checkpoints themselves.
    transcripts : sequence of Transcript
        Held-out dialogues (:func:`~negolens.agents.load_transcripts`); the first
        ``config.n_transcripts`` are used, and the decision points come from them.
    config : CheckpointConfig, optional
        What to measure and how much; default ``CheckpointConfig()``.
    phases : DataFrame, optional
        Phase labels by step (:func:`run_phases`); default: those of the run folder, if given.
    device : str
        Where each checkpoint is loaded.
    keep_all_heads : bool
        Keep every head, not only the tracked ones (:func:`tracked_heads`).
    log : callable, optional
        Receives one line per checkpoint and per skipped measure.

    Returns
    -------
    DataFrame
        Columns :data:`TABLE_COLUMNS`, one row per (checkpoint, measure, layer, head / probe).

    Raises
    ------
    NegolensError
        No checkpoints, no transcripts, no decision points, or checkpoints whose tokenizers
        give different decision points.

    Examples
    --------
    >>> import tempfile
    >>> from negolens.testing import tiny_model_dir
    >>> from negolens.agents import example_transcripts
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = tiny_model_dir(run).rename(run / "checkpoint-1")
    >>> cfg = CheckpointConfig.quick(measures=("accept",), max_tokens=512)
    >>> table = checkpoint_battery(run, example_transcripts(6), cfg)
    >>> sorted(table.measure.unique()), table.step.unique().tolist()
    (['accept_effect', 'accept_logit'], [1])
    """
    cfg = config or CheckpointConfig()
    say = log or (lambda _msg: None)
    if isinstance(checkpoints, (str, Path)):
        if phases is None:
            phases = run_phases(checkpoints)
        checkpoints = list_checkpoints(checkpoints, cfg.include_start)
    checkpoints = list(checkpoints)
    if not checkpoints:
        raise NegolensError("no checkpoints to measure")
    items = list(transcripts)[: cfg.n_transcripts]
    if not items:
        raise NegolensError("no transcripts to measure on: pass held-out dialogues (e.g. craigslist-dev)")
    phases = phases if phases is not None else pd.DataFrame(columns=["step", "phase"])
    rows, effects, keys = [], {}, None
    for ck in checkpoints:
        say(f"{ck.name} (step {ck.step})")
        model, points = _open(ck, items, cfg, device)
        here = [(p.transcript, p.turn) for p in points]
        keys = here if keys is None else keys
        if here != keys:
            raise NegolensError(f"{ck.name} yields other decision points than the first checkpoint (another tokenizer "
                                "or chat template?): compare checkpoints of one run")
        new, eff = measure_checkpoint(model, items, points, cfg, say)
        if eff is not None:
            effects[ck] = eff
        rows += [{"checkpoint": ck.name, "step": ck.step, "phase": _phase_at(phases, ck.step), **r} for r in new]
        del model
        gc.collect()
    if effects:
        rows += _effect_table(effects, items, cfg, device, phases, say)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for col in ("layer", "head"):
        table[col] = table[col].astype("Int64")
    if not keep_all_heads:
        table = tracked_heads(table, cfg.top)
    order = {ck.name: i for i, ck in enumerate(checkpoints)}
    table = table.assign(_o=table.checkpoint.map(order)).sort_values(["_o", "measure", "layer", "head", "probe"],
                                                                     kind="stable")
    return table.drop(columns="_o").reset_index(drop=True)


def _open(ck: Checkpoint, items, cfg: CheckpointConfig, device):
    """The checkpoint's model and its accept decision points."""
    from negolens.analysis.decisions import decision_points
    from negolens.hooked import load

    model = load(ck.path, device=device)
    return model, decision_points(model, items, cfg.role, "accept", max_tokens=cfg.max_tokens, limit=cfg.n_points)


def _effect_table(effects: dict, items, cfg: CheckpointConfig, device, phases, say) -> list[dict]:
    """Accept-effect rows; with screening, tracked heads a checkpoint missed are ablated exactly there."""
    if cfg.screen_top:
        union = set()
        for eff in effects.values():
            score = np.where(np.isnan(eff).any(axis=0), -1.0, np.abs(eff.mean(axis=0)))  # [L, H]; -1: not swept
            union |= {divmod(int(i), eff.shape[2]) for i in np.argsort(-score, axis=None)[: cfg.top]}
        for ck, eff in effects.items():
            missing = sorted(h for h in union if np.isnan(eff[:, h[0], h[1]]).any())
            if missing:
                say(f"{ck.name}: ablating {len(missing)} tracked head(s) it did not screen in")
                model, points = _open(ck, items, cfg, device)
                extra = accept_effects(model, points, replace(cfg, screen_top=None), heads=missing)
                layers, heads = [h[0] for h in missing], [h[1] for h in missing]
                eff[:, layers, heads] = extra[:, layers, heads]
                del model
                gc.collect()
    return [{"checkpoint": ck.name, "step": ck.step, "phase": _phase_at(phases, ck.step), **r}
            for ck, eff in effects.items() for r in effect_rows(eff, cfg)]
