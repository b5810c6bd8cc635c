"""CLI verb ``negolens train`` (sub-commands: ``sft``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

train_app = typer.Typer(no_args_is_help=True, help="Fine-tune role specialists (SFT: full, LoRA, QLoRA).")


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
                    lr=lr or (2e-4 if mode != "full" else 3e-5), seed=seed, dtype=dtype)
    nm = _load(model)
    train = build_examples(nm, load_transcripts("craigslist-test", train_dialogues, data), role, max_tokens)
    held = build_examples(nm, load_transcripts("craigslist-dev", None, data), role, max_tokens)[:eval_examples]
    path = train_sft(nm, cfg, train, held, out)
    import json

    manifest = json.loads((path / "negolens_manifest.json").read_text())
    for point in manifest["eval_curve"]:
        typer.echo(f"step {point['step']:>4}: held-out loss {point['eval_loss']:.3f}")
    typer.echo(f"{manifest['tokens_per_s']:.0f} tokens/s; checkpoint: {path}")
