"""Small statistics shared by every layer: bootstrap CIs, paired permutation tests, BH q-values."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (1-D).

    Parameters
    ----------
    values
        The sample (any 1-D array-like of numbers).
    n_boot
        Number of bootstrap resamples.
    seed
        Seed of the resampling (same seed, same interval).
    level
        Coverage of the interval (0.95: the 2.5th and 97.5th percentiles of the resampled means).

    Returns
    -------
    (low, high)
        In the units of ``values``; ``(nan, nan)`` for an empty sample, ``(v, v)`` for one value.

    Examples
    --------
    >>> lo, hi = bootstrap_ci([0, 1, 1, 0, 1, 1, 1, 0], seed=0)   # 5 deals out of 8: mean 0.625
    >>> 0.2 < lo < 0.625 < hi <= 1.0
    True
    >>> bootstrap_ci([])
    (nan, nan)
    """
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return (float("nan"), float("nan"))
    if len(v) == 1:
        return (float(v[0]), float(v[0]))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def bootstrap_ci_columns(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """Bootstrap CIs of the column means of ``values`` [n, k] (rows resampled together).

    Returns two arrays ``[k]``: the lower and upper bounds.
    """
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    means = np.stack([v[i].mean(axis=0) for i in idx])  # [n_boot, k]
    a = (1 - level) / 2
    return np.quantile(means, a, axis=0), np.quantile(means, 1 - a, axis=0)


def sign_flip_pvalues(diffs: np.ndarray, n_perm: int = 5000, seed: int = 0) -> np.ndarray:
    """Two-sided paired permutation test of mean(diffs) = 0 per column of ``diffs`` [n, k].

    Under the null, each unit's tagged/control labels are exchangeable, so its difference's sign
    is random. p = (1 + #{|permuted mean| ≥ |observed mean|}) / (1 + n_perm).

    Examples
    --------
    >>> import numpy as np
    >>> p = sign_flip_pvalues(np.array([[1.0, 0.1], [1.2, -0.1], [0.9, 0.2], [1.1, -0.2]] * 3))
    >>> bool(p[0] < 0.01), bool(p[1] > 0.5)
    (True, True)
    """
    d = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, d.shape[0]))
    observed = np.abs(d.mean(axis=0))
    perm = np.abs(signs @ d / d.shape[0])  # [n_perm, k]
    return (1 + (perm >= observed - 1e-12).sum(axis=0)) / (1 + n_perm)


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), same shape as ``p``.

    Examples
    --------
    >>> bh_qvalues([0.01, 0.04, 0.03, 0.5]).tolist()
    [0.04, 0.05333333333333334, 0.05333333333333334, 0.5]
    """
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    order = np.argsort(flat)
    ranked = flat[order] * len(flat) / (np.arange(len(flat)) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty_like(flat)
    out[order] = q
    return out.reshape(p.shape)
