"""``negotiate``: the one call that plays a set of scenarios between two agents and returns records.

The batched runner (:mod:`negolens.agents.runner`) does the work; this function turns models and
spec strings into agents, applies a :class:`~negolens.agents.runner.RunConfig`, and — when an
output folder is given — returns every record of *these* scenarios from it, so a resumed run
reports all its dialogues, not only the ones it played this time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from negolens.agents.factory import as_agent
from negolens.agents.runner import RunConfig, dialogue_id, read_records, run_negotiations
from negolens.errors import NegolensError
from negolens.runs import refuse_file

__all__ = ["negotiate"]


def negotiate(buyer, seller, scenarios, config: RunConfig | None = None, *, out: str | Path | None = None,
              temperature: float = 0.0, dtype: str = "float32", device: str = "auto", models: dict | None = None,
              progress: bool = True, overwrite: bool = False, max_utterance_tokens: int = 40, **run) -> list[dict]:
    """Negotiate every scenario between ``buyer`` and ``seller``; one record per dialogue.

    Parameters
    ----------
    buyer, seller
        A loaded :class:`~negolens.hooked.NegoModel`, a spec string (``"rule"``,
        ``"rule:aggressive"``, ``"smollm2-135m-instruct:fair+cot"``, a checkpoint directory) or an
        agent object (``act`` / ``act_batch``).
    scenarios
        :class:`~negolens.agents.scenarios.Scenario` list, e.g. from
        :func:`~negolens.agents.scenarios.load_scenarios`.
    config
        :class:`~negolens.agents.runner.RunConfig`; ``**run`` overrides its fields
        (``max_turns=6, seed=0``).
    out
        Folder for ``dialogues.jsonl`` (appended and fsync'ed per dialogue) and ``run.json``
        (what the run is: run settings, agents, scenario ids). A rerun with the same settings
        resumes; another run into the same folder raises
        :class:`~negolens.errors.NegolensError` naming the differing settings.
    overwrite
        Replace an earlier run in ``out`` (its dialogues are deleted) instead of raising.
    temperature, dtype, device
        For agents built from spec strings (0 = greedy; ``device="auto"``: CUDA when available,
        else the CPU; see :func:`negolens.load`).
    max_utterance_tokens
        Longest message of an LLM agent built here, in tokens (its chain of thought has its own cap).
    models
        Cache of loaded models shared between calls (spec strings naming the same model load once).

    Returns
    -------
    list of dict
        One record per scenario, in scenario order: turns, outcome, deal price, agents, run
        config and per-dialogue ``metrics`` (summarise with :func:`~negolens.agents.metrics.summarize`).

    Examples
    --------
    >>> from negolens.agents import load_scenarios, negotiate, summarize
    >>> records = negotiate("rule", "rule:aggressive", load_scenarios("builtin", 3), max_turns=6, progress=False)
    >>> len(records), records[0]["outcome"] in ("deal", "quit", "turn_limit", "protocol_failure")
    (3, True)
    """
    scenarios = list(scenarios)
    if not scenarios:
        raise NegolensError("no scenarios to negotiate: pass at least one (e.g. load_scenarios('builtin', 8))")
    config = replace(config or RunConfig(), **run)
    refuse_file(out)  # before any model loads
    models = {} if models is None else models
    kw = dict(models=models, dtype=dtype, temperature=temperature, device=device, max_utterance_tokens=max_utterance_tokens)
    b, s = as_agent(buyer, "buyer", **kw), as_agent(seller, "seller", **kw)
    played = run_negotiations(scenarios, b, s, config, out=out, progress=progress, overwrite=overwrite)
    ids = [dialogue_id(sc, i) for i, sc in enumerate(scenarios)]
    if out is None:
        by_id = {r["id"]: r for r in played}
    else:
        by_id = {r["id"]: r for r in read_records(Path(out) / "dialogues.jsonl", ids=set(ids))}
    return [by_id[i] for i in ids if i in by_id]
