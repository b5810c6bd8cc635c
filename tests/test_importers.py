"""Bring your own transcripts: the open format, the importers, bad rows, metrics beside stored ones."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from negolens.agents import (
    TranscriptFormatError, UnreadableRowsWarning, dialogue_metrics, example_transcripts, from_records, load_scenarios,
    load_transcripts, metrics_table, negotiate, read_records, transcript_metrics, write_transcripts,
)
from negolens.agents.formats import detect_format, transcript_to_dict
from negolens.agents.importers import agreemate_pairing
from negolens.agents.protocol import Act, Move, Negotiation
from negolens.cli import app

FIX = Path(__file__).parent / "fixtures"
AGREEMATE = FIX / "agreemate"
COT_FILE = AGREEMATE / "baseline-COT-8B-buyer+baseline-3B-seller-fair.csv"
BAD = FIX / "bad"


def _load_quiet(source, **kw):
    """load_transcripts, returning (transcripts, warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = load_transcripts(source, **kw)
    return items, [str(w.message) for w in caught if issubclass(w.category, UnreadableRowsWarning)]


@pytest.fixture(scope="module")
def records():
    """Rule-agent dialogues with several outcomes (deals, quits, turn limits)."""
    first = negotiate("rule:aggressive", "rule:aggressive", load_scenarios("builtin", 10, seed=1), max_turns=6,
                      progress=False)
    second = negotiate("rule:passive", "rule", load_scenarios("builtin", 6), max_turns=4, progress=False)
    sc = load_scenarios("builtin")[0]                        # list $350, budget $315, cost $227.50
    hand = [  # the outcomes rule agents never reach: overshoot, quit, turn limit, failures, a blocked price
        [Move("$330?", Act.OFFER, 330.0), Move("Deal.", Act.ACCEPT)],
        [Move("$200?", Act.OFFER, 200.0), Move("No.", Act.QUIT)],
        [Move("$200?", Act.OFFER, 200.0), Move("$340.", Act.COUNTER, 340.0)],
        [Move("An offer.", Act.OFFER, None)],
        [Move("A billion.", Act.OFFER, 1e9)],
        [Move("$200?", Act.OFFER, 200.0), Move("$100.", Act.COUNTER, 100.0), Move("Bye.", Act.QUIT)],
    ]
    extra = []
    for i, moves in enumerate(hand):
        neg = Negotiation(sc, max_turns=2 if i == 2 else 6)
        for m in moves:
            neg.apply(m)
        extra.append({"id": f"hand-{i}", **neg.to_record(), "buyer": {"kind": "rule"}, "seller": {"kind": "rule"}})
    return first + [{**r, "id": f"b-{r['id']}"} for r in second] + extra


# --- detection -------------------------------------------------------------------------------

@pytest.mark.parametrize("path, fmt", [
    (COT_FILE, "agreemate"), (FIX / "chat" / "lab_log.csv", "chat"), (FIX / "chat" / "lab_log.jsonl", "chat"),
    (FIX / "open" / "example.jsonl", "open"),
])
def test_detect_format(path, fmt):
    assert detect_format(path) == fmt


def test_detect_format_refuses_an_unknown_csv(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError, match="x.csv.*pass --format"):
        load_transcripts(p)
    with pytest.raises(Exception, match="unknown transcript format 'xml'"):
        load_transcripts(p, format="xml")


# --- AgreeMate ----------------------------------------------------------------------------------

def test_agreemate_fixture_reads_every_row():
    items, warned = _load_quiet(AGREEMATE)
    assert not warned and len(items) == 8
    cot = [t for t in items if t.meta["file"] == COT_FILE.name]
    assert len(cot) == 4 and all(t.meta["buyer_cot"] and t.meta["seller_personality"] == "fair" for t in cot)
    bike = cot[0]
    assert bike.scenario.title == "Road bike, 54cm aluminium frame" and "\n" in bike.scenario.description
    assert bike.scenario.list_price == 350 and bike.scenario.buyer_target == 260 and bike.scenario.seller_target == 350
    assert [u.role for u in bike.turns] == ["buyer", "seller"] * 3
    assert bike.turns[0].text == "Hi! I’m interested in the bike. Would you take $240?"   # curly quote kept
    assert [u.intent for u in bike.turns][:2] == ["init-price", "counter-price"]
    assert bike.turns[-1].price == 300 and bike.deal is True and bike.deal_price == 300
    lamp = cot[1]
    assert lamp.turns[0].price is None and lamp.turns[0].intent == "inquiry"          # −1.0: no price
    fridge = cot[2]
    assert fridge.deal is False and fridge.deal_price is None
    assert {"buyer_budget", "seller_cost"} <= set(bike.filled) and "list_price" not in bike.filled
    assert bike.meta["stored_metrics"]["dialogue_length"] == 6
    other = [t for t in items if t.meta["file"] != COT_FILE.name]
    assert "probing_ratio" not in other[0].meta["stored_metrics"]                      # a column missing in one file
    assert len({t.id for t in items}) == 8


def test_agreemate_pairing_from_file_names():
    m = agreemate_pairing("baseline-3B-buyer-aggressive+baseline-COT-70B-seller_updated.csv")
    assert (m["buyer_model"], m["buyer_personality"], m["buyer_cot"]) == ("baseline-3B", "aggressive", False)
    assert (m["seller_model"], m["seller_cot"], m["seller_personality"]) == ("baseline-70B", True, "default")
    assert agreemate_pairing("results.csv") == {}


def test_agreemate_malformed_rows_are_counted_or_fatal():
    items, warned = _load_quiet(BAD / "baseline-3B-buyer+baseline-3B-seller.csv")
    assert len(items) == 1 and len(warned) == 1
    msg = warned[0]
    assert "skipped 5 unreadable row(s)" in msg
    for part in ("row 2 (line", "'prices'", "row 3", "'outcome'", "row 4", "'listing_price'", "row 5"):
        assert part in msg
    with pytest.raises(TranscriptFormatError, match=r"baseline-3B-buyer\+baseline-3B-seller.csv:row 2 .*'prices'"):
        load_transcripts(BAD / "baseline-3B-buyer+baseline-3B-seller.csv", strict=True)


# --- chat logs ----------------------------------------------------------------------------------

def test_chat_logs_csv_and_jsonl():
    items, warned = _load_quiet(FIX / "chat")
    assert not warned
    by_id = {t.id: t for t in items}
    assert set(by_id) == {"lab_log.csv:lamp", "lab_log.csv:tent", "lab_log.jsonl"}
    lamp = by_id["lab_log.csv:lamp"]
    assert [u.role for u in lamp.turns] == ["buyer", "seller", "buyer", "seller"]
    assert [u.price for u in lamp.turns] == [25.0, 35.0, 30.0, 30.0]
    assert lamp.deal is None and lamp.scenario.list_price == 35.0 and "list_price" in lamp.filled
    sofa = by_id["lab_log.jsonl"]
    assert len(sofa.turns) == 5 and sofa.turns[1].price == 550.0


@pytest.mark.parametrize("name, kept, bad, where", [
    ("chat_bad.csv", 2, 3, "chat_bad.csv:row 3: field 'speaker'"),
    ("chat_bad.jsonl", 2, 2, "chat_bad.jsonl:line 2: field 'text'"),
])
def test_chat_malformed_rows(name, kept, bad, where):
    items, warned = _load_quiet(BAD / name)
    assert len(items) == 1 and len(items[0].turns) == kept
    assert len(warned) == 1 and f"skipped {bad} unreadable row(s)" in warned[0] and where in warned[0]
    with pytest.raises(TranscriptFormatError, match=name):
        load_transcripts(BAD / name, strict=True)


# --- the open format ----------------------------------------------------------------------------

def test_open_format_fixture_and_round_trip(tmp_path):
    items, warned = _load_quiet(FIX / "open" / "example.jsonl")
    assert not warned and [t.id for t in items] == ["bike-1", "lamp-1", "example-3"]
    bike, lamp, bare = items
    assert bike.filled == () and bike.deal_price == 290 and bike.meta["buyer_model"] == "llama-3-8b"
    assert lamp.deal is False and lamp.turns[1].price == 45 and lamp.turns[2].intent == "reject"
    assert bare.deal is None and bare.scenario.title == ""
    assert math.isnan(bare.scenario.list_price) and "list_price" in bare.filled     # no price anywhere
    for source in (items, load_transcripts(AGREEMATE), load_transcripts(FIX / "chat"), example_transcripts(5)):
        write_transcripts(source, tmp_path / "t.jsonl")
        back = load_transcripts(tmp_path / "t.jsonl")
        assert [transcript_to_dict(t) for t in back] == [transcript_to_dict(t) for t in source]
        if source is not items:                                                       # (nan != nan)
            assert back == source


def test_runner_records_round_trip_through_the_open_format(records, tmp_path):
    original = from_records(records)
    write_transcripts(original, tmp_path / "t.jsonl")
    back = load_transcripts(tmp_path / "t.jsonl", format="open")
    assert back == original
    assert {t.meta["outcome"] for t in back} >= {"deal"} and back[0].meta["buyer_model"] == "rule"


def test_open_format_bad_lines(tmp_path):
    items, warned = _load_quiet(BAD / "open_bad.jsonl")
    assert [t.id for t in items] == ["ok-1", "ok-2"]                                 # the torn last line: silent
    assert len(warned) == 1 and "skipped 5 unreadable row(s)" in warned[0]
    for part in ("line 2: field '(json)'", "line 3: field 'turns'", "line 4: field 'turns[0].role'",
                 "line 5: field 'turns[0].price'", "line 6: field 'scenario.list_price'"):
        assert part in warned[0]
    with pytest.raises(TranscriptFormatError, match=r"open_bad.jsonl:line 2: field '\(json\)'"):
        load_transcripts(BAD / "open_bad.jsonl", strict=True)


# --- the runner's JSON lines (issue #14) ----------------------------------------------------------

def test_read_records_torn_last_line_vs_bad_line(records, tmp_path):
    p = tmp_path / "dialogues.jsonl"
    lines = [json.dumps(r) for r in records[:3]]
    p.write_text("\n".join(lines) + "\n" + lines[0][:40], encoding="utf-8")                             # killed mid-write
    assert len(read_records(p)) == 3
    p.write_text(lines[0] + "\n{not json\n" + lines[1] + "\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError, match=r"dialogues.jsonl:line 2"):
        read_records(p)
    with pytest.warns(UnreadableRowsWarning, match="skipped 1 unreadable row"):
        assert len(read_records(p, strict=False)) == 2
    items, warned = _load_quiet(p)
    assert len(items) == 2 and "line 2" in warned[0]


def test_runner_file_with_a_wrong_shape_record(records, tmp_path):
    p = tmp_path / "dialogues.jsonl"
    bad = {k: v for k, v in records[1].items() if k != "turns"}
    p.write_text("\n".join(json.dumps(r) for r in (records[0], bad, records[2])) + "\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError, match=r"dialogues.jsonl:line 2: field 'turns'"):
        load_transcripts(p, format="runner", strict=True)
    items, warned = _load_quiet(p, format="runner")
    assert len(items) == 2 and "line 2: field 'turns'" in warned[0]


# --- metrics --------------------------------------------------------------------------------------

def test_transcript_metrics_equal_the_runner_metrics(records):
    assert {r["outcome"] for r in records} == {"deal", "quit", "turn_limit", "protocol_failure"}
    assert any(t["overshoot"] for r in records for t in r["turns"]) and any(t["blocked"] for r in records for t in r["turns"])
    for rec, tr in zip(records, from_records(records)):
        assert transcript_metrics(tr) == pytest.approx(dialogue_metrics(rec), nan_ok=True), rec["id"]


def test_imported_metrics_are_undefined_where_the_data_cannot_say():
    bike = load_transcripts(COT_FILE)[0]
    m = transcript_metrics(bike)
    assert m["deal"] == 1.0 and m["bargained_ratio"] == pytest.approx(300 / 350)
    assert m["reward"] is None and m["overshoot"] is None and m["protocol_failure"] is None   # no budget / cost given
    chat = load_transcripts(FIX / "chat" / "lab_log.jsonl")[0]
    mc = transcript_metrics(chat)
    assert mc["deal"] is None and mc["discount"] is None and mc["first_offer_ratio_buyer"] is None
    assert mc["length"] == 5


def test_metrics_table_beside_agreemate(tmp_path):
    items = load_transcripts(AGREEMATE)
    table = metrics_table(items, by=["buyer_cot"], metrics=["deal", "bias", "fairness", "discount", "length"])
    assert set(table.buyer_cot) == {True, False}
    row = table[(table.buyer_cot == False) & (table.metric == "bias")].iloc[0]  # noqa: E712
    assert row.stored_metric == "bias" and row.n == row.stored_n == 3
    lens = next(t for t in items if t.scenario.title.startswith("50mm"))            # deal below the buyer's target
    assert lens.meta["stored_metrics"]["bias"] > 1 and transcript_metrics(lens)["bias"] == -1.0
    disc = table[(table.metric == "discount")]
    assert (disc.stored_metric == "aggressiveness").all() and disc["mean"].tolist() == pytest.approx(disc.stored_mean.tolist())
    assert "unbounded" in table.loc[table.stored_metric == "fairness", "note"].iloc[0]
    extra = table[table.metric.isna()]
    assert {"concession_rate", "rel_efficiency"} <= set(extra.stored_metric)
    assert "stored_metric" not in metrics_table(example_transcripts(2)).columns


def test_metrics_verb(tmp_path):
    out = tmp_path / "m"
    res = CliRunner().invoke(app, ["metrics", str(AGREEMATE), "--by", "buyer_model,buyer_cot", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "stored vs negolens definitions" in res.output and "aggressiveness" in res.output
    assert (out / "metrics.csv").is_file() and len(load_transcripts(out / "transcripts.jsonl")) == 8
    bad = CliRunner().invoke(app, ["metrics", str(BAD / "chat_bad.csv"), "--strict", "--out", str(out)])
    assert bad.exit_code != 0 and "chat_bad.csv:row" in str(bad.exception or bad.output)


def test_attention_and_probe_on_imported_transcripts(tiny_dirs, tmp_path):
    """Teacher-forced reading of an AgreeMate file from the seller's view; probes learn its intents."""
    run = CliRunner()
    model = str(tiny_dirs["llama"])
    att = run.invoke(app, ["attention", "--model", model, "--transcripts", str(COT_FILE), "--format", "agreemate",
                           "--n", "2", "--role", "seller", "--out", str(tmp_path / "att"), "--show", "0:1.1"])
    assert att.exit_code == 0, att.output
    assert (tmp_path / "att" / "attention_heads.csv").is_file()
    pr = run.invoke(app, ["probe", "--model", model, "--transcripts", str(AGREEMATE), "--labels", "act",
                          "--layers", "0,1", "--n-splits", "2", "--out", str(tmp_path / "probe")])
    assert pr.exit_code == 0, pr.output
    assert (tmp_path / "probe" / "probes" / "act" / "direction.npy").is_file()
