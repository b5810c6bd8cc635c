"""``negolens attention`` and ``negolens probe`` — read internals on teacher-forced transcripts."""

from __future__ import annotations

from pathlib import Path

import typer

from negolens.cli import app
from negolens.cli.options import (DATA, DEVICE, FORMAT, MODEL, N_TRANSCRIPTS, OVERWRITE, STRICT, TRANSCRIPTS, Extra,
                                  out_dir, verb)
from negolens.errors import NegolensError
from negolens.analysis.beliefs import CausalConfig
from negolens.probes import AttentionConfig, ProbeConfig
from negolens.probes.beliefs import BeliefConfig

ROLE = Extra(str, "buyer", "whose view to render: buyer | seller")


@verb(app, AttentionConfig, model=MODEL, transcripts=TRANSCRIPTS, format=FORMAT, strict=STRICT, role=ROLE, n=N_TRANSCRIPTS,
      show=Extra(str, "0:1.3", "circuitsvis view DIALOGUE:LAYER.HEAD"), out=out_dir("results/attention"), data=DATA,
      overwrite=OVERWRITE, device=DEVICE)
def attention(cfg: AttentionConfig, model: str, transcripts: str, format: str, strict: bool, role: str, n: int | None, show: str, out: Path,
              data: Path | None, overwrite: bool, device: str) -> None:
    """Per-head attention on verbs and prices vs matched controls: table, heatmaps, circuitsvis HTML.
    OUT/run.json records the settings; other settings into the same --out are refused (see --overwrite)."""
    import negolens
    from negolens.agents import load_transcripts
    from negolens.config import to_dict
    from negolens.distributed import is_main, sharded
    from negolens.probes import claim, record_attention
    from negolens.runs import model_refs, start_run

    dialogue, layer, head = parse_show(show)
    models = model_refs(model)
    with sharded():  # under torchrun / accelerate launch: the dialogues split between processes
        start_run(out, {**to_dict(cfg), "model": model, "model_content": models.get(model), "transcripts": transcripts,
                        "format": format, "strict": strict, "role": role, "n": n, "show": show},
                  kind="attention", overwrite=overwrite, models=models, data=data,
                  owns=("attention_heads.csv", "attention_*.png", "attention_*.pdf", "attention_*.svg",
                        "attention_d*_L*H*.html"))
        nm = negolens.load(model, device=device)
        items = load_transcripts(transcripts, n, data, format=format, strict=strict)
        check_show(nm, items, (dialogue, layer, head))  # before the (long) recording, not after
        table = record_attention(nm, items, view=role, config=cfg)
    if not is_main():
        return
    save_attention(nm, items, table, cfg, role, out, (dialogue, layer, head))
    cols = ["score", "layer", "head", "tagged", "control", "effect", "ci_low", "ci_high", "p", "q"]
    top = table.sort_values("effect", ascending=False).groupby("score").head(3)
    typer.echo(top[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    c = claim(table, "verb_args", 1, min(3, nm.shape.n_heads - 1))
    typer.echo(f"AgreeMate's 'L1H3: verbs → arguments' on {model}: effect {c['effect']:.3g} "
               f"[{c['ci_low']:.3g}, {c['ci_high']:.3g}], q = {c['q']:.3g}, rank {c['rank']}/{c['of']}")
    typer.echo(str(out))


def parse_show(show: str) -> tuple[int, int, int]:
    """``"0:1.3"`` → (dialogue 0, layer 1, head 3); a clear error otherwise."""
    try:
        d, lh = show.split(":")
        layer, head = lh.split(".")
        return int(d), int(layer), int(head)
    except ValueError:
        raise NegolensError(f"--show {show!r}: expected DIALOGUE:LAYER.HEAD, e.g. 0:1.3") from None


def check_show(model, items, show: tuple[int, int, int]) -> tuple[int, int, int]:
    """``show`` if that dialogue and head exist, else a clear error naming the valid ranges."""
    dialogue, layer, head = show
    if not (0 <= dialogue < len(items) and 0 <= layer < model.shape.n_layers and 0 <= head < model.shape.n_heads):
        raise NegolensError(f"--show {dialogue}:{layer}.{head} is out of range: {len(items)} dialogues, "
                            f"{model.shape.n_layers} layers × {model.shape.n_heads} heads")
    return show


def save_attention(model, items, table, cfg: AttentionConfig, role: str, out: Path, show) -> None:
    """Write the head table, the heatmaps and one circuitsvis view (used by the verb and the study)."""
    from negolens.figures.heads import score_heatmaps
    from negolens.probes import attention_html

    dialogue, layer, head = check_show(model, items, show)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "attention_heads.csv", index=False)
    score_heatmaps(table, out)
    attention_html(model, items[dialogue], role, layer, head, out / f"attention_d{dialogue}_L{layer}H{head}.html",
                   max_tokens=cfg.max_tokens)


BELIEFS = Extra(bool, False, "run the belief study instead: rule-vs-rule dialogues with varied seller costs (ignores "
                             "--transcripts, --n, --format, --role, --labels), belief probes vs their leakage control, "
                             "patching and steering of the buyer's next offer")


@verb(app, ProbeConfig, BeliefConfig, CausalConfig, model=MODEL, transcripts=TRANSCRIPTS, format=FORMAT, strict=STRICT,
      role=ROLE, n=N_TRANSCRIPTS, beliefs=BELIEFS, out=out_dir("results/probes"), data=DATA, overwrite=OVERWRITE,
      device=DEVICE)
def probe(cfg: ProbeConfig, belief_cfg: BeliefConfig, causal_cfg: CausalConfig, model: str, transcripts: str, format: str,
          strict: bool, role: str, n: int | None, beliefs: bool, out: Path, data: Path | None, overwrite: bool,
          device: str) -> None:
    """Linear probes for negotiation state, per layer, with baselines, control tasks and CIs
    (activations are cached in OUT/activations and reused when the inputs match). With --beliefs:
    the belief study (OUT/belief_*.csv and beliefs.png). OUT/run.json records the settings; other
    settings into the same --out are refused (see --overwrite)."""
    import negolens
    from negolens.agents import load_transcripts
    from negolens.config import to_dict
    from negolens.probes import fit_probes
    from negolens.runs import model_refs, start_run

    models = model_refs(model)
    if beliefs:
        from negolens.analysis.belief_study import FILES, run_belief_study
        from negolens.figures.beliefs import belief_figure

        start_run(out, {**to_dict(cfg), **to_dict(belief_cfg), **to_dict(causal_cfg), "model": model,
                        "model_content": models.get(model), "beliefs": True},
                  kind="probe-beliefs", overwrite=overwrite, models=models, data=data,
                  owns=("activations", *FILES.values(), "beliefs.png", "beliefs.pdf"))
        study = run_belief_study(negolens.load(model, device=device), belief_cfg, cfg, causal_cfg,
                                 cache=out / "activations")
        study.save(out)
        belief_figure(study.probes.curves, study.tables["patching"], study.tables["steering"], out / "beliefs")
        for line in study.summary():
            typer.echo(line)
        typer.echo(str(out))
        return
    start_run(out, {**to_dict(cfg), "model": model, "model_content": models.get(model), "transcripts": transcripts,
                    "format": format, "strict": strict, "role": role, "n": n},
              kind="probe", overwrite=overwrite, models=models, data=data,
              owns=("probes", "probe_curves.csv", "probe_curves.png", "probe_curves.pdf", "probe_curves.svg"))
    items = load_transcripts(transcripts, n, data, format=format, strict=strict)
    result = fit_probes(negolens.load(model, device=device), items, view=role, config=cfg, cache=out / "activations",
                        model_name=model, log=lambda m: typer.echo(m, err=True))
    save_probes(result, out)
    for line in result.summary():
        typer.echo(line)
    typer.echo(str(out))


def save_probes(result, out: Path) -> None:
    """Write the probe curves (CSV + figure) and every fitted probe (used by the verb and the study)."""
    from negolens.figures.probes import probe_curves

    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "probes")
    if len(result.curves):
        result.curves.to_csv(out / "probe_curves.csv", index=False)
        probe_curves(result.curves, out / "probe_curves")
