"""The batched negotiation runner: many dialogues, one batched decoding step per turn.

All live dialogues whose next speaker is the same LLM agent take their turn together (one
:class:`~negolens.agents.decoding.TurnDecoder` pass); rule agents answer instantly. Each
finished dialogue is appended to ``dialogues.jsonl`` as one JSON line and fsync'ed, so a killed
run loses at most the dialogues in flight; rerunning the same command skips every dialogue
already written (no duplicates). Sampling seeds derive from (run seed, dialogue id, turn), so a
dialogue's transcript does not depend on which others ran beside it.
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

from negolens.agents.metrics import dialogue_metrics
from negolens.agents.protocol import Guards, Move, Negotiation
from negolens.agents.scenarios import Scenario
from negolens.config import option


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
    batch_size: int = option(16, "dialogues decoded together")
    regulated_seller: bool = option(True, "the seller may not accept or offer below its cost")
    budget_guard: str = option("record", "buyer offers above budget: record (allowed, counted) | block")


def dialogue_id(scenario: Scenario, index: int) -> str:
    """The id of the ``index``-th dialogue of a run, on ``scenario`` (``00003-cb-test-17``)."""
    return f"{index:05d}-{scenario.id}"


def turn_seed(run_seed: int, did: str, turn: int) -> int:
    """Sampling seed of one turn: independent of the batch the dialogue ran in."""
    return int(hashlib.sha256(f"{run_seed}|{did}|{turn}".encode()).hexdigest()[:8], 16)


def finished_ids(path: Path) -> set[str]:
    """Ids already written; a torn last line (killed mid-write) is ignored and rewritten."""
    return {rec["id"] for rec in read_records(path) if "id" in rec} if path.is_file() else set()


def read_records(path: str | Path, ids: set[str] | None = None) -> list[dict]:
    """Records from a dialogues.jsonl (optionally only ``ids``), skipping a torn last line."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ids is None or rec.get("id") in ids:
            out.append(rec)
    return out


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
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
) -> list[dict]:
    """Run every scenario to an outcome; returns the records (also appended to ``out``)."""
    config = config or RunConfig()
    guards = Guards(config.regulated_seller, config.budget_guard)
    path = Path(out) / "dialogues.jsonl" if out is not None else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _repair(path)
    skip = finished_ids(path) if path is not None else set()
    jobs = [(dialogue_id(s, i), s) for i, s in enumerate(scenarios)]
    todo = [(d, s) for d, s in jobs if d not in skip]
    agents = {"buyer": buyer, "seller": seller}
    records = []
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="negotiations", disable=not progress)
    for start in range(0, len(todo), config.batch_size):
        chunk = todo[start : start + config.batch_size]
        negs = {d: Negotiation(s, config.max_turns, config.first, guards) for d, s in chunk}
        while any(not n.done for n in negs.values()):
            for role in ("buyer", "seller"):
                group = [(d, n) for d, n in negs.items() if not n.done and n.to_move == role]
                if not group:
                    continue
                for (d, n), move in zip(group, _moves(agents[role], group, config.seed)):
                    n.apply(move)
                    if n.done:
                        rec = _record(d, n, buyer, seller, config)
                        records.append(rec)
                        if path is not None:
                            _append(path, rec)
                        bar.update(1)
    bar.close()
    return records


def _moves(agent, group: list[tuple[str, Negotiation]], run_seed: int) -> list[Move]:
    """One batched step for ``agent``; an exception becomes a protocol failure per dialogue."""
    try:
        if hasattr(agent, "act_batch"):
            seeds = [turn_seed(run_seed, d, len(n.turns)) for d, n in group]
            return agent.act_batch([n for _, n in group], seeds)
        return [agent.act(n) for _, n in group]
    except Exception as err:  # noqa: BLE001 — recorded, not hidden: the batch must not crash
        msg = f"agent_error: {type(err).__name__}: {err}"
        traceback.print_exc()
        return [Move("", None, failure=msg) for _ in group]


def _record(did: str, neg: Negotiation, buyer, seller, config: RunConfig) -> dict:
    rec = {"id": did, **neg.to_record(), "buyer": buyer.config(), "seller": seller.config(), "run": asdict(config)}
    rec["metrics"] = dialogue_metrics(rec)
    return rec
