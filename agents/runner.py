"""The batched negotiation runner: many dialogues, one batched decoding step per turn.

All live dialogues whose next speaker is the same LLM agent take their turn together (one
:class:`~negolens.agents.decoding.TurnDecoder` pass); rule agents answer instantly. Each
finished dialogue is appended to ``dialogues.jsonl`` as one JSON line and fsync'ed, so a killed
run loses at most the dialogues in flight; rerunning the same command skips every dialogue
already written (no duplicates). Sampling seeds derive from (run seed, dialogue id, turn), so a
dialogue's transcript does not depend on which others ran beside it.

An output folder also holds ``run.json`` (:mod:`negolens.runs`): the run's identity — the run
settings, both agents' configs, the scenario ids and a fingerprint of local model folders. A
rerun resumes only a run with the same identity; another run into the same folder raises
:class:`~negolens.errors.NegolensError` naming the differing settings (``overwrite=True``
replaces the old run), so two configurations never mix in one ``dialogues.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import os
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from negolens.autobatch import check_batch_size, chunks, is_oom
from negolens.agents.metrics import dialogue_metrics
from negolens.agents.protocol import Guards, Move, Negotiation
from negolens.agents.scenarios import Scenario
from negolens.config import option
from negolens.distributed import active_world, barrier, gather, shard
from negolens.runs import model_refs, start_run


@dataclass
class RunConfig:
    """How negotiations are run (the scenarios and agents are passed separately).

    Examples
    --------
    >>> RunConfig(max_turns=6).max_turns
    6
    """

    max_turns: int = option(12, "turn limit (AgreeMate 15, RLVR 6)")
    first: str = option("buyer", "who speaks first: buyer | seller")
    seed: int = option(0, "run seed: sampling seeds derive from (seed, dialogue id, turn)")
    batch_size: int | str = option(16, "dialogues decoded together, or auto (the most that fit; halved on out-of-memory)")
    regulated_seller: bool = option(True, "the seller may not accept or offer below its cost")
    budget_guard: str = option("record", "buyer offers above budget: record (allowed, counted) | block")
    announce_turns: bool = option(False, "every message is followed by the turns left after it (a "
                                         "'turns left: 2' note), so agents see the deadline coming")

    def __post_init__(self) -> None:
        from negolens.agents.protocol import BUDGET_GUARDS, ROLES, check_turn_limit
        from negolens.errors import choice

        check_turn_limit(self.max_turns)
        choice(self.first, ROLES, "first speaker (--first)")
        self.batch_size = check_batch_size(self.batch_size)
        choice(self.budget_guard, BUDGET_GUARDS, "budget_guard")


def dialogue_id(scenario: Scenario, index: int) -> str:
    """The id of the ``index``-th dialogue of a run, on ``scenario`` (``00003-cb-test-17``)."""
    return f"{index:05d}-{scenario.id}"


def turn_seed(run_seed: int, did: str, turn: int) -> int:
    """Sampling seed of one turn: independent of the batch the dialogue ran in."""
    return int(hashlib.sha256(f"{run_seed}|{did}|{turn}".encode()).hexdigest()[:8], 16)


def finished_ids(path: Path) -> set[str]:
    """Ids already written; a torn last line (killed mid-write) is ignored and rewritten."""
    return {rec["id"] for rec in read_records(path) if "id" in rec} if path.is_file() else set()


def read_records(path: str | Path, ids: set[str] | None = None, *, strict: bool = True) -> list[dict]:
    """Records from a JSON-lines file such as dialogues.jsonl (optionally only those in ``ids``).

    A torn last line (no trailing newline: a run killed mid-write) is skipped; any other
    unreadable line is an error naming ``FILE:LINE``, or with ``strict=False`` skipped, counted
    and reported in one :class:`~negolens.agents.formats.UnreadableRowsWarning`.

    Parameters
    ----------
    path : str or Path
        The file.
    ids : set of str, optional
        Keep only records whose ``id`` is in it.
    strict : bool
        Raise :class:`~negolens.agents.formats.TranscriptFormatError` on a bad line (default).

    Returns
    -------
    list of dict
        The records, in file order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "dialogues.jsonl"
    >>> _ = p.write_text('{"id": "a"}\\n{"id": "b"}\\n{"id": ')     # killed mid-write
    >>> [r["id"] for r in read_records(p)]
    ['a', 'b']
    """
    from negolens.agents.formats import RowProblems, read_jsonl

    bad = RowProblems(path, strict)
    rows = read_jsonl(path, bad)
    bad.report(len(rows), "records")
    return [rec for _, rec in rows if ids is None or rec.get("id") in ids]


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _repair(path: Path) -> None:
    """Drop a torn trailing line so appends start on a fresh line."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def run_negotiations(
    scenarios: Iterable[Scenario],
    buyer,
    seller,
    config: RunConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> list[dict]:
    """Run every scenario to an outcome; returns the records of the dialogues played, in the
    scenarios' order, in one process as in several (``out`` gets each as it finishes).

    With ``out``, the folder's ``run.json`` must describe this run (:func:`run_identity`) for
    its dialogues to be resumed; another run there raises :class:`~negolens.errors.NegolensError`
    unless ``overwrite`` (which deletes the earlier run's ``dialogues.jsonl`` and ``summary.csv``).
    """
    config = config or RunConfig()
    scenarios = list(scenarios)
    guards = Guards(config.regulated_seller, config.budget_guard)
    path = Path(out) / "dialogues.jsonl" if out is not None else None
    w = active_world()
    if path is not None:
        identity = run_identity(scenarios, buyer, seller, config)
        start_run(out, identity, kind="negotiate", owns=RUN_OUTPUTS, overwrite=overwrite, models=identity["models"])
        if w.main:
            _merge_parts(path, order=None)  # a killed multi-process run left its processes' parts
        barrier()
    skip = finished_ids(path) if path is not None else set()
    jobs = [(dialogue_id(s, i), s) for i, s in enumerate(scenarios)]
    todo = [(d, s) for d, s in jobs if d not in skip]
    mine = [job for _, job in shard(todo)]
    if path is not None and w.size > 1:  # each process appends to its own part; merged at the end
        path = path.with_name(f"dialogues.rank{w.rank}.jsonl")
    agents = {"buyer": buyer, "seller": seller}
    records = []
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="negotiations", disable=not progress or not w.main)
    finished: set[str] = set()
    sizes = chunks(mine, config.batch_size, _device(buyer, seller), cpu_default=16, log=tqdm.write)
    chunk = next(sizes, None)
    while chunk is not None:
        try:
            _run_chunk([(d, s) for d, s in chunk if d not in finished], config, agents, guards, path, bar, records, finished)
        except Exception as err:  # noqa: BLE001 — out of memory: the unfinished rows again, in smaller chunks
            if not is_oom(err):
                raise
            chunk = sizes.throw(err)
            continue
        chunk = next(sizes, None)
    bar.close()
    position = {d: i for i, (d, _) in enumerate(jobs)}
    if w.size > 1:
        records = [r for part in gather([(w.rank, records)], w.size) for r in part]
    records.sort(key=lambda r: position[r["id"]])
    if w.size > 1 and out is not None:
        barrier()  # every part is complete
        if w.main:
            _merge_parts(Path(out) / "dialogues.jsonl", order=position)
        barrier()
    return records


