"""``negolens negotiate`` and ``negolens chat`` — the negotiation world."""

from __future__ import annotations

from pathlib import Path

import typer

from negolens.agents.runner import RunConfig
from negolens.cli import app
from negolens.cli.options import DATA, DEVICE, OVERWRITE, Extra, out_dir, verb
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
      utterance_tokens=Extra(int, 40, "longest message of an LLM agent, in tokens"),
      out=out_dir("results/negotiate"), data=DATA, overwrite=OVERWRITE, device=DEVICE)
def negotiate(run: RunConfig, buyer: str, seller: str, scenarios: str, n: int, split: str, temperature: float,
              dtype: str, utterance_tokens: int, out: Path, data: Path | None, overwrite: bool, device: str) -> None:
    """Run negotiations; writes dialogues.jsonl (one line per dialogue, resumable), run.json and summary.csv.
    A rerun with the same settings resumes; other settings into the same --out are refused (see --overwrite)."""
    from negolens.agents import load_scenarios, negotiate as play, summarize
    from negolens.agents.runner import finished_ids
    from negolens.distributed import is_main, sharded

    items = load_scenarios(scenarios, n, data=data, split=split, seed=run.seed)
    before = finished_ids(out / "dialogues.jsonl") if not overwrite and out.is_dir() else set()
    with sharded():  # under torchrun / accelerate launch: the dialogues split between processes
        records = play(buyer, seller, items, run, out=out, temperature=temperature, dtype=dtype, overwrite=overwrite,
                       device=device, max_utterance_tokens=utterance_tokens)
    kept = sum(r["id"] in before for r in records)
    if kept:
        typer.echo(f"{kept} of {len(records)} dialogues were already in {out} from this run: "
                   + ("nothing new to play" if kept == len(records) else f"played the other {len(records) - kept}"),
                   err=True)
    if not is_main():  # launched as several processes: the main one writes and reports
        return
    table = summarize(records)
    table.to_csv(out / "summary.csv", index=False)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    typer.echo(str(out))


@app.command()
def chat(
    role: str = typer.Option("buyer", help="the role YOU play: buyer | seller"),
    model: str = typer.Option(DEFAULT_MODEL, help="the other side: " + AGENT_HELP),
    scenario: int = typer.Option(0, help="index into the 36 built-in scenarios (0-35)"),
    max_turns: int = typer.Option(RunConfig.max_turns, help="turn limit"),
    seed: int = typer.Option(0, help="sampling seed"),
    out: Path = typer.Option(Path("results/chat"), help="folder for the transcript: chat-<UTC time>.jsonl, "
                                                        "one record in the format of negotiate's dialogues.jsonl"),
) -> None:
    """Haggle with a model yourself in the terminal: end a message with /offer 250, /counter 230,
    /accept, /reject or /quit (/help lists them). Each line is checked and echoed back; a line that
    is not a legal move is explained and does not use your turn. Ctrl-D or Ctrl-C leaves; the
    transcript is saved either way."""
    import json
    from dataclasses import asdict
    from datetime import datetime, timezone

    from negolens.agents.builtin import builtin_scenarios
    from negolens.agents.factory import make_agent
    from negolens.agents.human import COMMAND_LIST, HumanAgent, check_role
    from negolens.agents.protocol import format_price, other
    from negolens.agents.runner import dialogue_id, run_negotiations
    from negolens.errors import NegolensError

    role = check_role(role)
    items = builtin_scenarios()
    if not 0 <= scenario < len(items):
        raise NegolensError(f"--scenario {scenario} is out of range: "
                            f"the {len(items)} built-in scenarios are 0 to {len(items) - 1}")
    if max_turns < 1:
        raise NegolensError(f"--max-turns must be at least 1, not {max_turns}")
    sc, run = items[scenario], RunConfig(max_turns=max_turns, seed=seed, batch_size=1)
    bot = _Echo(make_agent(model, other(role), models={}), other(role))
    human = HumanAgent(role, ask=input, tell=typer.echo)
    secret = f"budget {format_price(sc.buyer_budget)}" if role == "buyer" else f"minimum {format_price(sc.seller_cost)}"
    typer.echo(f"{sc.title} — listed {format_price(sc.list_price)}. You are the {role}; your {secret}.")
    typer.echo(f"End a message with {COMMAND_LIST}; Ctrl-D leaves.")
    agents = {role: human, other(role): bot}
    try:
        rec = run_negotiations([sc], agents["buyer"], agents["seller"], run, progress=False)[0]
    except KeyboardInterrupt:  # during the bot's turn (at the prompt, HumanAgent turns it into a quit)
        typer.echo(f"\ninterrupted during the {other(role)}'s turn")
        human.left = "interrupted"
        rec = {"id": dialogue_id(sc, 0), **bot.neg.to_record(), "buyer": agents["buyer"].config(),
               "seller": agents["seller"].config(), "run": asdict(run), "interrupted": True}
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path, k = out / f"chat-{stamp}.jsonl", 1
    while path.exists():
        path, k = out / f"chat-{stamp}-{k}.jsonl", k + 1
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    deal = f" at {format_price(rec['deal_price'])}" if rec["deal_price"] is not None else ""
    typer.echo(f"outcome: {rec['outcome'] or 'unfinished'}{deal}")
    typer.echo(f"transcript: {path}")


class _Echo:
    """Wraps the bot: prints its public turns as they happen and keeps the live negotiation."""

    def __init__(self, inner, role: str):
        self.inner, self.role, self.neg = inner, role, None

    def config(self):
        return self.inner.config()

    def act_batch(self, negs, seeds):
        from negolens.agents.protocol import format_price

        self.neg = negs[0]
        inner = self.inner
        moves = inner.act_batch(negs, seeds) if hasattr(inner, "act_batch") else [inner.act(n) for n in negs]
        for mv in moves:
            price = "" if mv.price is None else f" {format_price(mv.price)}"
            typer.echo(f"{self.role} > {mv.utterance}  [{mv.act.value if mv.act else 'none'}{price}]")
        return moves
