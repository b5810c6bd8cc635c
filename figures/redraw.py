"""``negolens figures RESULTS_DIR``: redraw every figure of a study from its saved tables.

Nothing is recomputed: each figure reads the CSV / JSONL its stage wrote. A stage that did not
run (or a file that is missing) is reported and skipped, so partial runs still get figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# (figure name, input file relative to the run directory); `_draw` knows what draws each.
FIGURES = (
    ("sft_loss", "sft-buyer/checkpoint/negolens_manifest.json"),
    ("negotiation_matrix", "negotiate/conditions.csv"),
    ("personality_pairings", "negotiate/conditions.csv"),
    ("cot_vs_no_cot", "negotiate/conditions.csv"),
    ("attention_heads", "attention/attention_heads.csv"),
    ("probe_curves", "probes/probe_curves.csv"),
    ("ablation_accept", "ablation/ablation_accept_zero.csv"),
    ("ablation_offer", "ablation/ablation_offer_zero.csv"),
    ("ablation_rerun", "ablation/rerun.csv"),
    ("steering", "ablation/steering.csv"),
    ("rlvr_curves", "grpo/steps.jsonl"),
    ("model_comparison", "grpo/model_comparison.csv"),
)


def regenerate(run_dir: str | Path, out: str | Path | None = None, log=print) -> dict[str, list[Path]]:
    """Draw every figure whose input exists into ``out`` (default ``run_dir/figures``).

    Parameters
    ----------
    run_dir
        A study's results directory.
    out
        Where to write the figures.
    log
        Callable for one line per figure (drawn or skipped).

    Returns
    -------
    dict
        Figure name → the files written (PNG and PDF) for every figure that was drawn.

    Examples
    --------
    >>> drawn = regenerate("results/study")  # doctest: +SKIP
    figure negotiation_matrix: results/study/figures/negotiation_matrix.png
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, list[Path]] = {}
    for name, rel in FIGURES:
        src = run_dir / rel
        if name == "ablation_offer" and not src.is_file():  # quick runs measure the top heads only
            src = run_dir / "ablation" / "ablation_offer_top.csv"
        if not src.is_file():
            log(f"figure {name}: skipped ({rel} not found)")
            continue
        paths = _draw(name, src, run_dir, out / name)
        if paths:
            drawn[name] = paths
            log(f"figure {name}: {paths[0]}")
    return drawn


def _draw(name: str, src: Path, run_dir: Path, dest: Path) -> list[Path]:
    from negolens.figures import heads, negotiation, probes, training

    if name == "sft_loss":
        mans = {}
        for role in ("buyer", "seller"):
            p = run_dir / f"sft-{role}" / "checkpoint" / "negolens_manifest.json"
            if p.is_file():
                mans[f"{role} (LoRA)"] = json.loads(p.read_text(encoding="utf-8"))
        return training.sft_curves(mans, dest)
    if name == "negotiation_matrix":
        return negotiation.matrix_heatmaps(pd.read_csv(src), dest)
    if name == "personality_pairings":
        return negotiation.condition_bars(pd.read_csv(src), "personality", dest,
                                          title="Personality pairings (SFT buyer vs SFT seller), 95% bootstrap CIs")
    if name == "cot_vs_no_cot":
        return negotiation.condition_bars(pd.read_csv(src), "cot", dest,
                                          title="Chain of thought vs none (buyer vs rule seller), 95% bootstrap CIs")
    if name == "attention_heads":
        return heads.score_heatmaps(pd.read_csv(src), dest.parent, stem=dest.name)
    if name == "probe_curves":
        return probes.probe_curves(pd.read_csv(src), dest)
    if name == "ablation_accept":
        return heads.head_heatmap(pd.read_csv(src), dest, title="zero ablation: Δ logit(accept − counter)")
    if name == "ablation_offer":
        which = "top heads of the accept sweep only" if src.stem.endswith("_top") else "all heads"
        return heads.head_heatmap(pd.read_csv(src), dest, title=f"zero ablation: Δ log(greedy next offer / list), {which}")
    if name == "ablation_rerun":
        return negotiation.rerun_bars(pd.read_csv(src), dest)
    if name == "steering":
        return training.steering_plot(pd.read_csv(src), dest)
    if name == "rlvr_curves":
        from negolens.training import read_steps

        steps = read_steps(src.parent)
        last = steps[-1]["step"] if steps else 0  # the study's narrow segment (grpo/narrow), numbered on from it
        steps += [{**rec, "step": last + rec["step"]} for rec in read_steps(src.parent / "narrow")]
        return training.rlvr_curves(steps, dest)
    if name == "model_comparison":
        return negotiation.model_comparison(pd.read_csv(src), dest)
    raise KeyError(name)
