"""CLI options are derived from the config dataclasses: one source for defaults and help."""

from dataclasses import dataclass

import typer
from typer.testing import CliRunner

from negolens.agents.runner import RunConfig
from negolens.cli import app
from negolens.cli.options import Extra, config_fields, verb, with_preset
from negolens.config import help_of, option


@dataclass
class A:
    steps: int = option(5, "how many steps")
    seed: int = option(0, "the seed")
    names: tuple[str, ...] = option(("x", "y"), "comma list")
    hidden: str = option("h", "not on the CLI", cli=False)


@dataclass
class B:
    seed: int = option(0, "the seed")
    rate: float | None = option(None, "optional rate")


def test_verb_builds_options_from_configs():
    sub = typer.Typer()
    seen = {}

    @verb(sub, A, B, name="go", tag=Extra(str, "t", "an extra option"))
    def go(a: A, b: B, tag: str) -> None:
        """Do it."""
        seen.update(a=a, b=b, tag=tag)

    @sub.command()
    def other() -> None:
        """Keeps typer in multi-command mode."""

    res = CliRunner().invoke(sub, ["go", "--steps", "7", "--seed", "3", "--names", "p,q", "--rate", "0.5"])
    assert res.exit_code == 0, res.output
    assert seen["a"] == A(steps=7, seed=3, names=("p", "q")) and seen["b"] == B(seed=3, rate=0.5)
    assert seen["tag"] == "t"
    helptext = CliRunner().invoke(sub, ["go", "--help"]).output
    assert "how many steps" in helptext and "an extra option" in helptext and "--hidden" not in helptext
    assert [f[0] for f in config_fields(A)] == ["steps", "seed", "names"]


def test_every_verb_help_comes_from_the_library_configs():
    out = CliRunner().invoke(app, ["negotiate", "--help"]).output
    assert help_of(RunConfig, "max_turns")[:20] in " ".join(out.split())
    for verb_name in ("attention", "probe", "ablate", "study"):
        assert CliRunner().invoke(app, [verb_name, "--help"]).exit_code == 0, verb_name
    for sub in ("sft", "grpo"):
        assert CliRunner().invoke(app, ["train", sub, "--help"]).exit_code == 0, sub


def test_with_preset_keeps_what_the_user_changed():
    got = with_preset(RunConfig(seed=9), RunConfig(max_turns=4, batch_size=2))
    assert (got.seed, got.max_turns, got.batch_size) == (9, 4, 2)
