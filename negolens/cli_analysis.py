"""CLI verb ``negolens ablate`` (registered on the main app)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def ablate(
    model: str = typer.Option("smollm2-135m-instruct", help="zoo name or model directory"),
    transcripts: str = typer.Option("craigslist-dev", help="craigslist-dev | craigslist-test | a dialogues.jsonl"),
    role: str = typer.Option("buyer", help="whose decisions: buyer | seller"),
    metric: str = typer.Option("accept", help="accept (logit accept − counter) | offer (also: log greedy next offer / list, top heads)"),
    kind: str = typer.Option("zero", help="zero | mean | resample"),
    n: int = typer.Option(32, help="decision points"),
    max_tokens: int = typer.Option(384),
    screen_top: Optional[int] = typer.Option(None, help="attribution-patching screen, then exact on the top K"),
    top: int = typer.Option(5, help="top heads reported and re-run"),
    offer_heads: str = typer.Option("all", help="offer metric: 'all' heads (full sweep + heatmap) or 'top' heads only"),
    attention: Optional[Path] = typer.Option(None, help="attention_heads.csv from `negolens attention` to link heads"),
    rerun_n: int = typer.Option(0, help="re-run this many built-in negotiations intact / top / random heads ablated"),
    steer: Optional[Path] = typer.Option(None, help="a saved probe folder (negolens probe …/probes/LABEL) to steer along"),
    steer_label: Optional[str] = typer.Option(None, help="class whose direction to use (multi-class probes)"),
    alphas: str = typer.Option("-16,-8,-4,0,4,8,16", help="steering strengths (residual-norm units)"),
    out: Path = typer.Option(Path("results/ablation"), help="output directory"),
    data: Optional[Path] = typer.Option(None, help="data directory"),
    seed: int = typer.Option(0),
) -> None:
    """Ablate every head at decision points; heatmap, top heads (with their attention profile),
    and whole negotiations re-run with the top heads ablated vs random heads."""
    import numpy as np
    import pandas as pd

    from negolens.analysis.behaviour import offer_effects, rerun
    from negolens.analysis.decisions import decision_points
    from negolens.analysis.sweep import summarize_effects, sweep_heads
    from negolens.cli_probes import _load
    from negolens.figures.heads import head_heatmap
    from negolens.agents.transcripts import load_transcripts

    nm = _load(model)
    items = load_transcripts(transcripts, None, data)
    out.mkdir(parents=True, exist_ok=True)
    points = decision_points(nm, items, role, "accept", max_tokens=max_tokens, limit=n)
    table = sweep_heads(nm, points, "accept", kind=kind, screen_top=screen_top, seed=seed)
    table.to_csv(out / f"ablation_accept_{kind}.csv", index=False)
    if screen_top is None:
        head_heatmap(table, out / f"ablation_accept_{kind}", title=f"{kind} ablation: Δ logit(accept − counter)")
    ranked = table.assign(abs=table.effect.abs()).sort_values("abs", ascending=False)
    heads = [(int(r.layer), int(r["head"])) for _, r in ranked.head(top).iterrows()]
    if metric == "offer":
        offer_points = decision_points(nm, items, role, "offer", max_tokens=max_tokens, limit=n)
        every = [(l, h) for l in range(nm.shape.n_layers) for h in range(nm.shape.n_heads)]
        chosen = every if offer_heads == "all" else heads
        eff = offer_effects(nm, offer_points, chosen, progress=True)
        full = np.full((len(offer_points), nm.shape.n_layers, nm.shape.n_heads), np.nan)
        for j, (l, h) in enumerate(chosen):
            full[:, l, h] = eff[:, j]
        offer_table = summarize_effects(full, seed=seed)
        name = "ablation_offer_zero" if offer_heads == "all" else "ablation_offer_top"
        offer_table.to_csv(out / f"{name}.csv", index=False)
        if offer_heads == "all":
            head_heatmap(offer_table, out / name, title="zero ablation: Δ log(greedy next offer / list)")
        best = offer_table.assign(abs=offer_table.effect.abs()).sort_values("abs", ascending=False).head(top)
        typer.echo("offer: Δ log(greedy next offer / list) when a head is zero-ablated (largest |effect|):")
        typer.echo(best.drop(columns="abs").to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    top_table = ranked.head(top).drop(columns="abs")
    if attention is not None:
        att = pd.read_csv(attention).pivot_table(index=["layer", "head"], columns="score", values="effect").reset_index()
        top_table = top_table.merge(att, on=["layer", "head"], how="left")
    top_table.to_csv(out / "top_heads.csv", index=False)
    typer.echo(top_table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if rerun_n:
        from negolens.agents.builtin import builtin_scenarios
        from negolens.agents.rule_agent import RuleAgent
        from negolens.agents.runner import RunConfig

        re = rerun(nm, heads, builtin_scenarios()[:rerun_n], RuleAgent("seller"), RunConfig(max_turns=8, seed=seed), seed=seed)
        re.to_csv(out / "rerun.csv", index=False)
        keep = re[re.metric.isin(["deal", "reward", "overshoot", "first_offer_ratio_buyer", "bargained_ratio"])]
        typer.echo(keep[["condition", "metric", "mean", "ci_low", "ci_high", "n"]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"))
    if steer is not None:
        from negolens.analysis.behaviour import steering_curve
        from negolens.analysis.sweep import LogitDiff
        from negolens.probes.linear import LinearProbe

        probe, meta = LinearProbe.load(steer)
        lm = LogitDiff.accept_vs_counter(nm)

        def value(m, pts):
            return [float(lm(m.logits(m.batch([p.ids]))[0, -1, lm.tokens()].float())) for p in pts]

        curve = steering_curve(nm, points, value, int(meta["layer"]), probe.direction(steer_label),
                               [float(a) for a in alphas.split(",")])
        curve.insert(0, "probe", f"{meta['label']}:{steer_label or ''}@L{meta['layer']}")
        curve.to_csv(out / "steering.csv", index=False)
        typer.echo("steering (Δ logit accept − counter at decision points):")
        typer.echo(curve.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    typer.echo(str(out))
