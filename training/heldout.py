"""Held-out evaluation of trained agents: the same scenarios, greedy decoding, paired CIs.

A trained buyer is compared with its starting point on the *same* held-out scenarios against
the same counterpart, so per-scenario differences can be paired: the CI of the mean
difference is a bootstrap over scenarios, much tighter than comparing two independent CIs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from negolens.stats import bootstrap_ci

__all__ = ["METRICS", "play", "paired_comparison", "format_comparison", "interest", "buyer_table"]

METRICS = ("reward", "deal", "overshoot", "bargained_ratio", "protocol_failure", "length")


def play(model_ref, scenarios, seller: str = "rule", out: str | Path | None = None, max_turns: int = 8,
         batch_size: int = 16, seed: int = 0, models: dict | None = None, progress: bool = True,
         replay_stale: bool = True, device: str = "auto", announce_turns: bool = False,
         temperature: float = 0.0, max_utterance_tokens: int = 40) -> list[dict]:
    """Negotiations of a model as the buyer, one per scenario (greedy unless ``temperature`` > 0).

    Parameters
    ----------
    model_ref : str or Path
        The buyer: any agent spec :func:`negolens.agents.factory.make_agent` reads (zoo name,
        checkpoint directory, ``rule``...).
    scenarios : list of Scenario
        The held-out scenarios (see :func:`negolens.agents.scenarios.split_scenarios`).
    seller : str
        The counterpart's agent spec.
    out : str or Path, optional
        Folder for ``dialogues.jsonl`` and ``run.json`` (the buyer, with a content fingerprint
        of a checkpoint folder, the seller, the settings and the scenarios); a rerun of the same
        evaluation resumes and returns the dialogues already there.
    max_turns, batch_size, seed : int
        Runner settings (:class:`negolens.agents.runner.RunConfig`).
    models : dict, optional
        A cache of loaded models shared between calls.
    progress : bool
        Show a progress bar.
    replay_stale : bool
        When ``out`` holds the evaluation of another buyer (e.g. the checkpoint was retrained
        since) or other settings, delete it and play again, so the records always describe
        ``model_ref`` as it is now; ``False`` raises :class:`~negolens.errors.NegolensError` instead.
    device : str
        Where models named by ``model_ref`` and ``seller`` are loaded (``"auto"``: CUDA when available).
    announce_turns : bool
        Show both sides the turns left after every message
        (:class:`~negolens.agents.runner.RunConfig`); evaluate a buyer trained with it the same way.
    temperature : float
        The buyer's sampling temperature (0: greedy). A GRPO policy is trained on samples, and its
        greedy play can differ from what it learned (an act it samples 40% of the time never
        wins an argmax); sampled play is seeded by ``seed``, so it too pairs and reruns alike.
    max_utterance_tokens : int
        The buyer's words per message. Evaluate a GRPO policy with its run's
        ``max_utterance_tokens`` (the recipe's 8): given 40, a policy trained on short messages
        writes on, and the prices it writes into its words leak into its act (README, "Train and
        evaluate alike").

    Returns
    -------
    list of dict
        Dialogue records sorted by id (the same ids for the same scenarios, so two calls pair).

    Examples
    --------
    >>> from negolens.agents.scenarios import split_scenarios
    >>> recs = play("rule", split_scenarios("builtin", "test", n=2), max_turns=4, progress=False)
    >>> len(recs), "reward" in recs[0]["metrics"]
    (2, True)
    """
    from negolens.agents.factory import make_agent
    from negolens.agents.runner import RUN_OUTPUTS, RunConfig, read_records, run_identity, run_negotiations
    from negolens.runs import differences, owned_paths, read_run, refuse_file

    refuse_file(out)
    scenarios = list(scenarios)
    models = {} if models is None else models
    buyer = make_agent(str(model_ref), "buyer", models=models, device=device, temperature=temperature,
                       max_utterance_tokens=max_utterance_tokens)
    counterpart = make_agent(seller, "seller", models=models, device=device)
    config = RunConfig(max_turns=max_turns, seed=seed, batch_size=batch_size, announce_turns=announce_turns)
    stale = False
    if out is not None and replay_stale:
        old = read_run(out)
        stale = (bool(owned_paths(out, RUN_OUTPUTS)) if old is None else
                 old.kind != "negotiate" or bool(differences(old.config, run_identity(scenarios, buyer, counterpart, config))))
    records = run_negotiations(scenarios, buyer, counterpart, config, out=out, progress=progress, overwrite=stale)
    if out is not None:
        ids = {f"{i:05d}-{s.id}" for i, s in enumerate(scenarios)}
        records = read_records(Path(out) / "dialogues.jsonl", ids=ids)
    return sorted(records, key=lambda r: r["id"])


def paired_comparison(before: list[dict], after: list[dict], metrics=METRICS, seed: int = 0) -> pd.DataFrame:
    """Before / after means with CIs, and the paired mean difference with its CI, per metric.

    Parameters
    ----------
    before, after : list of dict
        Dialogue records (as :func:`play` returns); only ids present in both are compared.
    metrics : sequence of str
        Keys of each record's ``metrics``; ``None`` values are left out.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per metric: ``before``, ``before_ci``, ``n_before``, ``after``, ``after_ci``,
        ``n_after``, ``diff`` (mean of after − before over pairs), ``diff_ci``, ``n_pairs``.

    Examples
    --------
    >>> before = [{"id": "a", "metrics": {"reward": 0.0}}, {"id": "b", "metrics": {"reward": 0.5}}]
    >>> after = [{"id": "a", "metrics": {"reward": 0.5}}, {"id": "b", "metrics": {"reward": 1.0}}]
    >>> float(paired_comparison(before, after, metrics=["reward"]).loc[0, "diff"])
    0.5
    """
    a = {r["id"]: r["metrics"] for r in before}
    b = {r["id"]: r["metrics"] for r in after}
    shared = sorted(set(a) & set(b))
    rows = []
    for m in metrics:
        x = [a[i][m] for i in shared if a[i][m] is not None]
        y = [b[i][m] for i in shared if b[i][m] is not None]
        pairs = [b[i][m] - a[i][m] for i in shared if a[i][m] is not None and b[i][m] is not None]
        rows.append({
            "metric": m, "before": _mean(x), "before_ci": bootstrap_ci(x, seed=seed), "n_before": len(x),
            "after": _mean(y), "after_ci": bootstrap_ci(y, seed=seed), "n_after": len(y),
            "diff": _mean(pairs), "diff_ci": bootstrap_ci(pairs, seed=seed), "n_pairs": len(pairs),
        })
    return pd.DataFrame(rows)


def _mean(v) -> float:
    return float(np.mean(v)) if len(v) else float("nan")


def format_comparison(table: pd.DataFrame, before: str = "before", after: str = "after") -> str:
    """A plain-text table of :func:`paired_comparison`: ``metric  before [CI]  after [CI]  Δ [CI] (n)``.

    Parameters
    ----------
    table : pandas.DataFrame
        What :func:`paired_comparison` returns.
    before, after : str
        Column titles (e.g. ``"start"``, ``"GRPO"``).

    Returns
    -------
    str

    Examples
    --------
    >>> recs = [{"id": "a", "metrics": {"reward": 0.0}}]
    >>> format_comparison(paired_comparison(recs, recs, metrics=["reward"])).splitlines()[0].split()
    ['metric', 'before', 'after', 'paired', 'Δ']
    """
    lines = [f"{'metric':<18}{before:>24}{after:>24}{'paired Δ':>26}"]
    for r in table.itertuples():
        cell = lambda m, ci: f"{m:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"  # noqa: E731
        lines.append(f"{r.metric:<18}{cell(r.before, r.before_ci):>24}{cell(r.after, r.after_ci):>24}"
                     f"{cell(r.diff, r.diff_ci):>26} (n={r.n_pairs})")
    return "\n".join(lines)


def interest(record: dict) -> str:
    """``"mutual"`` when the buyer's budget exceeds the seller's cost (a deal can help both), else
    ``"conflict"`` (Xia et al. 2024 split AmazonHistoryPrice products the same way)."""
    s = record["scenario"]
    return "mutual" if s["buyer_budget"] > s["seller_cost"] else "conflict"


def buyer_table(runs: dict[str, list[dict]], baseline: str | None = None, seed: int = 0) -> pd.DataFrame:
    """The goal table of a buyer evaluation: per run and product split, reward, deal rate and
    overshoot with bootstrap CIs, and the paired reward difference against a baseline run.

    Parameters
    ----------
    runs : dict of str to list of dict
        Label (e.g. ``"GRPO vs rule"``) → the dialogue records of :func:`play`.
    baseline : str, optional
        The label every other run is paired with, scenario by scenario (same ids), for
        ``d_reward`` (its CI is a bootstrap over the pairs).
    seed : int
        Seed of the bootstraps.

    Returns
    -------
    pandas.DataFrame
        Columns ``run``, ``split`` (``all`` | ``mutual`` | ``conflict``), ``n``, ``reward``,
        ``reward_ci``, ``deal``, ``deal_ci``, ``overshoot``, ``overshoot_ci``, ``d_reward``,
        ``d_reward_ci``, ``n_pairs`` (NaN without a baseline or for the baseline itself).

    Examples
    --------
    >>> rec = lambda i, r, cost: {"id": i, "scenario": {"buyer_budget": 10.0, "seller_cost": cost},
    ...                           "metrics": {"reward": r, "deal": 1.0, "overshoot": 0.0}}
    >>> start = [rec("a", 0.0, 5.0), rec("b", -1.0, 12.0)]
    >>> trained = [rec("a", 0.5, 5.0), rec("b", 0.0, 12.0)]
    >>> t = buyer_table({"start": start, "trained": trained}, baseline="start")
    >>> t.query("run == 'trained'")[["split", "n", "reward", "d_reward"]].values.tolist()
    [['all', 2, 0.25, 0.75], ['mutual', 1, 0.5, 0.5], ['conflict', 1, 0.0, 1.0]]
    """
    base = {r["id"]: r["metrics"]["reward"] for r in runs.get(baseline, [])} if baseline else {}
    rows = []
    for label, records in runs.items():
        for split in ("all", "mutual", "conflict"):
            part = [r for r in records if split == "all" or interest(r) == split]
            if not part:
                continue
            row = {"run": label, "split": split, "n": len(part)}
            for m in ("reward", "deal", "overshoot"):
                v = [r["metrics"][m] for r in part if r["metrics"][m] is not None]
                row[m], row[f"{m}_ci"] = _mean(v), bootstrap_ci(v, seed=seed)
            pairs = [r["metrics"]["reward"] - base[r["id"]] for r in part if r["id"] in base]
            use = bool(pairs) and label != baseline
            row["d_reward"] = _mean(pairs) if use else float("nan")
            row["d_reward_ci"] = bootstrap_ci(pairs, seed=seed) if use else (float("nan"), float("nan"))
            row["n_pairs"] = len(pairs) if use else 0
            rows.append(row)
    return pd.DataFrame(rows)
