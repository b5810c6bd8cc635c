import pytest

from negolens.prices import find_prices


def values(text):
    return [(p.text, p.value) for p in find_prices(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I can do $1,250 for it", [("$1,250", 1250.0)]),
        ("how about 1.2k?", [("1.2k", 1200.0)]),
        ("I'll give you 120 bucks", [("120 bucks", 120.0)]),
        ("$7.50 is my final offer", [("$7.50", 7.5)]),
        ("I could pay 2000 if you deliver", [("2000", 2000.0)]),
        ("$ 45 and it's yours", [("$ 45", 45.0)]),
        ("300 dollars, cash", [("300 dollars", 300.0)]),
        ("$49 is too low, I can do $55", [("$49", 49.0), ("$55", 55.0)]),
    ],
)
def test_price_forms(text, expected):
    assert values(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "It has 21 speeds and 3 gears",  # units that are not money / single digits
        "Core i7 with 16 GB and a 512gb SSD",
        "made in 1998, 2 bedrooms",
        "call me at 5:30 or text #12",
        "the RX580 card is 2nd hand, 50% off",
    ],
)
def test_not_prices(text):
    assert values(text) == []


def test_year_after_context_word_is_not_a_price():
    assert values("built in 2015, asking 900") == [("900", 900.0)]
    assert values("model year 2019") == []


def test_units_that_are_not_money():
    assert values("A 2015 model with 40,000 miles") == []
    assert values("my 2009 Toyota Camry, asking 4500") == [("4500", 4500.0)]
    assert values("I can do 2000") == [("2000", 2000.0)]
    assert values("100k miles on it") == []
    assert values("it has 16 GB of RAM") == []
    assert values("only 50% off") == []


def test_spans_point_into_text():
    text = "Would you take $1,250 or 1.2k?"
    for p in find_prices(text):
        assert text[p.start : p.end] == p.text
