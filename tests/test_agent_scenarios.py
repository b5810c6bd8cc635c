import json

import pytest

from negolens.agents.builtin import builtin_scenarios
from negolens.agents.scenarios import load_amazon, load_craigslist, load_scenarios
from negolens.errors import DataNotFoundError, NegolensError
from negolens.paths import data_dir

DATA = data_dir()


def test_builtin_runs_without_data(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEGOLENS_DATA", raising=False)
    items = load_scenarios("builtin")
    assert len(items) >= 30 and len({s.category for s in items}) >= 5
    assert all(s.seller_cost < s.buyer_target < s.buyer_budget < s.list_price for s in items)
    with pytest.raises(DataNotFoundError, match="NEGOLENS_DATA"):
        load_scenarios("craigslist")


@pytest.mark.needs("data")
def test_craigslist_fields():
    items = load_craigslist(DATA / "craigslist_bargains" / "validation_dev.jsonl")
    first = items[0]
    assert first.title == "GoPro Hero4 Black + Battery BacPac"
    assert (first.list_price, first.buyer_target, first.seller_target) == (265.0, 243.0, 265.0)
    assert len(load_scenarios("craigslist", split="test")) == 838


@pytest.mark.needs("data")
def test_amazon_rlvr_rules_and_split():
    train, test = load_amazon(DATA / "amazon_history_price", "train"), load_amazon(DATA / "amazon_history_price", "test")
    assert {s.id for s in train}.isdisjoint({s.id for s in test})
    assert [s.id for s in train] == [s.id for s in load_amazon(DATA / "amazon_history_price", "train")]
    raw = json.loads((DATA / "amazon_history_price" / "books.json").read_text(encoding="utf-8"))[0]
    s = next(s for s in train + test if s.id == "amz-books-0")
    assert s.list_price == max(8.21, 16.09) and s.seller_cost == 2.99 and s.buyer_budget == round(0.8 * 16.09, 2)
    assert raw["highest_price"] == "$16.09"


@pytest.mark.needs("data")
def test_sampling_is_seeded():
    a = [s.id for s in load_scenarios("craigslist", 10, seed=1)]
    assert a == [s.id for s in load_scenarios("craigslist", 10, seed=1)]
    assert a != [s.id for s in load_scenarios("craigslist", 10, seed=2)]


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"nope": 1}\n', encoding="utf-8")
    with pytest.raises(NegolensError, match="x.jsonl:1: not a Craigslist Bargains record"):
        load_craigslist(bad)
    assert len(builtin_scenarios()) == 36
