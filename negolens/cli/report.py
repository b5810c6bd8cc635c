"""``negolens figures RUN`` — redraw a study's figures and report from its saved tables."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from negolens.cli import app
from negolens.errors import NegolensError


@app.command()
def figures(
    results: Path = typer.Argument(..., help="a study run directory (results/<run-id>)"),
    out: Optional[Path] = typer.Option(None, help="figure folder (default RESULTS/figures)"),
    report: bool = typer.Option(True, help="also rewrite RESULTS/report.html"),
) -> None:
    """Redraw every figure (PNG + PDF) of a study from its saved results, without recomputing."""
    from negolens.figures.redraw import regenerate
    from negolens.figures.report import write_report

    if not results.is_dir():
        raise NegolensError(f"{results} is not a directory: pass a study run directory (results/<run-id>)")
    drawn = regenerate(results, out, log=lambda m: typer.echo(m, err=True))
    if not drawn:
        raise NegolensError(f"no study results found in {results} (expected e.g. negotiate/conditions.csv)")
    if report:
        typer.echo(str(write_report(results, results / "report.html")))
