"""Linear probes as scikit-learn estimators.

``LinearProbe(task="classification")`` is standardise → logistic regression;
``task="regression"`` is standardise → ridge. Penalties are strong by default (``C=0.1``,
``alpha=1e3`` on standardised features): the residual stream has hundreds of dimensions and a
few hundred dialogues, and labels constant within a dialogue make position-level CV pick
penalties that do not transfer across dialogues. Hyper-parameters live in ``__init__``, learned
state ends in ``_`` (``pipeline_``, ``classes_``), so probes clone, grid-search and sit in
pipelines like any estimator. ``direction()`` gives the probe's weight vector mapped back to
residual-stream units (divided by the scaler's scale) and normalised — what steering adds.
``save``/``load`` keep the estimator with its metadata (model, layer, position rule, label,
dtype, TransformerLens mode).
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["LinearProbe"]


class LinearProbe(BaseEstimator):
    """A linear probe: standardise, then logistic regression or ridge.

    Parameters
    ----------
    task : {"classification", "regression"}, default="classification"
        Logistic regression (accuracy) or ridge regression (R²).
    C : float, default=0.1
        Inverse L2 penalty of the logistic regression.
    alpha : float, default=1e3
        L2 penalty of the ridge regression, on standardised features.
    max_iter : int, default=200
        Iterations of the logistic regression's solver.
    tol : float, default=1e-3
        Tolerance of the logistic regression's solver.

    Attributes
    ----------
    pipeline_ : sklearn.pipeline.Pipeline
        The fitted scaler → estimator pipeline.
    classes_ : ndarray
        Class labels (classification only).
    n_features_in_ : int
        Width of ``X`` seen in :meth:`fit` (the model's ``d_model``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 16)); y = (X[:, 3] > 0).astype(int)
    >>> probe = LinearProbe(C=1.0).fit(X, y)
    >>> bool(probe.score(X, y) > 0.9), int(np.abs(probe.direction()).argmax())
    (True, 3)
    """

    def __init__(self, task: str = "classification", C: float = 0.1, alpha: float = 1e3,
                 max_iter: int = 200, tol: float = 1e-3):
        self.task = task
        self.C = C
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def _estimator(self):
        if self.task == "classification":
            return LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        if self.task == "regression":
            return Ridge(alpha=self.alpha)
        raise ValueError(f"task must be 'classification' or 'regression', not {self.task!r}")

    def fit(self, X, y):
        """Fit on activations ``X`` (n_positions, d_model) and labels ``y``; return ``self``."""
        X = np.asarray(X, dtype=np.float32)
        self.pipeline_ = make_pipeline(StandardScaler(), self._estimator()).fit(X, y)
        self.n_features_in_ = X.shape[1]
        if self.task == "classification":
            self.classes_ = self.pipeline_.classes_
        return self

    def predict(self, X):
        """Predicted class or value per row of ``X``."""
        return self.pipeline_.predict(np.asarray(X, dtype=np.float32))

    def predict_proba(self, X):
        """Class probabilities per row of ``X`` (classification only), columns in ``classes_`` order."""
        return self.pipeline_.predict_proba(np.asarray(X, dtype=np.float32))

    def score(self, X, y) -> float:
        """Accuracy (classification) or R² (regression)."""
        pred = self.predict(X)
        return accuracy_score(y, pred) if self.task == "classification" else r2_score(y, pred)

    def direction(self, label=None) -> np.ndarray:
        """Unit vector in residual units: the class's (or the regression's) weight / feature scale."""
        scaler, est = self.pipeline_[0], self.pipeline_[-1]
        coef = np.atleast_2d(est.coef_)
        if self.task == "classification" and len(self.classes_) > 2:
            row = coef[list(self.classes_).index(label)] if label is not None else coef[0]
        else:
            row = coef[0]
        w = row / scaler.scale_
        return w / np.linalg.norm(w)

    def save(self, folder: str | Path, **metadata) -> Path:
        """Write ``probe.joblib``, ``probe.json`` (params + ``metadata``) and ``direction.npy``; return ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, folder / "probe.joblib")
        meta = {"params": self.get_params(), **metadata}
        (folder / "probe.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        np.save(folder / "direction.npy", self.direction())
        return folder

    @staticmethod
    def load(folder: str | Path) -> tuple["LinearProbe", dict]:
        """Read a probe that :meth:`save` wrote: ``(probe, metadata)``."""
        folder = Path(folder)
        return joblib.load(folder / "probe.joblib"), json.loads((folder / "probe.json").read_text(encoding="utf-8"))
