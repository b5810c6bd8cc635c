"""negolens.figures — draws paper figures and reports from saved results.

Every function reads tables the lower layers return or saved and writes PNG + PDF in one style
(:mod:`negolens.figures.style`); nothing here recomputes a result.

>>> from negolens.figures import head_heatmap                          # doctest: +SKIP
>>> head_heatmap(sweep_table, "figures/accept", title="Δ logit(accept − counter)")  # doctest: +SKIP
"""

from negolens.figures.anchoring import anchoring_figure
from negolens.figures.beliefs import belief_figure
from negolens.figures.checkpoints import checkpoint_curves
from negolens.figures.heads import head_heatmap, score_heatmaps
from negolens.figures.negotiation import condition_bars, matrix_heatmaps, model_comparison, rerun_bars
from negolens.figures.probes import probe_curves
from negolens.figures.redraw import FIGURES, regenerate
from negolens.figures.report import check_in_browser, write_report
from negolens.figures.training import rlvr_curves, sft_curves, steering_plot

__all__ = [
    "head_heatmap", "score_heatmaps", "probe_curves", "matrix_heatmaps", "condition_bars", "rerun_bars",
    "model_comparison", "rlvr_curves", "sft_curves", "steering_plot", "regenerate", "write_report",
    "check_in_browser", "FIGURES", "belief_figure", "anchoring_figure", "checkpoint_curves",
]
