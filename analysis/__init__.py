"""negolens.analysis — intervenes: head ablation, activation patching, steering, statistics.

May import every layer below it; never figures.

>>> from negolens.analysis import sweep_heads, decision_points  # doctest: +SKIP
>>> table = sweep_heads(model, decision_points(model, transcripts), "accept", kind="mean")  # doctest: +SKIP
"""

from negolens.analysis.decisions import decision_points
from negolens.analysis.sweep import sweep_heads

__all__ = ["decision_points", "sweep_heads"]
