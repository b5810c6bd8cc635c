"""Leading indicators: does an internal signal move before the behaviour does?

:func:`leading_indicator` correlates a per-checkpoint signal from the across-training table
(:func:`~negolens.analysis.checkpoints.checkpoint_battery`: a head's effect, the projection on a
probe's direction, …) with a per-step behaviour statistic of the run (``steps.jsonl``: deal
rate, first offer / budget, …) at every lag, and reports the lag where the signal predicts the
behaviour best. Alignment: the weights after ``s`` updates played the rollouts logged as step
``s + 1``, so the behaviour of those weights is ``b(s)`` = the logged value at step ``s + 1``;
lag ``L`` pairs ``signal(s)`` with ``b(s + L)``. A positive best lag means the internal signal
leads.

Statistics: Pearson r per lag; the p-value is a permutation test of the *maximum* |r| over all
lags (the signal's values shuffled across checkpoints), so picking the best lag is paid for;
the CI is a bootstrap over the (checkpoint, step) pairs at the best lag. Trending series
correlate at every lag: pass ``diff=True`` to correlate step-to-step changes instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from negolens.errors import NegolensError

__all__ = ["LeadResult", "leading_indicator", "signal_series"]

MIN_PAIRS = 3  # fewer pairs than this at a lag: no correlation there


@dataclass
class LeadResult:
    """What :func:`leading_indicator` found.

    Attributes
    ----------
    signal, behaviour : str
        What was correlated.
    lags : DataFrame
        Per lag: ``lag``, ``r`` (Pearson), ``n`` (pairs); NaN where fewer than 3 pairs.
    best_lag : int or None
        The lag of the largest |r| (``None`` when no lag has enough pairs).
    r, ci_low, ci_high : float
        The correlation at ``best_lag`` and its bootstrap 95% CI over pairs.
    p : float
        Permutation p-value of the maximum |r| over lags.
    n : int
        Pairs at ``best_lag``.
    """

    signal: str
    behaviour: str
    lags: pd.DataFrame
    best_lag: int | None
    r: float
    ci_low: float
    ci_high: float
    p: float
    n: int

    def leads(self, alpha: float = 0.05) -> bool:
        """Whether the signal significantly predicts the behaviour at a positive lag."""
        return self.best_lag is not None and self.best_lag > 0 and self.p < alpha

    def summary(self) -> str:
        """One line: the best lag, r with its CI, p and n."""
        if self.best_lag is None:
            return f"{self.signal} → {self.behaviour}: too few checkpoints with logged behaviour to correlate"
        return (f"{self.signal} → {self.behaviour}: best lag {self.best_lag:+d} steps, r = {self.r:.3f} "
                f"[{self.ci_low:.3f}, {self.ci_high:.3f}], p(max |r| over lags) = {self.p:.3g}, n = {self.n}")


def signal_series(table: pd.DataFrame, signal: str | dict | pd.Series) -> tuple[pd.Series, str]:
    """The signal as a Series indexed by step, and its name.

    ``signal`` is a measure name (``"accept_logit"``), a dict of column filters on ``table``
    (``{"measure": "accept_effect", "layer": 3, "head": 2}``) that leaves one row per step, or a
    Series indexed by step already.
    """
    if isinstance(signal, pd.Series):
        return signal.astype(float).sort_index(), str(signal.name or "signal")
    filters = {"measure": signal} if isinstance(signal, str) else dict(signal)
    sel = table
    for col, value in filters.items():
        if col not in table:
            raise NegolensError(f"the table has no column {col!r} to select the signal by")
        sel = sel[sel[col] == value]
    if sel.empty:
        raise NegolensError(f"no rows of the table match the signal {filters}: pick a measure in "
                            f"{sorted(table.measure.unique())} (and its layer, head or probe)")
    if sel.step.duplicated().any():
        raise NegolensError(f"the signal {filters} has several rows per step: add layer, head or probe to select one")
    name = " ".join(f"{k}={v}" for k, v in filters.items())
    return sel.set_index("step")["value"].astype(float).sort_index(), name


def _corr_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``x`` [k, n] with ``y`` [n] (NaN for a constant row)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    denom = np.sqrt((xc ** 2).sum(axis=1) * (yc ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, xc @ yc / denom, np.nan)


def leading_indicator(table: pd.DataFrame, steps, signal: str | dict | pd.Series = "accept_logit",
                      behaviour: str = "deal_rate", *, max_lag: int | None = None, diff: bool = False,
                      n_perm: int = 2000, n_boot: int = 2000, seed: int = 0) -> LeadResult:
    """The lag at which an internal signal best predicts a behaviour statistic (module docstring).

    Parameters
    ----------
    table : DataFrame
        The across-training table (``step``, ``measure``, ``value`` …).
    steps : DataFrame or list of dict
        The run's per-step statistics (:func:`~negolens.training.grpo.read_steps`).
    signal : str, dict or Series
        Which values of ``table`` (:func:`signal_series`).
    behaviour : str
        A column of ``steps`` (``deal_rate``, ``first_offer_budget_ratio``, ``length`` …).
    max_lag : int, optional
        Lags ``-max_lag … max_lag`` steps; default half the span of the logged steps.
    diff : bool
        Correlate changes between consecutive checkpoints (signal) and the behaviour's change
        over the same interval, instead of levels.
    n_perm, n_boot : int
        Permutations of the max-|r| test; bootstrap resamples of the CI.
    seed : int
        Seed of both.

    Returns
    -------
    LeadResult

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=30)
    >>> table = pd.DataFrame({"step": range(30), "measure": "accept_logit", "value": x})
    >>> steps = [{"step": s + 1 + 2, "deal_rate": x[s]} for s in range(30)]  # behaviour follows 2 steps later
    >>> result = leading_indicator(table, steps, max_lag=4, n_perm=200, n_boot=200)
    >>> result.best_lag, result.leads()
    (2, True)
    """
    x, name = signal_series(table, signal)
    df = pd.DataFrame(steps)
    if "step" not in df or behaviour not in df:
        raise NegolensError(f"the steps have no {behaviour!r} column: pick one of "
                            f"{sorted(c for c in df.columns if c != 'step')}")
    b = pd.Series(pd.to_numeric(df[behaviour], errors="coerce").to_numpy(), index=df.step.astype(int) - 1).dropna()
    if max_lag is None:
        max_lag = max(1, int((b.index.max() - b.index.min()) // 2)) if len(b) else 1
    xs = x.dropna()
    s, v = xs.index.to_numpy(dtype=int), xs.to_numpy(dtype=float)
    lags = list(range(-max_lag, max_lag + 1))
    pairs = {}
    for lag in lags:
        if diff:
            keep = [i for i in range(1, len(s)) if s[i - 1] + lag in b.index and s[i] + lag in b.index]
            xi = [(i, i - 1) for i in keep]
            y = np.array([b[s[i] + lag] - b[s[i - 1] + lag] for i in keep])
        else:
            keep = [i for i in range(len(s)) if s[i] + lag in b.index]
            xi = [(i, None) for i in keep]
            y = np.array([b[s[i] + lag] for i in keep])
        pairs[lag] = (xi, y)

    def values_of(vals: np.ndarray, xi) -> np.ndarray:  # vals [k, len(s)] → [k, pairs]
        cols = [i for i, _ in xi]
        out = vals[:, cols]
        if diff:
            out = out - vals[:, [j for _, j in xi]]
        return out

    rows = []
    for lag in lags:
        xi, y = pairs[lag]
        r = _corr_rows(values_of(v[None], xi), y)[0] if len(y) >= MIN_PAIRS else np.nan
        rows.append({"lag": lag, "r": float(r), "n": len(y)})
    lag_table = pd.DataFrame(rows, columns=["lag", "r", "n"])
    finite = lag_table[np.isfinite(lag_table.r)]
    if finite.empty:
        return LeadResult(name, behaviour, lag_table, None, np.nan, np.nan, np.nan, np.nan, 0)
    order = finite.assign(a=-finite.r.abs(), l=finite.lag.abs()).sort_values(["a", "l", "lag"])
    best = int(order.lag.iloc[0])
    observed = float(order.r.abs().iloc[0])
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(v) for _ in range(n_perm)])  # [n_perm, len(s)]
    null = np.full(n_perm, 0.0)
    for lag in finite.lag:
        xi, y = pairs[int(lag)]
        null = np.fmax(null, np.abs(_corr_rows(values_of(perms, xi), y)))
    p = float((1 + (null >= observed - 1e-12).sum()) / (1 + n_perm))
    xi, y = pairs[best]
    xb = values_of(v[None], xi)[0]
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = np.array([np.corrcoef(xb[i], y[i])[0, 1] for i in idx])  # NaN where a resample is constant
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.quantile(boot, [0.025, 0.975]) if len(boot) else (np.nan, np.nan))
    r_best = float(lag_table.set_index("lag").r[best])
    return LeadResult(name, behaviour, lag_table, best, r_best, float(lo), float(hi), p, len(y))
