"""One style for every negolens figure; each figure is saved as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402


def setup() -> None:
    """Apply the negolens plot theme (seaborn "paper" context, white grid)."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def save(fig, path: str | Path) -> list[Path]:
    """Save ``fig`` as ``path``.png and ``path``.pdf; returns both paths."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for p in out:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out
