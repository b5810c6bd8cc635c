"""``negolens metrics`` — negolens' metrics on any transcripts, beside the metrics their tool stored."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from negolens.cli import app
from negolens.cli.options import DATA, FORMAT, STRICT, Extra, out_dir, verb


@verb(app, transcripts=Extra(str, ..., "a transcript file or folder (open format, dialogues.jsonl, AgreeMate "
                                      "CSV, chat log), or craigslist-dev | craigslist-test", argument=True),
      format=FORMAT, strict=STRICT,
      by=Extra(str, "", "comma list of metadata keys to group by, e.g. buyer_model,buyer_cot (default: one group)"),
      metrics=Extra(str, "", "comma list of negolens metrics to show (default: all)"),
      n=Extra(Optional[int], None, "first N transcripts (default all)"),
      seed=Extra(int, 0, "seed of the bootstrap CIs"),
      out=out_dir("results/metrics"), data=DATA)
def metrics(transcripts: str, format: str, strict: bool, by: str, metrics: str, n: int | None, seed: int, out: Path,
            data: Path | None) -> None:
    """Import transcripts and report negolens' metrics (mean, 95% CI, n) per group, with any metrics
    the source stored (AgreeMate) side by side and a note on each definition that differs.
    Writes OUT/metrics.csv and the transcripts in negolens' open format (OUT/transcripts.jsonl)."""
    from negolens.agents import load_transcripts, metrics_table, write_transcripts

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = load_transcripts(transcripts, n, data, format=format, strict=strict)
    for w in caught:
        typer.echo(f"negolens: warning: {w.message}", err=True)
    keys = tuple(k.strip() for k in by.split(",") if k.strip())
    names = [m.strip() for m in metrics.split(",") if m.strip()] or None
    table = metrics_table(items, by=keys, metrics=names, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "metrics.csv", index=False)
    write_transcripts(items, out / "transcripts.jsonl")
    typer.echo(f"{len(items)} transcripts" + (f", grouped by {', '.join(keys)}" if keys else ""))
    typer.echo(format_table(table, keys))
    typer.echo(str(out))


def format_table(table, keys: tuple[str, ...]) -> str:
    """The metrics table as text: ``mean [ci]`` columns, stored metrics beside, notes listed once below."""
    import pandas as pd

    def cell(mean, lo, hi) -> str:
        return "—" if pd.isna(mean) else f"{mean:.3g} [{lo:.3g}, {hi:.3g}]"

    rows = []
    for r in table.itertuples(index=False):
        row = {k: getattr(r, k) for k in keys}
        row["metric"] = r.metric if isinstance(r.metric, str) else ""
        row["negolens"] = cell(r.mean, r.ci_low, r.ci_high) if row["metric"] else ""
        row["n"] = r.n if row["metric"] else ""
        if "stored_metric" in table.columns:
            row["stored"] = r.stored_metric if isinstance(r.stored_metric, str) else ""
            row["stored value"] = cell(r.stored_mean, r.stored_ci_low, r.stored_ci_high) if row["stored"] else ""
            row["stored n"] = r.stored_n if row["stored"] else ""
        rows.append(row)
    text = pd.DataFrame(rows).to_string(index=False)
    if "note" in table.columns:
        notes = table.dropna(subset=["stored_metric"]).drop_duplicates("stored_metric")
        text += "\n\nstored vs negolens definitions:\n" + "\n".join(
            f"  {r.stored_metric}: {r.note}" for r in notes.itertuples(index=False))
    return text
