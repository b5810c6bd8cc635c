"""Negotiation scenarios: what is sold, at what list price, and each side's private numbers.

Three sources, one record type (:class:`Scenario`):

* ``craigslist`` — Craigslist Bargains (He et al. 2018), HF-format JSON lines. The buyer's target
  comes from the data; the seller's target is the list price. The data has no seller bottom
  line, so the seller's cost defaults to ``cost_ratio`` × list (documented, configurable).
  The buyer's budget is its target (AgreeMate's convention).
* ``amazon`` — AmazonHistoryPrice (Xia et al. 2024, Apache-2.0), with the RLVR paper's rules:
  price = max(list, highest), seller cost = lowest, buyer budget = 0.8 × price (mutual interest
  when budget > cost); the buyer aims 20% under budget. The train/test split (80/20) is a
  deterministic hash of title, file and index.
* ``builtin`` — 36 items written for negolens, so everything runs with no data directory.

Train and held-out scenarios of every source come from :func:`split_scenarios`, so a trained
agent is never evaluated on what it trained on. Data paths are configurable
(:func:`negolens.paths.data_dir`); nothing is copied into the repo.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from negolens.errors import DataNotFoundError, NegolensError, choice
from negolens.paths import data_dir

__all__ = ["Scenario", "SOURCES", "SPLITS", "load_scenarios", "split_scenarios", "load_craigslist", "load_amazon",
           "parse_money"]

SOURCES = ("craigslist", "amazon", "builtin")
SPLITS = ("train", "test")
SOURCE_SPLITS = {"craigslist": ("test", "dev"), "amazon": ("train", "test", "all"),
                 "builtin": ("test", "dev", "train", "all")}  # builtin ignores the split


@dataclass(frozen=True)
class Scenario:
    """One item to negotiate over. Prices in dollars; ``buyer_budget`` and ``seller_cost`` are the
    hard limits (RLVR's B and C); targets are what each side aims for."""

    id: str
    source: str
    title: str
    description: str
    category: str
    list_price: float
    buyer_target: float
    seller_target: float
    buyer_budget: float
    seller_cost: float

    def to_dict(self) -> dict:
        """The scenario as a plain dict (the form dialogue records store)."""
        return asdict(self)


def _split_of(key: str, test_fraction: float = 0.2) -> str:
    """``"test"`` for about ``test_fraction`` of keys, else ``"train"`` (a stable hash, no RNG)."""
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def parse_money(text: str) -> float:
    """A price string such as ``"$1,299.00"`` as a float."""
    return float(str(text).replace("$", "").replace(",", "").strip())


def load_craigslist(path: str | Path, cost_ratio: float = 0.7) -> list[Scenario]:
    """Scenarios from a Craigslist Bargains JSONL file (one per dialogue with a usable price)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"no Craigslist file at {path}; set NEGOLENS_DATA or pass data_dir=")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            roles = row["agent_info"]["Role"]
            b = roles.index("buyer")
            items = row["items"]
            list_price = float(items["Price"][b])
            target = float(row["agent_info"]["Target"][b])
        except (ValueError, KeyError, json.JSONDecodeError) as err:
            raise NegolensError(f"{path}:{n + 1}: not a Craigslist Bargains record ({err})") from None
        if list_price <= 0 or target <= 0:
            continue
        out.append(
            Scenario(
                id=f"cb-{path.stem}-{n}",
                source="craigslist",
                title=items["Title"][b].strip(),
                description=items["Description"][b].strip()[:600],
                category=items["Category"][b],
                list_price=list_price,
                buyer_target=target,
                seller_target=list_price,
                buyer_budget=target,
                seller_cost=round(cost_ratio * list_price, 2),
            )
        )
    return out


def load_amazon(folder: str | Path, split: str = "train") -> list[Scenario]:
    """AmazonHistoryPrice products with the RLVR rules; ``split`` is ``train``, ``test`` or ``all``."""
    choice(split, SOURCE_SPLITS["amazon"], "amazon split")
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataNotFoundError(f"no AmazonHistoryPrice *.json files in {folder}")
    out = []
    for f in files:
        for n, row in enumerate(json.loads(f.read_text(encoding="utf-8"))):
            try:
                listed, highest, lowest = (parse_money(row[k]) for k in ("list_price", "highest_price", "lowest_price"))
            except (KeyError, ValueError):
                continue  # products with a missing price are not negotiable
            price = max(listed, highest)
            if price <= 0 or lowest <= 0:
                continue
            key = f"{row.get('title', '')}|{f.stem}|{n}"
            if split != "all" and _split_of(key) != split:
                continue
            out.append(
                Scenario(
                    id=f"amz-{f.stem}-{n}",
                    source="amazon",
                    title=row.get("title", "").strip()[:200],
                    description=(row.get("description") or "").strip()[:600],
                    category=row.get("category", f.stem),
                    list_price=price,
                    buyer_target=round(0.8 * 0.8 * price, 2),  # aim 20% under budget
                    seller_target=price,
                    buyer_budget=round(0.8 * price, 2),
                    seller_cost=lowest,
                )
            )
    return out


def load_scenarios(
    source: str, n: int | None = None, *, data: str | Path | None = None, split: str = "test", seed: int = 0
) -> list[Scenario]:
    """Scenarios from a source: all of them, or ``n`` sampled with ``seed``.

    Parameters
    ----------
    source : str
        ``builtin`` (no data needed), ``craigslist`` or ``amazon`` (read from the data directory).
    n : int, optional
        How many; ``None`` or more than there are: all, in file order.
    data : str or Path, optional
        The data directory holding ``craigslist_bargains/`` and ``amazon_history_price/``
        (default: :func:`negolens.paths.data_dir`).
    split : str
        ``craigslist``: ``test`` reads test.jsonl, ``dev`` validation_dev.jsonl.
        ``amazon``: ``train``, ``test`` or ``all``. Ignored for ``builtin``; for a train/test
        pair of any source use :func:`split_scenarios`.
    seed : int
        Seed of the sample when ``n`` is given.

    Returns
    -------
    list of Scenario

    Examples
    --------
    >>> items = load_scenarios("builtin", 8, seed=0)
    >>> len(items), items[0].source
    (8, 'builtin')
    """
    choice(source, SOURCES, "scenario source")
    choice(split, SOURCE_SPLITS[source], f"{source} split")
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
        raise NegolensError(f"number of scenarios must be at least 1, not {n!r} (or None for all)")
    if source == "builtin":
        from negolens.agents.builtin import builtin_scenarios

        items = builtin_scenarios()
    elif source in ("craigslist", "amazon"):
        root = data_dir(data)
        if root is None:
            raise DataNotFoundError(
                f"no data directory for {source!r}: set NEGOLENS_DATA (or pass --data) to the folder "
                "holding craigslist_bargains/ and amazon_history_price/, or use --scenarios builtin"
            )
        if source == "craigslist":
            name = {"dev": "validation_dev.jsonl", "test": "test.jsonl"}[split]
            items = load_craigslist(root / "craigslist_bargains" / name)
        else:
            items = load_amazon(root / "amazon_history_price", split=split)
    if n is not None and n < len(items):
        items = random.Random(seed).sample(items, n)
    return items


def split_scenarios(
    source: str, split: str, n: int | None = None, *, data: str | Path | None = None, seed: int = 0
) -> list[Scenario]:
    """Training or held-out scenarios of a source, disjoint by construction.

    Training (GRPO) draws from ``split="train"`` and the before/after evaluation from
    ``split="test"``, so a trained agent is always judged on scenarios it never played.

    Parameters
    ----------
    source : str
        ``amazon``: AmazonHistoryPrice's own 80/20 split (a hash of title, file and index).
        ``builtin``: a hashed 80/20 split of the built-in scenario ids.
        ``craigslist``: the SFT convention, ``train`` is test.jsonl and ``test`` is
        validation_dev.jsonl (Craigslist Bargains ships no other labelled files here).
    split : str
        ``train`` or ``test``.
    n : int, optional
        Sample this many (seeded); ``None`` or more than there are: all, in file order.
    data : str or Path, optional
        The data directory (see :func:`negolens.paths.data_dir`); unused for ``builtin``.
    seed : int
        Seed of the sample when ``n`` is given.

    Returns
    -------
    list of Scenario

    Examples
    --------
    >>> train = split_scenarios("builtin", "train")
    >>> test = split_scenarios("builtin", "test")
    >>> {s.id for s in train}.isdisjoint(s.id for s in test)
    True
    >>> len(split_scenarios("builtin", "test", n=3, seed=1))
    3
    """
    if split not in SPLITS:
        raise NegolensError(f"split must be one of {SPLITS}, not {split!r}")
    if source == "craigslist":
        return load_scenarios(source, n, data=data, split={"train": "test", "test": "dev"}[split], seed=seed)
    if source != "builtin":
        return load_scenarios(source, n, data=data, split=split, seed=seed)
    items = [s for s in load_scenarios("builtin") if _split_of(s.id) == split]
    return items if n is None or n >= len(items) else random.Random(seed).sample(items, n)
