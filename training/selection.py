"""Choosing a checkpoint on validation products: training products no stage of training played.

A GRPO run saves a checkpoint every ``save_every`` steps, and the last one is not always the
best: a policy's overshoot rate moves by a few dialogues from one checkpoint to the next. Picking
among them by their score on the held-out *test* products would report a number chosen for being
high. :func:`choose_checkpoint` picks on *validation* products instead: products of the train
split that neither the warm start's teacher nor any GRPO rollout played
(:func:`~negolens.training.validation.validation_products`), so the test split is still
played once, by the chosen buyer.

The rule (:func:`pick`): the highest mean reward (the paper's, unshaped) among the candidates
whose validation overshoot rate is at most ``max_overshoot``; when none is, the lowest overshoot
rate, then the highest reward. Ties go to the later checkpoint (more training, same score).

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"candidate": ["a", "b", "c"], "reward": [0.5, 0.4, 0.6],
...                       "overshoot": [0.01, 0.0, 0.05]})
>>> pick(table, max_overshoot=0.02)  # c earns most but overshoots; a is the best eligible one
0
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from negolens.config import option
from negolens.errors import NegolensError
from negolens.training.validation import played_products, validation_products

__all__ = ["SelectConfig", "CheckpointChoice", "checkpoint_folders", "pick", "choose_checkpoint"]

# settings added after selections were recorded, with the value every older one had: left out of
# run.json at that value, so a selection recorded before them still resumes (as GRPO's LATER_SETTINGS)
LATER_SETTINGS = {"all_conflicting": False}


@dataclass
class SelectConfig:
    """Settings of a checkpoint choice (every field is a ``negolens train select`` option).

    Play the candidates as they were trained: the GRPO run's ``max_turns``,
    ``announce_turns`` and ``max_utterance_tokens`` (the recipe's 8 turns, announced, 8-token
    messages); :func:`choose_checkpoint` refuses settings a candidate's run did not train with.

    Examples
    --------
    >>> cfg = SelectConfig(candidates=("runs/g22d",), played=("runs/g22a", "runs/g22d"), teacher_products=400)
    >>> cfg.products, cfg.max_overshoot
    (100, 0.02)
    """

    candidates: tuple[str, ...] = option((), "the checkpoints to choose from (comma list): checkpoint folders, or "
                                             "GRPO run folders (each of their checkpoint-N/ and final/)")
    played: tuple[str, ...] = option((), "runs whose products stay out of the validation set (comma list): GRPO "
                                         "runs (rollouts/) and negotiation runs (dialogues.jsonl)")
    teacher_products: int | None = option(None, "also keep out the training products a warm start's teacher "
                                               "played: the --teacher-products of `negolens train filtered` "
                                               "(0: all of them, as there; default: no teacher)")
    teacher_seed: int = option(0, "the --seed of that `negolens train filtered` run")
    products: int = option(100, "validation products every candidate plays")
    all_conflicting: bool = option(False, "keep every conflicting-interest product left (budget <= cost: any deal "
                                          "overshoots) and sample the rest of --products from the mutual-interest "
                                          "ones; default: one uniform sample (about 6 conflicting in 100)")
    source: str = option("amazon", "where the products come from: amazon | builtin")
    seller: str = option("rule", "the counterpart: one agent spec (rule, rule:unyielding, a model...); a GRPO "
                                 "run's comma list of sellers is not accepted, choose one of them")
    max_overshoot: float = option(0.02, "a candidate is eligible when its validation overshoot rate is at most this")
    max_turns: int = option(8, "turns per negotiation (the GRPO run's)")
    announce_turns: bool = option(False, "both sides see the turns left (as the GRPO run's --announce-turns)")
    max_utterance_tokens: int = option(40, "the buyer's words per message (the GRPO run's)")
    seed: int = option(0, "seed of the validation sample, the runner and the bootstrap")

    def __post_init__(self) -> None:
        self.candidates = tuple(str(c) for c in ((self.candidates,) if isinstance(self.candidates, (str, Path))
                                                 else self.candidates))
        self.played = tuple(str(p) for p in ((self.played,) if isinstance(self.played, (str, Path)) else self.played))
        if not self.candidates:
            raise NegolensError("no candidates: pass --candidates RUN_DIR[,CHECKPOINT...] (a GRPO run folder stands for "
                                "each of its checkpoints)")
        if self.products < 1 or (self.teacher_products or 0) < 0:
            raise NegolensError(f"products must be at least 1 and teacher_products at least 0; got {self.products} "
                                f"and {self.teacher_products}")
        if not 0.0 <= self.max_overshoot <= 1.0:
            raise NegolensError(f"max_overshoot is a rate in [0, 1]; got {self.max_overshoot}")


@dataclass
class CheckpointChoice:
    """What :func:`choose_checkpoint` returns: the validation table and the chosen checkpoint.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate, in the order given: ``candidate`` (its folder), ``n``, ``reward``,
        ``reward_ci``, ``deal``, ``overshoot``, ``overshoots`` (a count), ``eligible``, ``chosen``.
    chosen : str
        The chosen candidate's folder.
    scenarios : list
        The validation products (their ids pair the candidates' dialogues).
    """

    table: pd.DataFrame
    chosen: str
    scenarios: list

    def summary(self) -> str:
        """The table as text, one line per candidate, the chosen one marked.

        Returns
        -------
        str
            A header, one line per candidate (``*`` marks the chosen one) and ``chosen: ...``.
        """
        lines = [f"{'candidate':<36}{'reward [95% CI]':>26}{'deal':>7}{'overshoot':>14}"]
        for r in self.table.itertuples():
            lines.append(f"{('* ' if r.chosen else '  ') + r.candidate:<36}"
                         f"{f'{r.reward:+.3f} [{r.reward_ci[0]:+.3f}, {r.reward_ci[1]:+.3f}]':>26}{r.deal:>7.3f}"
                         f"{f'{r.overshoot:.3f} ({r.overshoots})':>14}")
        return "\n".join(lines + [f"chosen: {self.chosen} ({len(self.scenarios)} validation products)"])


def checkpoint_folders(path: str | Path) -> list[str]:
    """A candidate as checkpoint folders, by training step: a GRPO run folder gives each
    ``checkpoint-N/`` (step N) and ``final/`` (its manifest's steps; it replaces the checkpoint of
    the same step); a model folder, a zoo name, a hub id or an agent spec is itself.

    Parameters
    ----------
    path : str or Path
        A run folder, a checkpoint folder or an agent spec.

    Returns
    -------
    list of str
        The folders (or the spec), earliest step first.

    Raises
    ------
    NegolensError
        For a folder that holds no model and no checkpoint (a run not saved yet, a typo).

    Examples
    --------
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> for name in ("checkpoint-8", "checkpoint-4", "checkpoint-12", "final"):
    ...     (run / name).mkdir()
    ...     _ = (run / name / "adapter_config.json").write_text("{}")
    >>> [Path(p).name for p in checkpoint_folders(run)]
    ['checkpoint-4', 'checkpoint-8', 'final']
    """
    from negolens.training.grpo_runs import trained_steps

    run = Path(path)
    if not run.is_dir():
        if run.exists() or run.is_absolute() or str(path).startswith(".") or len(run.parts) > 2:
            raise NegolensError(f"{path}: no such checkpoint or run folder (pass the --out of `negolens train grpo`, "
                                f"one of its checkpoint-N folders, or a model name)")
        return [str(path)]
    if _is_model(run):
        return [str(run)]
    steps = {int(p.name.split("-")[-1]): p for p in run.glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and _is_model(p)}
    final = run / "final"
    if _is_model(final):
        steps[trained_steps(run) or max(steps, default=0)] = final  # final/ in place of its step's checkpoint
    if not steps:
        raise NegolensError(f"{run}: no model and no checkpoint-N/ or final/ in it (a GRPO run saves one every "
                            f"--save-every steps); pass a checkpoint folder or a finished run")
    return [str(steps[k]) for k in sorted(steps)]


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()


def _run_of(checkpoint: str) -> Path | None:
    """The GRPO run folder a checkpoint belongs to (the one holding ``run.json`` and ``rollouts/``)."""
    for folder in (Path(checkpoint), Path(checkpoint).parent):
        if (folder / "rollouts").is_dir() or ((folder / "run.json").is_file() and (folder / "steps.jsonl").is_file()):
            return folder
    return None


def _check_as_trained(config: "SelectConfig", runs: list[Path]) -> None:
    """Refuse to play a candidate with other turns, deadline notes or message caps than its run trained with."""
    for run in runs:
        path = run / "run.json"
        trained = json.loads(path.read_text(encoding="utf-8")).get("config", {}) if path.is_file() else {}
        for key in ("max_turns", "announce_turns", "max_utterance_tokens"):
            if key in trained and trained[key] != getattr(config, key):
                flag = "--" + key.replace("_", "-")
                raise NegolensError(f"{run} trained with {key}={trained[key]}, selection plays {getattr(config, key)}: "
                                    f"play the candidates as they were trained ({flag} {trained[key]})")


def pick(table: pd.DataFrame, max_overshoot: float) -> int:
    """The row :func:`choose_checkpoint` chooses (see the module's rule).

    Parameters
    ----------
    table : pandas.DataFrame
        ``reward`` and ``overshoot`` columns, one row per candidate in the order given (a run's
        checkpoints by step, so a tie goes to the later step).
    max_overshoot : float
        The eligibility bound on the overshoot rate.

    Returns
    -------
    int
        The position of the chosen row.

    Examples
    --------
    >>> t = pd.DataFrame({"reward": [0.3, 0.3, 0.1], "overshoot": [0.05, 0.04, 0.04]})
    >>> pick(t, 0.02)  # none eligible: the lowest overshoot, then the highest reward, then the latest
    1
    """
    rows = list(range(len(table)))
    eligible = [i for i in rows if _eligible(table["overshoot"].iloc[i], max_overshoot)]
    if eligible:
        return max(eligible, key=lambda i: (table["reward"].iloc[i], i))
    return max(rows, key=lambda i: (-table["overshoot"].iloc[i], table["reward"].iloc[i], i))


def _eligible(overshoot: float, bound: float) -> bool:
    return overshoot <= bound + 1e-12  # 2 of 100 is 0.02 however it rounds


def choose_checkpoint(config: SelectConfig, out: str | Path | None = None, *, data: str | Path | None = None,
                      device: str = "auto", progress: bool = True, overwrite: bool = False,
                      log: Callable[[str], None] | None = None) -> CheckpointChoice:
    """Play every candidate greedily on the same validation products and choose one (:func:`pick`).

    Parameters
    ----------
    config : SelectConfig
        The candidates, what to keep out of the validation set, and how to play.
    out : str or Path, optional
        Folder for ``run.json``, ``selection.csv`` and each candidate's dialogues
        (``candidates/<run>-<checkpoint>/``; a rerun resumes as
        :func:`~negolens.training.heldout.play` does). A GRPO run among the candidates is always
        kept out of the validation set, whether or not ``config.played`` names it.
    data : str or Path, optional
        The data directory.
    device : str
        Where the candidates play.
    progress : bool
        Show progress bars.
    log : callable, optional
        Receives one line per candidate played.
    overwrite : bool
        Replace another selection in ``out`` (other settings) instead of refusing it.

    Returns
    -------
    CheckpointChoice

    Raises
    ------
    NegolensError
        When a candidate's run trained with other ``max_turns``, ``announce_turns`` or
        ``max_utterance_tokens`` than ``config``'s, or too few validation products are left.

    Examples
    --------
    >>> cfg = SelectConfig(candidates=("rule", "rule:aggressive"), source="builtin", products=4, max_turns=4)
    >>> choice = choose_checkpoint(cfg, progress=False)  # rule buyers stand in for checkpoints
    >>> choice.chosen in ("rule", "rule:aggressive"), len(choice.table)
    (True, 2)
    """
    from negolens.agents.factory import parse_spec
    from negolens.config import to_dict
    from negolens.runs import refuse_file, start_run
    from negolens.training.heldout import buyer_table, play

    say = log or (lambda _msg: None)
    candidates = list(dict.fromkeys(c for spec in config.candidates for c in checkpoint_folders(spec)))
    runs = list(dict.fromkeys(r for r in map(_run_of, candidates) if r is not None))
    _check_as_trained(config, runs)
    played = played_products([*config.played, *(str(r) for r in runs if (r / "rollouts").is_dir())])
    scenarios = validation_products(config.source, config.products, played, teacher_products=config.teacher_products,
                                    teacher_seed=config.teacher_seed, all_conflicting=config.all_conflicting,
                                    data=data, seed=config.seed)
    if out is not None:
        refuse_file(out)
        settings = {k: v for k, v in to_dict(config).items() if k not in LATER_SETTINGS or LATER_SETTINGS[k] != v}
        start_run(out, {**settings, "checkpoints": candidates, "validation": [s.id for s in scenarios]},
                  kind="select", overwrite=overwrite,
                  owns=("selection.csv", "candidates"), data=data)
    models: dict = {}
    seller_model = parse_spec(config.seller)[0]
    rows = []
    for cand in candidates:
        folder = None if out is None else Path(out) / "candidates" / _slug(cand)
        recs = play(cand, scenarios, config.seller, folder, max_turns=config.max_turns, seed=config.seed,
                    models=models, progress=progress, device=device, announce_turns=config.announce_turns,
                    max_utterance_tokens=config.max_utterance_tokens)
        if parse_spec(cand)[0] != seller_model:
            models.pop(parse_spec(cand)[0], None)  # keep the seller loaded, not every candidate
        row = buyer_table({cand: recs}, seed=config.seed).query("split == 'all'").iloc[0]
        rows.append({"candidate": cand, "n": len(recs), "reward": row.reward, "reward_ci": row.reward_ci,
                     "deal": row.deal, "overshoot": row.overshoot,
                     "overshoots": sum(int(r["metrics"]["overshoot"] or 0) for r in recs)})
        say(f"{cand}: reward {rows[-1]['reward']:+.3f}, overshoot {rows[-1]['overshoot']:.3f} ({len(recs)} products)")
    table = pd.DataFrame(rows)
    table["eligible"] = [_eligible(v, config.max_overshoot) for v in table["overshoot"]]
    best = pick(table, config.max_overshoot)
    table["chosen"] = [i == best for i in range(len(table))]
    if out is not None:
        table.to_csv(Path(out) / "selection.csv", index=False)
    return CheckpointChoice(table, candidates[best], scenarios)


def _slug(path: str) -> str:
    """``g22d-checkpoint-4`` for ``runs/g22d/checkpoint-4``; ``rule_aggressive`` for ``rule:aggressive``."""
    parts = Path(path).parts[-2:] if Path(path).name in ("final",) or Path(path).name.startswith("checkpoint-") \
        else Path(path).parts[-1:]
    return "-".join(parts).replace(":", "_").replace("+", "_")
