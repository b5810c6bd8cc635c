"""``negolens ablate`` — every head ablated at decision points, linked to behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from negolens.analysis import AblationConfig
from negolens.analysis.anchoring_study import AnchoringConfig
from negolens.cli import app
from negolens.cli.options import DATA, DEVICE, FORMAT, MODEL, OVERWRITE, STRICT, TRANSCRIPTS, Extra, out_dir, verb
from negolens.errors import NegolensError


@verb(app, AblationConfig, AnchoringConfig, model=MODEL, transcripts=TRANSCRIPTS, format=FORMAT, strict=STRICT,
      attention=Extra(Optional[Path], None, "attention_heads.csv from `negolens attention` to link heads"),
      steer=Extra(Optional[Path], None, "a saved probe folder (negolens probe …/probes/LABEL) to steer along"),
      anchoring=Extra(bool, False, "run the anchoring study instead of the head sweep: next offer vs the "
                                   "counterpart's opening price (× --factors), patched per layer and head; "
                                   "writes anchoring_*.csv and anchoring.png"),
      out=out_dir("results/ablation"), data=DATA, overwrite=OVERWRITE, device=DEVICE)
def ablate(cfg: AblationConfig, anchor_cfg: AnchoringConfig, model: str, transcripts: str, format: str, strict: bool,
           attention: Path | None, steer: Path | None, anchoring: bool, out: Path, data: Path | None, overwrite: bool,
           device: str) -> None:
    """Ablate every head at decision points; heatmap, top heads (with their attention profile),
    whole negotiations re-run with the top heads ablated vs random heads, steering along a probe.
    With --anchoring: the anchoring study instead (options marked "anchoring:").
    OUT/run.json records the settings; other settings into the same --out are refused (see --overwrite)."""
    import pandas as pd

    if anchoring:
        return anchor(anchor_cfg, model, transcripts, format, strict, out, data, overwrite, device)

    import negolens
    from negolens.agents import load_transcripts
    from negolens.analysis import run_ablation
    from negolens.config import to_dict
    from negolens.distributed import is_main, sharded
    from negolens.runs import fingerprint, model_refs, refuse_file, start_run

    if attention is not None and not attention.is_file():
        raise NegolensError(f"--attention {attention}: no such file (pass attention_heads.csv from `negolens attention`)")
    if steer is not None and not (steer / "direction.npy").is_file():
        raise NegolensError(f"--steer {steer}: not a saved probe folder (expected {steer}/direction.npy; "
                            "run `negolens probe` and pass OUT/probes/LABEL)")
    refuse_file(out)
    models = model_refs(model)
    with sharded():  # under torchrun / accelerate launch: decision points and re-runs split between processes
        start_run(out, {**to_dict(cfg), "model": model, "model_content": models.get(model), "transcripts": transcripts,
                        "format": format, "strict": strict, "attention": None if attention is None else str(attention),
                        "attention_content": fingerprint(attention), "steer": None if steer is None else str(steer),
                        "steer_content": fingerprint(steer)},
                  kind="ablate", overwrite=overwrite, models=models, data=data,
                  owns=("ablation_*.csv", "ablation_*.png", "ablation_*.pdf", "ablation_*.svg", "top_heads.csv",
                        "rerun.csv", "steering.csv"))
        att = pd.read_csv(attention) if attention is not None else None
        result = run_ablation(negolens.load(model, device=device),
                              load_transcripts(transcripts, None, data, format=format, strict=strict), cfg,
                              attention=att, steer_probe=steer)
    if not is_main():
        return
    save_ablation(result, cfg, out)
    fmt = {"index": False, "float_format": lambda v: f"{v:.3g}"}
    tables = result.tables()
    offer = next((t for k, t in tables.items() if k.startswith("ablation_offer")), None)
    if offer is not None:
        best = offer.assign(abs=offer.effect.abs()).sort_values("abs", ascending=False).head(cfg.top)
        typer.echo("offer: Δ log(greedy next offer / list) when a head is zero-ablated (largest |effect|):")
        typer.echo(best.drop(columns="abs").to_string(**fmt))
    typer.echo(tables["top_heads"].to_string(**fmt))
    if "rerun" in tables:
        re = tables["rerun"]
        keep = re[re.metric.isin(["deal", "reward", "overshoot", "first_offer_ratio_buyer", "bargained_ratio"])]
        typer.echo(keep[["condition", "metric", "mean", "ci_low", "ci_high", "n"]].to_string(**fmt))
    if "steering" in tables:
        typer.echo("steering (Δ logit accept − counter at decision points):")
        typer.echo(tables["steering"].to_string(**fmt))
    typer.echo(str(out))


def save_ablation(result, cfg: AblationConfig, out: Path) -> None:
    """Write every table as CSV and the head heatmaps (used by the verb and the study)."""
    from negolens.figures.heads import head_heatmap

    out.mkdir(parents=True, exist_ok=True)
    titles = {f"ablation_accept_{cfg.kind}": f"{cfg.kind} ablation: Δ logit(accept − counter)",
              "ablation_offer_zero": "zero ablation: Δ log(greedy next offer / list)"}
    for name, table in result.tables().items():
        table.to_csv(out / f"{name}.csv", index=False)
        if name in titles and not (name.startswith("ablation_accept") and cfg.screen_top):
            head_heatmap(table, out / name, title=titles[name])


def anchor(cfg: AnchoringConfig, model: str, transcripts: str, format: str, strict: bool, out: Path,
           data: Path | None, overwrite: bool, device: str) -> None:
    """``negolens ablate --anchoring``: :func:`~negolens.analysis.anchoring_study.run_anchoring`, its
    tables as ``anchoring_*.csv`` and :func:`~negolens.figures.anchoring.anchoring_figure`."""
    import negolens
    from negolens.agents import load_transcripts
    from negolens.analysis.anchoring_study import run_anchoring
    from negolens.config import to_dict
    from negolens.distributed import world
    from negolens.figures.anchoring import anchoring_figure
    from negolens.runs import model_refs, refuse_file, start_run

    if world().size > 1:
        raise NegolensError("--anchoring runs in one process: launch it without torchrun / accelerate launch")
    refuse_file(out)
    models = model_refs(model)
    start_run(out, {**to_dict(cfg), "anchoring": True, "model": model, "model_content": models.get(model),
                    "transcripts": transcripts, "format": format, "strict": strict},
              kind="ablate", overwrite=overwrite, models=models, data=data,
              owns=("anchoring_*.csv", "anchoring*.png", "anchoring*.pdf"))
    result = run_anchoring(negolens.load(model, device=device),
                           load_transcripts(transcripts, None, data, format=format, strict=strict), cfg, progress=True)
    out.mkdir(parents=True, exist_ok=True)
    tables = result.tables()
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    anchoring_figure(tables["anchoring_offers"], tables["anchoring_effect"], tables["anchoring_layers"],
                     out / "anchoring", heads=tables.get("anchoring_heads"))
    fmt = {"index": False, "float_format": lambda v: f"{v:.3g}"}
    e = tables["anchoring_effect"].iloc[0]
    typer.echo(f"anchoring coefficient d log(offer) / d log(opening): {e.coefficient:.3g} "
               f"[{e.ci_low:.3g}, {e.ci_high:.3g}] (n = {int(e.n)} of {int(e.n_pairs)} pairs)")
    cols = ["component", "share", "ci_low", "ci_high", "n_pairs"]
    layers = tables["anchoring_layers"]
    typer.echo("share of the next-digit effect restored per layer (patching high → low anchor):")
    typer.echo(layers[cols].to_string(**fmt))
    if "anchoring_heads" in tables:
        typer.echo("top heads (screen):")
        typer.echo(tables["anchoring_heads"].nlargest(cfg.top, "share")[cols].to_string(**fmt))
    if "anchoring_shares" in tables:
        typer.echo("share of the greedy-offer effect, each component alone:")
        typer.echo(tables["anchoring_shares"].drop(columns=["size"]).to_string(**fmt))
    if "anchoring_mediating_set" in tables:
        typer.echo(f"smallest head set carrying ≥ {cfg.set_share:g} of the offer effect (last row):")
        typer.echo(tables["anchoring_mediating_set"].to_string(**fmt))
    if "anchoring_final_effect" in tables:
        typer.echo("final price (whole negotiations vs the rule seller):")
        typer.echo(tables["anchoring_final_effect"].to_string(**fmt))
    typer.echo(str(out))