def _merge_parts(path: Path, order: dict[str, int] | None) -> None:
    """Append the processes' ``dialogues.rankN.jsonl`` parts to ``path`` (in ``order``), then delete them."""
    parts = sorted(path.parent.glob("dialogues.rank*.jsonl"))
    if not parts:
        _repair(path)
        return
    _repair(path)
    have = finished_ids(path)
    rows = []
    for part in parts:
        _repair(part)
        rows += [r for r in read_records(part) if r["id"] not in have]
    if order is not None:
        rows.sort(key=lambda r: order.get(r["id"], len(order)))
    for rec in rows:
        _append(path, rec)
    for part in parts:
        part.unlink()


def _device(*agents) -> str:
    """Where the agents' models run (``"cpu"`` for rule agents)."""
    for agent in agents:
        model = getattr(agent, "model", None)
        if model is not None and hasattr(model, "device"):
            return str(model.device)
    return "cpu"


def _run_chunk(chunk, config: RunConfig, agents: dict, guards, path, bar, records: list, finished: set) -> None:
    """Play the dialogues of ``chunk`` together to their ends (records appended as each ends)."""
    buyer, seller = agents["buyer"], agents["seller"]
    negs = {d: Negotiation(s, config.max_turns, config.first, guards, announce_turns=config.announce_turns)
            for d, s in chunk}
    for _round in range(config.max_turns + 1):  # each round moves every live dialogue one turn
        if all(n.done for n in negs.values()):
            break
        for role in ("buyer", "seller"):
            group = [(d, n) for d, n in negs.items() if not n.done and n.to_move == role]
            if not group:
                continue
            for (d, n), move in zip(group, _moves(agents[role], group, config.seed)):
                n.apply(move)
                if n.done:
                    rec = _record(d, n, buyer, seller, config)
                    records.append(rec)
                    finished.add(d)
                    if path is not None:
                        _append(path, rec)
                    bar.update(1)
    if not all(n.done for n in negs.values()):  # cannot happen: Negotiation ends at max_turns
        raise RuntimeError(f"negotiations {[d for d, n in negs.items() if not n.done]} did not end within "
                           f"max_turns={config.max_turns}: a protocol bug, please report it")


