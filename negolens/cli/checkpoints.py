"""``negolens mechanisms RUN_DIR`` — the mechanism battery on every checkpoint of a training run."""

from __future__ import annotations

from pathlib import Path

import typer

from negolens.analysis.checkpoints import CheckpointConfig
from negolens.cli import app
from negolens.cli.options import DATA, DEVICE, FORMAT, OVERWRITE, STRICT, TRANSCRIPTS, Extra, out_dir, verb

RUN = Extra(Path, ..., "a training run folder: the --out of `negolens train grpo` (checkpoint-N/, final/, "
                       "steps.jsonl) or of `negolens train sft`", argument=True)
SIGNAL = Extra(str, "accept_projection", "leading indicator: the measure of the table used as the internal signal "
                                         "(accept_projection | accept_logit)")
BEHAVIOUR = Extra(str, "deal_rate", "leading indicator: the steps.jsonl statistic it should predict")


@verb(app, CheckpointConfig, run=RUN, transcripts=TRANSCRIPTS, format=FORMAT, strict=STRICT, signal=SIGNAL,
      behaviour=BEHAVIOUR, out=out_dir("results/mechanisms"), data=DATA, overwrite=OVERWRITE, device=DEVICE)
def mechanisms(cfg: CheckpointConfig, run: Path, transcripts: str, format: str, strict: bool, signal: str,
               behaviour: str, out: Path, data: Path | None, overwrite: bool, device: str) -> None:
    """Attention on prices/verbs, probe curves and the accept head sweep at every checkpoint of a run,
    on the same held-out transcripts and decision points, aligned with the run's behaviour phases;
    a leading-indicator test; curves over training steps. Writes mechanisms.csv, phases.csv, leading.csv
    and mechanisms_curves.png/.pdf. OUT/run.json records the settings (see --overwrite)."""
    from negolens.agents import load_transcripts
    from negolens.analysis.checkpoints import checkpoint_battery, list_checkpoints, run_phases
    from negolens.analysis.leading import leading_indicator
    from negolens.config import to_dict
    from negolens.figures.checkpoints import checkpoint_curves
    from negolens.runs import model_refs, refuse_file, start_run
    from negolens.training.grpo import read_steps
    from negolens.training.phases import phase_spans

    refuse_file(out)
    found = list_checkpoints(run, cfg.include_start)  # a clear error before anything is written
    models = {}
    for ck in found:
        models.update(model_refs(ck.path))
    start_run(out, {**to_dict(cfg), "run": str(run), "checkpoints": [c.path for c in found], "transcripts": transcripts,
                    "format": format, "strict": strict, "signal": signal, "behaviour": behaviour},
              kind="mechanisms", overwrite=overwrite, models=models, data=data,
              owns=("mechanisms.csv", "phases.csv", "leading.csv", "mechanisms_curves.png", "mechanisms_curves.pdf"))
    typer.echo("checkpoints: " + ", ".join(f"{c.name} (step {c.step})" for c in found))
    phases = run_phases(run)
    items = load_transcripts(transcripts, None, data, format=format, strict=strict)
    table = checkpoint_battery(found, items, cfg, phases=phases, device=device, log=typer.echo)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "mechanisms.csv", index=False)
    phases.to_csv(out / "phases.csv", index=False)
    fmt = {"index": False, "float_format": lambda v: f"{v:.3g}"}
    if not phases.empty:
        typer.echo(phase_spans(phases).to_string(index=False))
    typer.echo(table.head(20).to_string(**fmt))
    steps = read_steps(run)
    if steps and (table.measure == signal).any():
        lead = leading_indicator(table, steps, signal, behaviour, seed=cfg.seed)
        lead.lags.assign(signal=lead.signal, behaviour=behaviour, best_lag=lead.best_lag, p=lead.p).to_csv(
            out / "leading.csv", index=False)
        typer.echo(lead.summary())
    else:
        typer.echo(f"leading indicator: skipped ({'no steps.jsonl in the run' if not steps else f'no {signal} rows'})")
    checkpoint_curves(table, phases, out / "mechanisms_curves")
    typer.echo(str(out))
