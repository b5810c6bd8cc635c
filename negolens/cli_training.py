"""CLI verb ``negolens train`` (sub-commands: ``sft``, ``grpo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

train_app = typer.Typer(no_args_is_help=True, help="Fine-tune agents: SFT role specialists (full, LoRA, QLoRA) and the RLVR buyer (GRPO).")


@train_app.command("sft")
def sft(
    model: str = typer.Option("smollm2-135m-instruct", help="base: zoo name or model directory"),
    role: str = typer.Option("buyer", help="buyer | seller | generalist"),
    mode: str = typer.Option("lora", help="full | lora | qlora (CUDA only)"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps (default 200; --quick 30)"),
    batch_size: int = typer.Option(8),
    lr: Optional[float] = typer.Option(None, help="default 2e-4 (lora) / 3e-5 (full)"),
    max_tokens: int = typer.Option(512),
    train_dialogues: Optional[int] = typer.Option(None, help="Craigslist test dialogues to train on (default all)"),
    eval_examples: int = typer.Option(64, help="held-out examples from validation_dev"),
    quick: bool = typer.Option(False, help="a few-minute preset for tests and demos"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 (autocast matmuls; see `negolens bench sft`)"),
    eval_every: int = typer.Option(50, help="held-out loss every N steps (and at the end)"),
    out: Path = typer.Option(Path("results/sft"), help="checkpoint directory"),
    data: Optional[Path] = typer.Option(None, help="data directory"),
    seed: int = typer.Option(0),
) -> None:
    """Supervised role specialist on Craigslist Bargains (train: test.jsonl, eval: validation_dev)."""
    from negolens.cli_probes import _load
    from negolens.agents.transcripts import load_transcripts
    from negolens.training.data import build_examples
    from negolens.training.sft import SFTConfig, train_sft

    if quick:
        steps, train_dialogues, eval_examples, max_tokens = steps or 30, train_dialogues or 80, min(eval_examples, 24), 384
    cfg = SFTConfig(model=model, role=role, mode=mode, steps=steps or 200, batch_size=batch_size, max_tokens=max_tokens,
                    lr=lr or (2e-4 if mode != "full" else 3e-5), seed=seed, dtype=dtype,
                    eval_every=eval_every)
    nm = _load(model)
    train = build_examples(nm, load_transcripts("craigslist-test", train_dialogues, data), role, max_tokens)
    held = build_examples(nm, load_transcripts("craigslist-dev", None, data), role, max_tokens)[:eval_examples]
    path = train_sft(nm, cfg, train, held, out)
    import json

    manifest = json.loads((path / "negolens_manifest.json").read_text())
    for point in manifest["eval_curve"]:
        typer.echo(f"step {point['step']:>4}: held-out loss {point['eval_loss']:.3f}")
    typer.echo(f"{manifest['tokens_per_s']:.0f} tokens/s; checkpoint: {path}")


@train_app.command("grpo")
def grpo(
    model: str = typer.Option("smollm2-135m-instruct", help="starting buyer: zoo name or checkpoint (e.g. the SFT buyer)"),
    seller: str = typer.Option("rule", help="regulated counterpart: rule[:personality] or MODEL spec"),
    scenarios: str = typer.Option("amazon", help="amazon (train/test splits) | builtin (hashed 80/20 split)"),
    steps: Optional[int] = typer.Option(None, help="GRPO steps (default 40; --quick 4)"),
    products_per_step: int = typer.Option(2, help="AmazonHistoryPrice train products per step"),
    group_size: int = typer.Option(4, help="G: negotiations per product (advantages are group-relative)"),
    lr: float = typer.Option(5e-5),
    beta: float = typer.Option(0.04, help="KL coefficient to the starting model"),
    max_turns: int = typer.Option(8),
    mode: str = typer.Option("lora", help="lora | full"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16"),
    save_every: int = typer.Option(10, help="checkpoint every N steps (a rerun resumes from the last)"),
    eval_products: int = typer.Option(40, help="held-out test products for the before/after evaluation (0: skip)"),
    quick: bool = typer.Option(False, help="a few-minute preset for tests and demos"),
    out: Path = typer.Option(Path("results/grpo"), help="run directory"),
    data: Optional[Path] = typer.Option(None, help="data directory"),
    seed: int = typer.Option(0),
) -> None:
    """RLVR buyer: GRPO against a regulated seller on AmazonHistoryPrice (train split), then a
    paired before/after evaluation on held-out products (test split)."""
    from negolens.training.evaluate import format_comparison, paired_comparison, play
    from negolens.training.grpo import GRPORunConfig, train_grpo

    if quick:
        steps, eval_products, max_turns, save_every = steps or 4, min(eval_products, 8), min(max_turns, 6), 2
    cfg = GRPORunConfig(model=model, seller=seller, source=scenarios, steps=steps or 40, products_per_step=products_per_step,
                        group_size=group_size, lr=lr, beta=beta, max_turns=max_turns, mode=mode, dtype=dtype,
                        save_every=save_every, seed=seed)
    train = _split(scenarios, None, data, "train", seed)
    from negolens.hooked import load
    from negolens.zoo import ZOO

    start = load(model, fetch=model in ZOO, attn_implementation="sdpa")  # no attention patterns needed here
    final = train_grpo(start, cfg, train, out)
    typer.echo(f"checkpoint: {final}")
    if eval_products:
        held = _split(scenarios, eval_products, data, "test", seed)
        before = play(model, held, seller, out / "eval-start", max_turns=max_turns, seed=seed)
        after = play(final, held, seller, out / "eval-final", max_turns=max_turns, seed=seed)
        table = paired_comparison(before, after)
        table.to_json(out / "eval.json", orient="records", indent=2)
        typer.echo(format_comparison(table, "start", "GRPO"))


def _split(source: str, n, data, split: str, seed: int):
    """Train or held-out scenarios: AmazonHistoryPrice's split, or a hashed 80/20 split of the built-ins."""
    import random

    from negolens.agents.scenarios import _split_of, load_scenarios

    if source != "builtin":
        return load_scenarios(source, n, data=data, split=split, seed=seed)
    items = [s for s in load_scenarios("builtin") if _split_of(s.id) == split]
    return items if n is None or n >= len(items) else random.Random(seed).sample(items, n)
