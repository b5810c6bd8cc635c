"""Per-layer probe curves with baselines, control tasks, selectivity and CIs.

For one label and one position rule, at every layer: out-of-fold predictions with
``GroupKFold`` by dialogue (a dialogue never spans train and test), scored as accuracy or R².
Alongside, on the same folds:

* **baseline** — majority class / training mean (what a probe gets from no signal);
* **control task** (Hewitt & Liang 2019) — each token type gets a random label drawn from the
  label's empirical distribution; a probe that scores well here is memorising token identity,
  so **selectivity** = score − control score. ``control_baseline`` is the control task's own
  majority/mean score: where few token types occur (utterance ends are mostly "." or "?") the
  control labels are nearly constant and the control is easy for trivial reasons; where only
  one type occurs (the "\n" before every reply) it is undefined (NaN);
* **95% CI** — bootstrap over dialogues of the out-of-fold score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GroupKFold
from tqdm.auto import tqdm

from negolens.errors import NegolensError
from negolens.probes.linear import LinearProbe

__all__ = ["layer_sweep", "oof_predict", "grouped_ci", "control_labels", "undefined_reason"]


def undefined_reason(y, groups) -> str | None:
    """Why a probe score would be undefined for labels ``y`` over dialogues ``groups``, or None.

    No positions, a constant label (accuracy or R² would be trivially perfect or undefined) or
    fewer than two dialogues (no held-out dialogue for cross-validation).
    """
    y = np.asarray(y)
    if len(y) == 0:
        return "undefined: no positions where the label is defined"
    if len(np.unique(y)) < 2:
        return "undefined: constant label"
    if len(np.unique(groups)) < 2:
        return "undefined: fewer than 2 dialogues"
    return None


def _metric(task):
    return accuracy_score if task == "classification" else r2_score


def oof_predict(make, X, y, groups, n_splits: int) -> np.ndarray:
    """Out-of-fold predictions of ``make()`` (a fresh estimator per fold), GroupKFold by ``groups``."""
    pred = np.empty(len(y), dtype=y.dtype)
    for train, test in GroupKFold(n_splits=n_splits).split(X, y, groups):
        if y.dtype.kind not in "fc" and len(np.unique(y[train])) < 2:
            pred[test] = y[train][0]  # one class in training (e.g. a control task on one token type)
            continue
        pred[test] = make().fit(X[train], y[train]).predict(X[test])
    return pred


def grouped_ci(y, pred, groups, task, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap CI of the score of ``pred`` against ``y``, resampling whole dialogues (``groups``)."""
    metric, rng = _metric(task), np.random.default_rng(seed)
    uniq = np.unique(groups)
    members = {g: np.nonzero(groups == g)[0] for g in uniq}
    stats = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.choice(uniq, len(uniq))])
        stats.append(metric(y[idx], pred[idx]))
    return float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))


def control_labels(tokens: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Hewitt & Liang control task: a random label per token type, from y's distribution."""
    rng = np.random.default_rng(seed)
    types = np.unique(tokens)
    draws = rng.choice(y, size=len(types))
    table = dict(zip(types.tolist(), draws.tolist()))
    return np.array([table[t] for t in tokens.tolist()], dtype=y.dtype)


def layer_sweep(acts: np.ndarray, y: np.ndarray, groups: np.ndarray, tokens: np.ndarray, task: str,
                layers=None, n_splits: int = 5, seed: int = 0, progress: bool = True, **probe_params) -> pd.DataFrame:
    """Probe one label at every layer, with baseline, control task, selectivity and CI.

    Parameters
    ----------
    acts : ndarray of shape (n_positions, n_layers, d_model)
        Activations (:attr:`ActivationSet.acts <negolens.probes.activations.ActivationSet>`).
    y : array-like of shape (n_positions,)
        Labels.
    groups : array-like of shape (n_positions,)
        Dialogue of each position: folds never split a dialogue.
    tokens : array-like of shape (n_positions,)
        Token id of each position (the control task assigns labels per token type).
    task : {"classification", "regression"}
        Accuracy or R².
    layers : iterable of int, optional
        Layers to probe (default all).
    n_splits : int
        Folds (at most the number of dialogues).
    seed : int
        Seed of the control task and the bootstrap.
    progress : bool
        Show a progress bar.
    **probe_params
        Passed to :class:`~negolens.probes.linear.LinearProbe`.

    Returns
    -------
    DataFrame
        One row per layer: ``layer``, ``score``, ``ci_low``, ``ci_high``, ``baseline``,
        ``control``, ``control_baseline``, ``selectivity``, ``n``, ``n_dialogues``, ``task``.

    Raises
    ------
    NegolensError
        If the score is undefined (:func:`undefined_reason`): no positions, a constant label,
        fewer than two dialogues.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 2, 8)); y = rng.integers(0, 2, 80); X[:, 1, 0] += 4 * y
    >>> curve = layer_sweep(X, y, np.repeat(np.arange(20), 4), rng.integers(0, 9, 80), "classification",
    ...                     progress=False)
    >>> bool(curve.score[1] > curve.score[0])
    True
    """
    metric = _metric(task)
    y = np.asarray(y) if task == "classification" else np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    reason = undefined_reason(y, groups)
    if reason:
        raise NegolensError(f"cannot probe this label: {reason}")
    n_splits = min(n_splits, len(np.unique(groups)))
    dummy = (lambda: DummyClassifier(strategy="most_frequent")) if task == "classification" else DummyRegressor
    base_pred = oof_predict(dummy, acts[:, 0], y, groups, n_splits)
    y_ctrl = control_labels(tokens, y, seed)
    ctrl_base = oof_predict(dummy, acts[:, 0], y_ctrl, groups, n_splits)
    rows = []
    for layer in tqdm(list(layers if layers is not None else range(acts.shape[1])), desc="layers", disable=not progress):
        X = acts[:, layer].astype(np.float32)
        make = lambda: LinearProbe(task, **probe_params)  # noqa: E731
        pred = oof_predict(make, X, y, groups, n_splits)
        ctrl = oof_predict(make, X, y_ctrl, groups, n_splits)
        lo, hi = grouped_ci(y, pred, groups, task, seed=seed)
        score = metric(y, pred)
        # one token type at every position (e.g. always "\n"): the control task is degenerate
        control = metric(y_ctrl, ctrl) if len(np.unique(y_ctrl)) > 1 else np.nan
        rows.append({"layer": layer, "score": score, "ci_low": lo, "ci_high": hi, "baseline": metric(y, base_pred),
                     "control": control, "control_baseline": metric(y_ctrl, ctrl_base) if np.isfinite(control) else np.nan,
                     "selectivity": score - control,
                     "n": len(y),
                     "n_dialogues": len(np.unique(groups)), "task": task})
    return pd.DataFrame(rows)
