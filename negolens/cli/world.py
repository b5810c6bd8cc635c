"""``negolens negotiate`` and ``negolens chat`` — the negotiation world."""

from __future__ import annotations

from pathlib import Path

import typer

from negolens.agents.runner import RunConfig
from negolens.cli import app
from negolens.cli.options import DATA, Extra, out_dir, verb
from negolens.zoo import DEFAULT_MODEL

AGENT_HELP = "MODEL[:personality|persona][+cot] or rule[:personality|persona]"


@verb(app, RunConfig,
      buyer=Extra(str, DEFAULT_MODEL, f"the buyer: {AGENT_HELP}"),
      seller=Extra(str, "rule", f"the seller: {AGENT_HELP}"),
      scenarios=Extra(str, "builtin", "craigslist | amazon | builtin"),
      n=Extra(int, 30, "number of scenarios (sampled with --seed)"),
      split=Extra(str, "test", "craigslist: test|dev; amazon: train|test|all"),
      temperature=Extra(float, 0.0, "sampling temperature of LLM agents (0 = greedy)"),
      dtype=Extra(str, "float32", "float32 | bfloat16"),
      out=out_dir("results/negotiate"), data=DATA)
def negotiate(run: RunConfig, buyer: str, seller: str, scenarios: str, n: int, split: str, temperature: float,
              dtype: str, out: Path, data: Path | None) -> None:
    """Run negotiations; writes dialogues.jsonl (one line per dialogue, resumable) and summary.csv."""
    from negolens.agents import load_scenarios, negotiate as play, summarize

    items = load_scenarios(scenarios, n, data=data, split=split, seed=run.seed)
    records = play(buyer, seller, items, run, out=out, temperature=temperature, dtype=dtype)
    table = summarize(records)
    table.to_csv(out / "summary.csv", index=False)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    typer.echo(str(out))


@app.command()
def chat(
    role: str = typer.Option("buyer", help="the role YOU play: buyer | seller"),
    model: str = typer.Option(DEFAULT_MODEL, help="the other side: " + AGENT_HELP),
    scenario: int = typer.Option(0, help="index into the built-in scenarios"),
    max_turns: int = typer.Option(RunConfig.max_turns, help="turn limit"),
    seed: int = typer.Option(0, help="sampling seed"),
) -> None:
    """Haggle with a model yourself in the terminal (end a message with /offer 120, /accept …)."""
    from negolens.agents.builtin import builtin_scenarios
    from negolens.agents.factory import make_agent
    from negolens.agents.human import HumanAgent
    from negolens.agents.protocol import other
    from negolens.agents.runner import run_negotiations

    items = builtin_scenarios()
    sc = items[scenario % len(items)]
    s = sc.to_dict()
    secret = f"budget ${s['buyer_budget']:g}" if role == "buyer" else f"minimum ${s['seller_cost']:g}"
    typer.echo(f"{sc.title} — listed ${sc.list_price:g}. You are the {role}; your {secret}.")
    bot = _Echo(make_agent(model, other(role), models={}), other(role))
    agents = {role: HumanAgent(role), other(role): bot}
    rec = run_negotiations([sc], agents["buyer"], agents["seller"],
                           RunConfig(max_turns=max_turns, seed=seed, batch_size=1), progress=False)[0]
    typer.echo(f"outcome: {rec['outcome']}" + (f" at ${rec['deal_price']:g}" if rec["deal_price"] else ""))


class _Echo:
    """Wraps the bot: prints its public turns as they happen."""

    def __init__(self, inner, role: str):
        self.inner, self.role = inner, role

    def config(self):
        return self.inner.config()

    def act_batch(self, negs, seeds):
        inner = self.inner
        moves = inner.act_batch(negs, seeds) if hasattr(inner, "act_batch") else [inner.act(n) for n in negs]
        for mv in moves:
            price = "" if mv.price is None else f" ${mv.price:g}"
            typer.echo(f"{self.role} > {mv.utterance}  [{mv.act.value if mv.act else 'none'}{price}]")
        return moves
