"""``negolens train sft | grpo | filtered | select`` — fine-tune agents, and choose a checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from negolens.cli import app
from negolens.cli.options import DATA, DEVICE, OVERWRITE, Extra, out_dir, verb, with_preset
from negolens.training import FilteredConfig, GRPORunConfig, SelectConfig, SFTConfig

train_app = typer.Typer(no_args_is_help=True,
                        help="Fine-tune agents: SFT role specialists (full, LoRA, QLoRA) and the RLVR buyer (GRPO).")
app.add_typer(train_app, name="train")
QUICK = Extra(bool, False, "a few-minute preset for tests and demos (options you set still apply)")


@verb(train_app, SFTConfig, name="sft", quick=QUICK, out=out_dir("results/sft"), data=DATA, overwrite=OVERWRITE,
      device=DEVICE)
def sft(cfg: SFTConfig, quick: bool, out: Path, data: Path | None, overwrite: bool, device: str) -> None:
    """Supervised role specialist on Craigslist Bargains (train: test.jsonl, eval: validation_dev).
    A rerun of a finished run with the same settings does nothing; other settings into the same
    --out are refused (see --overwrite)."""
    from negolens.distributed import is_main, sharded
    from negolens.training import run_sft

    cfg = with_preset(cfg, SFTConfig.quick()) if quick else cfg
    with sharded():  # under accelerate launch / torchrun: data parallel, each process a share of every batch
        result = run_sft(cfg, out, data=data, log=typer.echo if is_main() else None, overwrite=overwrite,
                         device=device)  # losses, tokens/s
    if is_main():
        typer.echo(str(result.checkpoint))


@verb(train_app, GRPORunConfig, name="grpo", quick=QUICK, out=out_dir("results/grpo"), data=DATA,
      overwrite=OVERWRITE, device=DEVICE)
def grpo(cfg: GRPORunConfig, quick: bool, out: Path, data: Path | None, overwrite: bool, device: str) -> None:
    """RLVR buyer: GRPO against a regulated seller on AmazonHistoryPrice (train split), then a
    paired before/after evaluation on held-out products (test split). A rerun resumes from the
    last checkpoint; a larger --steps extends a finished run; other settings are refused (see --overwrite)."""
    from negolens.training import run_grpo

    cfg = with_preset(cfg, GRPORunConfig.quick()) if quick else cfg
    result = run_grpo(cfg, out, data=data, log=typer.echo, overwrite=overwrite, device=device)  # steps, evaluation
    typer.echo(str(result.final))


@verb(train_app, FilteredConfig, name="filtered", out=out_dir("results/filtered"), data=DATA, overwrite=OVERWRITE,
      device=DEVICE)
def filtered(cfg: FilteredConfig, out: Path, data: Path | None, overwrite: bool, device: str) -> None:
    """Reward-filtered fine-tuning (RAFT, expert iteration): the buyer trained on the dialogues of
    GRPO runs or of sampled negotiations on training products whose paper reward clears
    --min-reward, the loss on exactly the tokens the policy sampled; with --teacher, also a scripted
    buyer's dialogues on training products, in the tokens the student would have sampled (behaviour
    cloning). A rerun of the same run does nothing; another run into the same --out is refused
    (see --overwrite)."""
    from negolens.training import run_filtered

    typer.echo(str(run_filtered(cfg, out, log=typer.echo, overwrite=overwrite, device=device, data=data)))


@verb(train_app, SelectConfig, name="select", out=out_dir("results/select"), data=DATA, overwrite=OVERWRITE,
      device=DEVICE)
def select(cfg: SelectConfig, out: Path, data: Path | None, overwrite: bool, device: str) -> None:
    """Choose a checkpoint on validation products: training products that neither the warm
    start's teacher (--teacher-products) nor any run in --played played. Every candidate plays the
    same products greedily; the highest reward among those whose overshoot rate is at most
    --max-overshoot wins. A GRPO run among the candidates is always kept out of the validation
    products. Writes OUT/selection.csv and each candidate's dialogues; prints the chosen folder
    last. Other settings into the same --out are refused (see --overwrite)."""
    from negolens.training import choose_checkpoint

    choice = choose_checkpoint(cfg, out, data=data, device=device, log=typer.echo, overwrite=overwrite)
    typer.echo(choice.summary())
    typer.echo(choice.chosen)
