"""A GRPO run's folder: what makes two runs the same run, how far a finished one got, where to resume.

:func:`~negolens.training.grpo.train_grpo` records :func:`run_identity` in ``run.json`` (so a
rerun with other settings is refused, and one with the same settings resumes or does nothing),
refuses to shorten a finished run (:func:`check_steps`) and resumes from :func:`last_checkpoint`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from negolens.config import to_dict
from negolens.errors import NegolensError
from negolens.runs import model_fingerprint

if TYPE_CHECKING:
    from negolens.training.grpo import GRPORunConfig

__all__ = ["GRPO_OUTPUTS", "RUN_CONTROL", "LATER_SETTINGS", "run_identity", "trained_steps", "check_steps", "last_checkpoint"]

GRPO_OUTPUTS = ("checkpoint-*", "steps.jsonl", "rollouts", "final", "eval-*", "eval.json")  # what a run writes
RUN_CONTROL = ("steps", "max_failure_share", "micro_batch")  # settings that do not change what a step is
# settings added after runs were recorded, with the value every older run had: left out of the
# identity at that value, so a run recorded before them still resumes
LATER_SETTINGS = {"rollout_dtype": "same", "base_dtype": "same", "quit_stalls": False}


def run_identity(cfg: GRPORunConfig, scenarios: list) -> dict:
    """What makes two GRPO runs the same run: every setting but the run controls (a larger ``steps``
    extends a run), the starting model's content (a local folder) and the training scenarios.
    A setting of :data:`LATER_SETTINGS` at its listed value is left out (runs recorded before it
    existed had that value).

    Examples
    --------
    >>> from negolens.training.grpo import GRPORunConfig
    >>> "rollout_dtype" in run_identity(GRPORunConfig(model="m"), [])
    False
    >>> run_identity(GRPORunConfig(model="m", rollout_dtype="bfloat16"), [])["rollout_dtype"]
    'bfloat16'
    """
    settings = {k: v for k, v in to_dict(cfg).items()
                if k not in RUN_CONTROL and (k not in LATER_SETTINGS or LATER_SETTINGS[k] != v)}
    return {**settings, "model_content": model_fingerprint(cfg.model), "scenarios": [s.id for s in scenarios]}


def trained_steps(out: Path) -> int | None:
    """The step count of the finished model in ``out/final`` (its manifest), ``None`` if there is none."""
    path = out / "final" / "negolens_manifest.json"
    return json.loads(path.read_text(encoding="utf-8"))["config"]["steps"] if path.is_file() else None


def check_steps(out: Path, cfg: GRPORunConfig) -> int | None:
    """The finished step count in ``out``; refuses to shorten a finished run."""
    done = trained_steps(out)
    if done is not None and done > cfg.steps:
        raise NegolensError(f"--out {out} holds this run trained for {done} steps; this run asks for {cfg.steps}: "
                            f"pass --steps {done} (or more, to extend it), another --out, or --overwrite")
    return done


def last_checkpoint(out: Path) -> Path | None:
    """The latest ``checkpoint-N`` folder of a run, ``None`` before the first."""
    points = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return points[-1] if points else None
