"""Reward-filtered fine-tuning: supervised steps on the rollouts that earned a reward.

GRPO can only reinforce a move the policy samples. When the move that pays is rare under the
starting policy — the README's runs 3-5: the SFT buyer names a price at its last turn in a
few percent of dialogues — groups seldom contain it and the run drifts into deadlock before it
is learned. Reward-filtered fine-tuning (RAFT, Dong et al. 2023; ReST-EM, Singh et al. 2023;
"expert iteration") is the cheaper step the literature takes first: keep the rollouts whose
verifiable reward clears a threshold and train on their buyer turns with the plain SFT loss.

The examples are built from the rollouts' own token ids with
:func:`~negolens.training.rollouts.buyer_sequence`, the function GRPO trains on: the loss
covers exactly the tokens the policy sampled (its words, acts and price digits), in exactly
the context it sampled them in, and none of the seller's or the template's.

The dialogues come from GRPO runs (``rollouts/``) or from negotiation runs of the buyer, e.g.
sampled on training products (``negolens negotiate --split train --temperature 1``): sample,
filter, train, sample the result again is expert iteration with the existing verbs. With
``teacher`` a scripted buyer's dialogues on training products join them, in the student's own
tokens (:mod:`negolens.training.imitation`: behaviour cloning); with ``role="seller"`` the
student is a seller cloned from a rule seller that plays a scripted buyer (teacher dialogues
only: the runs are buyers' rollouts). Before any
training, :func:`heldout_dialogues` checks that no kept dialogue was played on a held-out
product, so held-out evaluation stays held out.

:class:`FilteredConfig` and :func:`run_filtered` are the whole job (``negolens train
filtered``): read the runs' dialogues, keep the best, train the start model on them, save.
Positive-only data show the policy nothing to avoid: the README's third round ("Expert
iteration on training products") copies the seller's price more often everywhere, above the
budget too.

Examples
--------
>>> from negolens.training.filtered import best_rollouts
>>> recs = [{"metrics": {"reward": r}} for r in (0.4, -1.0, 0.0, 0.9)]
>>> [r["metrics"]["reward"] for r in best_rollouts(recs, min_reward=0.0)]
[0.4, 0.9]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from negolens.config import option
from negolens.errors import NegolensError, choice
from negolens.training.data import IGNORE, Example
from negolens.training.rollouts import buyer_sequence
from negolens.training.sft import LORA_TARGETS, SFTConfig, train_sft
from negolens.zoo import DEFAULT_MODEL

__all__ = ["FilteredConfig", "read_rollouts", "heldout_dialogues", "best_rollouts", "rollout_examples",
           "teacher_records", "run_filtered"]


@dataclass
class FilteredConfig:
    """Settings of a reward-filtered fine-tuning run (every field is a ``negolens train filtered`` option).

    The optimisation fields mean what they mean in :class:`~negolens.training.sft.SFTConfig`
    (:meth:`sft` builds that config); there is no held-out loss, because the examples are a
    policy's own samples, not a fixed corpus.

    Examples
    --------
    >>> cfg = FilteredConfig(model="results/sft-buyer", runs=("results/grpo",), min_reward=0.3)
    >>> cfg.sft().role, cfg.sft().eval_examples, cfg.sft().lr
    ('buyer', 0, 0.0002)
    """

    model: str = option(DEFAULT_MODEL, "the agent to improve (a buyer unless --role seller): zoo name or checkpoint "
                                       "directory")
    role: str = option("buyer", "the student's role: buyer | seller (a seller learns from --teacher dialogues only)")
    runs: tuple[str, ...] = option((), "GRPO runs or negotiate outputs whose dialogues are filtered (comma list)")
    min_reward: float = option(0.0, "keep the dialogues whose paper reward (never a shaped one, the buyer's) is "
                                    "above this")
    teacher: str | None = option(None, "also play this scripted agent of --role (buyer: target | target:deadline "
                                       "| extrapolate | extrapolate:MARGIN | rule | rule:aggressive | ...; seller: rule | rule:passive | floor | ...) "
                                       "on training products and train on its dialogues, in the student's tokens")
    teacher_products: int = option(200, "training products the teacher plays (0: all of the train split)")
    teacher_scenarios: str = option("amazon", "where the teacher's products come from: amazon | craigslist | builtin")
    teacher_seller: str = option("rule", "the rule seller a buyer teacher plays against (a persona too: "
                                         "rule:unyielding)")
    teacher_buyer: str = option("target", "the scripted buyer a seller teacher plays against: target | "
                                          "rule[:personality]")
    teacher_counterpart_words: str = option("own", "how the teacher's counterpart speaks: own (its rule's "
                                                   "sentence, as a rule agent in evaluations) | short (the "
                                                   "clones' fixed words, as a cloned counterpart)")
    teacher_turns: int = option(8, "turns per teacher dialogue, as the student is evaluated")
    announce_turns: bool = option(True, "the teacher's dialogues show the turns left (as --announce-turns)")
    max_utterance_tokens: int = option(8, "the student's message cap; the teacher's words must fit in it")
    steps: int = option(30, "optimizer steps")
    batch_size: int = option(4, "dialogues per optimizer step")
    lr: float | None = option(None, "learning rate (default 2e-4 for lora, 3e-5 for full)")
    mode: str = option("lora", "full | lora | qlora (CUDA only)")
    max_tokens: int = option(1024, "longest dialogue in tokens; longer ones are dropped, never cut")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA alpha (the adapter is scaled by alpha / r)")
    lora_targets: tuple[str, ...] = option(LORA_TARGETS, "modules that get LoRA adapters")
    dtype: str = option("float32", "float32 | bfloat16 (autocast matmuls; weights and optimizer stay float32)")
    seed: int = option(0, "seed of the batch order and the adapter initialisation")

    def __post_init__(self) -> None:
        self.runs = (self.runs,) if isinstance(self.runs, (str, Path)) else tuple(str(r) for r in self.runs)
        if not self.runs and not self.teacher:
            raise NegolensError("no dialogues to filter: pass --runs DIR[,DIR...] (outputs of negolens train grpo "
                                "or negolens negotiate) or --teacher rule:aggressive")
        choice(self.role, ("buyer", "seller"), "role")
        choice(self.teacher_counterpart_words, ("own", "short"), "teacher_counterpart_words")
        if self.role == "seller" and (self.runs or not self.teacher):
            raise NegolensError("a seller learns from teacher dialogues only (the runs hold buyers' rollouts): pass "
                                "--teacher rule (or rule:aggressive, ...) and no --runs")
        if self.teacher:
            from negolens.training.imitation import teacher_agents

            # a spec that is not a rule agent fails here, not later
            teacher_agents(self.teacher, self.teacher_seller, self.role, self.teacher_buyer)
        if self.teacher_products < 0:
            raise NegolensError(f"teacher_products must be >= 0 (0: all training products); "
                                f"got {self.teacher_products}")
        if not -1.0 <= self.min_reward < 1.0:
            raise NegolensError(f"min_reward must be in [-1, 1), the paper reward's range; got {self.min_reward}")
        self.lr = self.sft().lr  # validated and resolved as SFT does

    @classmethod
    def quick(cls, **overrides) -> "FilteredConfig":
        """A few-minute preset for tests and demos: a few steps on a few teacher dialogues.

        Parameters
        ----------
        **overrides
            Any field, applied after the preset (``runs`` or ``teacher`` among them: one is needed).

        Returns
        -------
        FilteredConfig

        Examples
        --------
        >>> FilteredConfig.quick(teacher="target").steps
        4
        """
        return cls(**{"steps": 4, "batch_size": 2, "teacher_products": 8, **overrides})

    def sft(self) -> SFTConfig:
        """The :class:`~negolens.training.sft.SFTConfig` that trains the buyer on the kept rollouts."""
        return SFTConfig(model=self.model, role=self.role, mode=self.mode, steps=self.steps, batch_size=self.batch_size,
                         lr=self.lr, max_tokens=self.max_tokens, eval_examples=0, eval_every=self.steps,
                         lora_r=self.lora_r, lora_alpha=self.lora_alpha, lora_targets=tuple(self.lora_targets),
                         dtype=self.dtype, seed=self.seed)


def read_rollouts(runs) -> list[dict]:
    """Every dialogue a run logged: a GRPO run's rollouts (``RUN/rollouts/step*.jsonl``, in step
    order) or a negotiation run's records (``RUN/dialogues.jsonl``, ``negolens negotiate``).

    A negotiation run of the buyer on training products, sampled (``--temperature 1``), is the
    sampling half of expert iteration: filter it, train on it, sample the result again.

    Parameters
    ----------
    runs : str, Path or list of them
        GRPO run directories or negotiation output directories.

    Raises
    ------
    NegolensError
        When a directory has neither.
    """
    out = []
    for run in [runs] if isinstance(runs, (str, Path)) else runs:
        plain = Path(run) / "dialogues.jsonl"
        files = sorted((Path(run) / "rollouts").glob("step*.jsonl")) or ([plain] if plain.is_file() else [])
        if not files:
            raise NegolensError(f"{run}: no rollouts/step*.jsonl or dialogues.jsonl; pass the directory of a GRPO run "
                                f"(negolens train grpo --out DIR) or of an LLM buyer's negotiations (negolens "
                                f"negotiate --buyer MODEL --split train --out DIR)")
        for f in files:
            out += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def heldout_dialogues(records: list[dict], data: str | Path | None = None) -> list[dict]:
    """The dialogues played on a held-out product (the ``test`` side of
    :func:`~negolens.agents.scenarios.split_scenarios` for their source), which no training may use.

    Parameters
    ----------
    records : list of dict
        Dialogue records (their ``scenario`` carries ``id`` and ``source``).
    data : str or Path, optional
        The data directory (see :func:`negolens.paths.data_dir`); not needed for ``builtin``.

    Returns
    -------
    list of dict
        The records on held-out products; sources negolens does not split (imported
        transcripts) have none.

    Raises
    ------
    NegolensError
        When a source's split cannot be read (no data directory).

    Examples
    --------
    >>> from negolens.agents.scenarios import split_scenarios
    >>> test, train = split_scenarios("builtin", "test")[0], split_scenarios("builtin", "train")[0]
    >>> recs = [{"scenario": s.to_dict()} for s in (train, test)]
    >>> [r["scenario"]["id"] for r in heldout_dialogues(recs)] == [test.id]
    True
    """
    from negolens.agents.scenarios import SOURCES, split_scenarios
    from negolens.errors import DataNotFoundError

    held: dict[str, set] = {}
    for source in sorted({r["scenario"].get("source", "builtin") for r in records}):
        if source not in SOURCES:  # imported transcripts: no train/test split of negolens' own
            held[source] = set()
            continue
        try:
            held[source] = {s.id for s in split_scenarios(source, "test", data=data)}
        except DataNotFoundError as err:
            raise NegolensError(f"cannot check that no dialogue was played on a held-out {source} product: "
                                f"{err}") from None
    return [r for r in records if r["scenario"]["id"] in held[r["scenario"].get("source", "builtin")]]


def best_rollouts(records: list[dict], min_reward: float = 0.0) -> list[dict]:
    """The dialogues whose paper reward (``metrics.reward``, never a shaped one) is above ``min_reward``."""
    return [r for r in records if r["metrics"]["reward"] is not None and r["metrics"]["reward"] > min_reward]


def rollout_examples(model, records: list[dict], role: str = "buyer", max_tokens: int = 1024) -> list[Example]:
    """One supervised example per dialogue: ``role``'s view of it, labels on the tokens it sampled.

    Parameters
    ----------
    model : NegoModel
        Supplies the tokenizer and chat format (the policy's family).
    records : list of dict
        Dialogue records played by negolens' LLM agent (they carry per-turn ``token_ids``), e.g.
        :func:`best_rollouts` of :func:`read_rollouts`.
    role : str
        Whose turns are trained.
    max_tokens : int
        Longer dialogues are dropped, never cut.

    Returns
    -------
    list of Example
        ``input_ids`` = prompt + completion as GRPO sees them; ``labels`` = the completion ids
        where the policy chose the token, ``IGNORE`` elsewhere (prompt, the other side's
        turns, forced scaffolding such as ``\\nACTION:``).
    """
    out = []
    for r in records:
        prompt, completion, mask = buyer_sequence(model, r, role)
        if len(prompt) + len(completion) > max_tokens:
            continue
        labels = [IGNORE] * len(prompt) + [t if m else IGNORE for t, m in zip(completion, mask)]
        out.append(Example(prompt + completion, labels, r.get("id", ""), role))
    return out


def teacher_records(model, config: FilteredConfig, data: str | Path | None = None) -> list[dict]:
    """The teacher's dialogues of ``config`` on training products, in ``model``'s tokens
    (:func:`~negolens.training.imitation.teacher_dialogues`, then
    :func:`~negolens.training.imitation.imitate`)."""
    from negolens.agents.scenarios import split_scenarios
    from negolens.training.imitation import imitate, teacher_dialogues

    scenarios = split_scenarios(config.teacher_scenarios, "train", config.teacher_products or None, data=data,
                                seed=config.seed)
    played = teacher_dialogues(scenarios, config.teacher, config.teacher_seller, config.teacher_turns,
                               config.announce_turns, role=config.role, buyer=config.teacher_buyer,
                               counterpart_words=config.teacher_counterpart_words)
    return imitate(model, played, role=config.role, max_utterance_tokens=config.max_utterance_tokens)


def run_filtered(config: FilteredConfig, out: str | Path, *, log: Callable[[str], None] | None = None,
                 progress: bool = True, overwrite: bool = False, device: str = "auto",
                 data: str | Path | None = None) -> Path:
    """Reward-filtered fine-tuning: the buyer trained on the best dialogues of GRPO or negotiation runs.

    Parameters
    ----------
    config : FilteredConfig
        The start model, the runs, the reward threshold and the optimisation.
    out : str or Path
        The checkpoint directory (created); it loads anywhere a model is asked for, e.g. as the
        start of the next GRPO run (``negolens train grpo --model OUT``).
    log : callable, optional
        Receives one-line messages (how many rollouts were read and kept, the checkpoint).
    progress : bool
        Show a progress bar.
    overwrite : bool
        Replace another run in ``out``; the same run (settings, start model and examples) is
        returned at once without training.
    device : str
        Where the start model is loaded and trained (``"auto"``: CUDA when available).
    data : str or Path, optional
        The data directory, to check that no kept dialogue was played on a held-out product.

    Returns
    -------
    Path
        The checkpoint directory.

    Raises
    ------
    NegolensError
        When a run has no rollouts, no dialogue clears ``min_reward`` (the message gives the
        best reward there was), or a kept dialogue was played on a held-out product or by a
        buyer that is not negolens' LLM agent (no sampled token ids to train on).

    Examples
    --------
    >>> cfg = FilteredConfig(model="results/sft-buyer", runs=("results/grpo",), min_reward=0.3)
    >>> run_filtered(cfg, "results/filtered")  # doctest: +SKIP
    PosixPath('results/filtered')
    """
    from negolens.hooked import load

    say = log or (lambda _msg: None)
    records = read_rollouts(list(config.runs)) if config.runs else []
    model = None
    if config.teacher:
        model = load(config.model, device=device)
        taught = teacher_records(model, config, data)
        say(f"teacher {config.teacher} ({config.role}): {len(taught)} dialogues on training products, deal rate "
            f"{sum(bool(r['metrics']['deal']) for r in taught) / len(taught):.3f}, mean reward "
            f"{sum(r['metrics']['reward'] for r in taught) / len(taught):+.3f}")
        records += taught
    best = best_rollouts(records, config.min_reward)
    if not best:
        top = max((r["metrics"]["reward"] for r in records if r["metrics"]["reward"] is not None), default=None)
        raise NegolensError(f"none of the {len(records)} rollouts has a reward above {config.min_reward} (the best: "
                            f"{top}); lower --min-reward or add runs")
    leaked = heldout_dialogues(best, data)
    if leaked:
        raise NegolensError(f"{len(leaked)} of the kept dialogues were played on held-out products (e.g. "
                            f"{leaked[0]['scenario']['id']}); sample on training products (negolens negotiate "
                            f"--split train), so the held-out evaluation stays held out")
    model = model or load(config.model, device=device)
    examples = rollout_examples(model, best, role=config.role, max_tokens=config.max_tokens)
    if not examples:
        raise NegolensError(f"all {len(best)} kept dialogues are longer than max_tokens={config.max_tokens}; raise it")
    trained = sum(label != IGNORE for e in examples for label in e.labels)
    say(f"{len(records)} rollouts, {len(best)} with reward > {config.min_reward}, {len(examples)} examples, "
        f"{trained} trained tokens")
    sources = [*config.runs, *([f"teacher {config.teacher}"] if config.teacher else [])]
    notes = {"data": f"dialogues of {', '.join(sources)} with reward > {config.min_reward}",
             "filtered": {"runs": list(config.runs), "teacher": config.teacher, "role": config.role,
                          "min_reward": config.min_reward,
                          "rollouts": len(records), "kept": len(best)}}
    path = train_sft(model, config.sft(), examples, [], out, progress=progress, notes=notes, overwrite=overwrite)
    say(f"checkpoint: {path}")
    return Path(path)
