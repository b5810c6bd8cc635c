"""CLI verbs ``negolens attention`` and ``negolens probe`` (registered on the main app)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

# label → (position rule, task)
PROBE_LABELS = {
    "act": ("utterance_end", "classification"),
    "speaker": ("utterance_end", "classification"),
    "last_offer_ratio": ("utterance_end", "regression"),
    "gap_bucket": ("before_reply", "classification"),
    "last_offer_by": ("before_reply", "classification"),
    "deal": ("utterance_end", "classification"),
    "own_target_ratio": ("before_reply", "regression"),
}


def _load(model: str, dtype: str = "float32"):
    from negolens.hooked import load
    from negolens.zoo import ZOO

    return load(model, dtype=dtype, fetch=model in ZOO)


def attention(
    model: str = typer.Option("smollm2-135m-instruct", help="zoo name or model directory"),
    transcripts: str = typer.Option("craigslist-dev", help="craigslist-dev | craigslist-test | a dialogues.jsonl"),
    role: str = typer.Option("buyer", help="whose view to render: buyer | seller"),
    n: Optional[int] = typer.Option(None, help="first N transcripts (default all)"),
    max_tokens: int = typer.Option(512, help="keep whole turns up to this many tokens"),
    batch_size: int = typer.Option(4),
    out: Path = typer.Option(Path("results/attention"), help="output directory"),
    show: str = typer.Option("0:1.3", help="circuitsvis view DIALOGUE:LAYER.HEAD"),
    data: Optional[Path] = typer.Option(None, help="data directory"),
    seed: int = typer.Option(0),
) -> None:
    """Per-head attention on verbs and prices vs matched controls: table, heatmaps, circuitsvis HTML."""
    from negolens.figures.heads import score_heatmaps
    from negolens.probes.attention import AttentionRecorder, claim, summarize_heads
    from negolens.agents.transcripts import load_transcripts
    from negolens.probes.visual import attention_html

    nm = _load(model)
    items = load_transcripts(transcripts, n, data)
    rec = AttentionRecorder(nm, seed=seed)
    scores = rec.record(items, role, batch_size=batch_size, max_tokens=max_tokens)
    table = summarize_heads(scores, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "attention_heads.csv", index=False)
    score_heatmaps(table, out)
    d, lh = show.split(":")
    layer, head = (int(x) for x in lh.split("."))
    attention_html(nm, rec, items[int(d)], role, layer, head, out / f"attention_d{d}_L{layer}H{head}.html", max_tokens)
    top = table.sort_values("effect", ascending=False).groupby("score").head(3)
    cols = ["score", "layer", "head", "tagged", "control", "effect", "ci_low", "ci_high", "p", "q"]
    typer.echo(top[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    c = claim(table, "verb_args", 1, min(3, nm.shape.n_heads - 1))
    typer.echo(f"AgreeMate's 'L1H3: verbs → arguments' on {model}: effect {c['effect']:.3g} "
               f"[{c['ci_low']:.3g}, {c['ci_high']:.3g}], q = {c['q']:.3g}, rank {c['rank']}/{c['of']}")
    typer.echo(str(out))


def probe(
    model: str = typer.Option("smollm2-135m-instruct", help="zoo name or model directory"),
    transcripts: str = typer.Option("craigslist-dev", help="craigslist-dev | craigslist-test | a dialogues.jsonl"),
    role: str = typer.Option("buyer", help="whose view to render"),
    labels: str = typer.Option("act,last_offer_ratio,own_target_ratio", help=f"comma list of {','.join(PROBE_LABELS)}"),
    layers: str = typer.Option("all", help="'all' or a comma list of layers"),
    n: Optional[int] = typer.Option(None, help="first N transcripts (default all)"),
    max_tokens: int = typer.Option(512),
    out: Path = typer.Option(Path("results/probes"), help="output directory (activations are cached here)"),
    data: Optional[Path] = typer.Option(None, help="data directory"),
    seed: int = typer.Option(0),
) -> None:
    """Linear probes for negotiation state, per layer, with baselines, control tasks and CIs."""
    import numpy as np

    from negolens.figures.probes import probe_curves
    from negolens.probes.activations import ActivationSet, collect
    from negolens.probes.labels import label_table
    from negolens.probes.linear import LinearProbe
    from negolens.probes.sweep import layer_sweep
    from negolens.agents.transcripts import load_transcripts

    wanted = [x for x in labels.split(",") if x]
    unknown = set(wanted) - set(PROBE_LABELS)
    if unknown:
        raise typer.BadParameter(f"unknown labels {sorted(unknown)}; choose from {list(PROBE_LABELS)}")
    items = load_transcripts(transcripts, n, data)
    cache = out / "activations"
    info = {"model": model, "transcripts": transcripts, "role": role, "n": len(items), "max_tokens": max_tokens}
    if (cache / "info.json").is_file() and all(ActivationSet.load(cache).info.get(k) == v for k, v in info.items()):
        acts = ActivationSet.load(cache)
        typer.echo(f"reusing cached activations in {cache}", err=True)
    else:
        acts = collect(_load(model), items, role, max_tokens=max_tokens)
        acts.info.update(info)
        acts.save(cache)
    table = label_table(acts.meta, items, role)
    chosen = None if layers == "all" else [int(x) for x in layers.split(",")]
    curves = {}
    for label in wanted:
        rule, task = PROBE_LABELS[label]
        sel = ((table.rule == rule) & table[label].notna()).to_numpy()
        y = table.loc[sel, label].to_numpy()
        if task == "classification" and len(set(y)) < 2 or len(y) < 10:
            typer.echo(f"{label:>18} skipped: {len(y)} positions, {len(set(y))} class(es)")
            continue
        curve = layer_sweep(acts.acts[sel], y, table.loc[sel, "dialogue"].to_numpy(), table.loc[sel, "token_id"].to_numpy(),
                            task, layers=chosen, seed=seed)
        curve.insert(0, "label", label)
        curves[label] = curve
        best = int(curve.loc[curve.score.idxmax(), "layer"])
        LinearProbe(task).fit(acts.acts[sel, best].astype(np.float32), y).save(
            out / "probes" / label, model=model, layer=best, position_rule=rule, label=label,
            hook=f"blocks.{best}.hook_resid_post", dtype=acts.info["dtype"], tl_mode=acts.info["tl_mode"], role=role)
        row = curve.loc[curve.score.idxmax()]
        typer.echo(f"{label:>18} best layer {best:>2}: {row.score:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]  "
                   f"baseline {row.baseline:.3f}  control {row.control:.3f}  selectivity {row.selectivity:.3f}")
    import pandas as pd

    if curves:
        pd.concat(curves.values()).to_csv(out / "probe_curves.csv", index=False)
        probe_curves(curves, out / "probe_curves")
    typer.echo(str(out))