RUN_OUTPUTS = ("dialogues.jsonl", "dialogues.rank*.jsonl", "summary.csv")  # what a negotiation run writes in its folder


def run_identity(scenarios: list[Scenario], buyer, seller, config: RunConfig) -> dict:
    """What makes two negotiation runs the same run (recorded in the output folder's ``run.json``).

    The run settings except ``batch_size`` (a dialogue's transcript does not depend on the batch
    it ran in, so a killed run may resume with a smaller batch; ``announce_turns`` only when on),
    both agents' configs, the
    scenario ids in order, and a content fingerprint of each local model folder the agents use.

    Examples
    --------
    >>> from negolens.agents.rule_agent import RuleAgent
    >>> from negolens.agents.builtin import builtin_scenarios
    >>> ident = run_identity(builtin_scenarios()[:2], RuleAgent("buyer"), RuleAgent("seller"), RunConfig(max_turns=4))
    >>> ident["max_turns"], len(ident["scenarios"]), "batch_size" in ident
    (4, 2, False)
    """
    settings = {k: v for k, v in asdict(config).items() if k != "batch_size"}
    if not settings["announce_turns"]:  # added later: recorded only when on, so earlier runs still resume
        del settings["announce_turns"]
    b, s = buyer.config(), seller.config()
    return {**settings, "buyer": b, "seller": s, "scenarios": [sc.id for sc in scenarios],
            "models": model_refs(*(c.get("model") for c in (b, s)))}


def _moves(agent, group: list[tuple[str, Negotiation]], run_seed: int) -> list[Move]:
    """One batched step for ``agent``; an exception becomes a protocol failure per dialogue."""
    try:
        if hasattr(agent, "act_batch"):
            seeds = [turn_seed(run_seed, d, len(n.turns)) for d, n in group]
            moves = list(agent.act_batch([n for _, n in group], seeds))
        else:
            moves = [agent.act(n) for _, n in group]
        if len(moves) != len(group):  # a dialogue without a move would never advance
            raise RuntimeError(f"{type(agent).__name__} returned {len(moves)} moves for {len(group)} dialogues")
        return moves
    except Exception as err:  # noqa: BLE001 — recorded, not hidden: the batch must not crash
        if is_oom(err):  # not the agent's fault: the runner retries these dialogues in smaller batches
            raise
        msg = f"agent_error: {type(err).__name__}: {err}"
        traceback.print_exc()
        return [Move("", None, failure=msg) for _ in group]


def _record(did: str, neg: Negotiation, buyer, seller, config: RunConfig) -> dict:
    rec = {"id": did, **neg.to_record(), "buyer": buyer.config(), "seller": seller.config(), "run": asdict(config)}
    rec["metrics"] = dialogue_metrics(rec)
    return rec
