import json

import pytest

from negolens.agents import extract_price
from negolens.agents.price_accuracy import price_parser_accuracy
from negolens.paths import data_dir


@pytest.mark.parametrize(
    "text, price",
    [
        ("$49 is too low, I can do $55", 55.0),
        ("How about $1,250?", 1250.0),
        ("I'd take 1.2k for it", 1200.0),
        ("120 bucks and it's yours", 120.0),
        ("Would you accept $7.50?", 7.5),
        ("I can do 2000", 2000.0),
        ("I bought it new for $350, but I'll let it go at $200", 200.0),
        ("No less than $8500, sorry", 8500.0),
        ("I see you are asking $5900", None),
        ("It's a 2009 Toyota with 100k miles", None),
        ("Hi, is this still available?", None),
        ("", None),
        ("$200 works for me, deal", 200.0),
    ],
)
def test_extract_price(text, price):
    assert extract_price(text) == price


@pytest.mark.needs("data")
def test_dev_split_accuracy():
    """The figure in the README, measured on the labelled Craigslist dev split."""
    root = data_dir()
    rows = [json.loads(line) for line in (root / "craigslist_bargains" / "validation_dev.jsonl").read_text(encoding="utf-8").splitlines()]
    result = price_parser_accuracy(rows)
    assert result["n_priced"] == 710 and result["n_unpriced"] == 1264
    assert result["exact"] > 0.92
    assert result["false_positive_rate"] < 0.05
    assert result["baseline_first_dollar_exact"] < 0.65  # AgreeMate's first-$ regex
