"""``negolens chat``: line parsing (agents/human.py) and the terminal loop (the chat verb)."""

import json

import pytest
from typer.testing import CliRunner

from negolens.agents.builtin import builtin_scenarios
from negolens.agents.human import Command, HumanAgent, Problem, check_role, parse_command, parse_price
from negolens.agents.protocol import Act, Guards, Move, Negotiation
from negolens.cli import app
from negolens.errors import NegolensError

BIKE = builtin_scenarios()[0]  # list $350, buyer budget $315, seller cost $227.50


def chat(tmp_path, *args, input=""):
    result = CliRunner().invoke(app, ["chat", "--model", "rule", "--out", str(tmp_path), *args], input=input)
    files = sorted(tmp_path.glob("chat-*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    return result, records


# --- the parser -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("250", 250.0), ("$250", 250.0), ("250.5", 250.5), ("250.50", 250.5), ("1,250", 1250.0),
    ("$1,250.50", 1250.5), ("12,500,000", 12_500_000.0), (" 99 ", 99.0),
])
def test_parse_price_accepts_the_documented_formats(text, value):
    assert parse_price(text, list_price=200_000) == value


@pytest.mark.parametrize("text, says", [
    ("", "missing price"), ("-5", "more than $0"), ("$-5", "more than $0"), ("0", "more than $0"),
    ("abc", "'abc' is not a price"), ("1e12", "'1e12' is not a price"), (",", "',' is not a price"),
    ("1.200,50", "'1.200,50' is ambiguous"), ("12,50", "ambiguous"), ("1.200", "ambiguous"),
    ("1,20", "ambiguous"), ("1 200", "'1 200' is ambiguous"), ("250 please", "only the price goes after"),
    ("35001", "more than 100 × the list price ($350)"),
])
def test_parse_price_explains_what_it_refuses(text, says):
    problem = parse_price(text, list_price=350)
    assert isinstance(problem, Problem) and says in problem.message
    if says != "missing price" and "after" not in says:
        assert "250.50" in problem.message or "$0" in problem.message or "list price" in problem.message


def test_price_limit_is_the_protocols():
    assert parse_price("35000", list_price=350) == 35000.0  # exactly 100 × list is still a price


def _neg(standing=None, guards=None, turns=0):
    """The bike negotiation with ``turns`` talk turns played and ``standing`` = (role, price) on the table."""
    neg = Negotiation(BIKE, guards=guards or Guards())
    for _ in range(turns):
        neg.apply(Move("hm", Act.INFORM))
    if standing:
        while neg.to_move != standing[0]:
            neg.apply(Move("hm", Act.INFORM))
        neg.apply(Move("", Act.OFFER, standing[1]))
    return neg


def test_offer_is_echoed_and_keeps_the_message():
    cmd = parse_command("Hi, would that work? /offer $250", _neg(), "buyer")
    assert isinstance(cmd, Command)
    assert (cmd.move.utterance, cmd.move.act, cmd.move.price) == ("Hi, would that work?", Act.OFFER, 250.0)
    assert cmd.echo == "you offer $250"


def test_accept_reject_counter_need_a_standing_offer_from_the_other_side():
    for line in ("/accept", "/reject", "/counter 240"):
        problem = parse_command(line, _neg(), "buyer")
        assert isinstance(problem, Problem) and "no offer on the table" in problem.message
    mine = parse_command("/accept", _neg(standing=("buyer", 250)), "buyer")
    assert isinstance(mine, Problem) and "the $250 on the table is yours" in mine.message
    facing = _neg(standing=("seller", 300))
    assert parse_command("/accept", facing, "buyer").echo == "you accept the seller's $300"
    assert parse_command("No thanks /reject", facing, "buyer").move.act is Act.REJECT
    assert parse_command("/counter 260", facing, "buyer").echo == "you counter with $260"


def test_accept_with_a_price():
    facing = _neg(standing=("seller", 300))
    assert parse_command("/accept 300", facing, "buyer").move.act is Act.ACCEPT
    problem = parse_command("/accept 280", facing, "buyer")
    assert isinstance(problem, Problem) and "/counter PRICE" in problem.message
    assert "takes no price" in parse_command("/quit 5", facing, "buyer").message


def test_unknown_command_help_and_empty_line():
    assert "did you mean /offer?" in parse_command("/ofer 200", _neg(), "buyer").message
    assert "/counter PRICE" in parse_command("/help", _neg(), "buyer").message
    assert isinstance(parse_command("   ", _neg(), "buyer"), Problem)
    talk = parse_command("cash and/or trade?", _neg(), "buyer")  # a slash inside a word is no command
    assert isinstance(talk, Command) and talk.move.act is Act.INQUIRE


def test_free_text_is_inferred_echoed_and_checked():
    cmd = parse_command("Would you take $240?", _neg(), "buyer")
    assert (cmd.move.act, cmd.move.price) == (Act.OFFER, 240.0) and "read from your message" in cmd.echo
    counter = parse_command("How about 260", _neg(standing=("seller", 300)), "buyer")
    assert (counter.move.act, counter.move.price) == (Act.COUNTER, 260.0)
    assert parse_command("Deal, sounds good.", _neg(standing=("seller", 300)), "buyer").move.act is Act.INFORM
    for line in ("I would pay 1.200,50", "how about 1 200", "I can do 250k"):
        problem = parse_command(line, _neg(), "buyer")
        assert isinstance(problem, Problem) and "reads as offer" in problem.message, line


def test_guards_turn_blocked_moves_into_problems():
    low = parse_command("/offer 200", _neg(standing=("buyer", 200)), "seller")
    assert isinstance(low, Problem) and "below your minimum $227.50" in low.message
    assert isinstance(parse_command("/accept", _neg(standing=("buyer", 200)), "seller"), Problem)
    blocked = parse_command("/offer 320", _neg(guards=Guards(budget_guard="block")), "buyer")
    assert isinstance(blocked, Problem) and "over your budget $315" in blocked.message
    over = parse_command("/offer 320", _neg(), "buyer")  # recorded, not blocked: allowed with a warning
    assert isinstance(over, Command) and "overshoot" in over.echo


@pytest.mark.parametrize("line", [
    "/offer 250", "/counter 250", "/accept", "/reject", "/quit", "/accept 300", "/offer 1,250.50", "hello",
    "Is it available?", "I can do $240", "/offer 200", "/offer 320", "deal /accept",
])
@pytest.mark.parametrize("role", ["buyer", "seller"])
@pytest.mark.parametrize("standing", [None, "mine", "theirs"])
def test_every_command_is_legal_in_the_protocol(line, role, standing):
    other = "seller" if role == "buyer" else "buyer"
    neg = _neg(standing={None: None, "mine": (role, 300), "theirs": (other, 300)}[standing])
    while neg.to_move != role:
        neg.apply(Move("hm", Act.INFORM))
    parsed = parse_command(line, neg, role)
    if isinstance(parsed, Command):
        rec = neg.apply(parsed.move)
        assert rec.failure is None and rec.blocked is None, (line, rec)


def test_human_agent_retries_until_legal_and_leaves_on_interrupt():
    told = []
    lines = iter(["/accept", "/offer 1 200", "/offer 240"])
    person = HumanAgent("buyer", ask=lambda prompt: next(lines), tell=told.append)
    assert person.act(_neg()).price == 240.0
    assert len(told) == 3 and told[-1] == "you offer $240"

    def interrupt(prompt):
        raise KeyboardInterrupt

    quitter = HumanAgent("buyer", ask=interrupt, tell=told.append)
    assert quitter.act(_neg()).act is Act.QUIT and quitter.config()["left"] == "interrupted"


def test_check_role():
    assert check_role("BUYER") == "buyer"
    with pytest.raises(NegolensError, match="did you mean seller"):
        check_role("sellr")
    with pytest.raises(NegolensError, match="unknown role 'banker'; use buyer or seller"):
        check_role("banker")


# --- the chat verb ----------------------------------------------------------------------------

def test_eof_at_the_first_prompt_exits_cleanly_with_the_transcript(tmp_path):
    result, records = chat(tmp_path, input="")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "you leave the chat (end of input)" in result.output
    assert "outcome: quit" in result.output and f"transcript: {tmp_path}" in result.output
    (rec,) = records
    assert rec["outcome"] == "quit" and rec["buyer"] == {"kind": "human", "role": "buyer", "left": "end of input"}
    assert [t["act"] for t in rec["turns"]] == ["quit"] and rec["seller"]["kind"] == "rule"
    assert "metrics" in rec and rec["run"]["max_turns"] == 12


def test_invalid_lines_are_explained_and_retried_on_the_same_turn(tmp_path):
    bad = ["/accept", "/offer ,", "/offer -5", "/offer abc", "/offer 1e12", "/offer 99999999", "/offer 1.200,50",
           "/offer 1 200", "/ofer 200", "/counter 200", ""]
    result, records = chat(tmp_path, input="\n".join(bad + ["Would this work? /offer 240", "/counter 260"]) + "\n")
    assert result.exit_code == 0, result.output
    out = result.output
    for says in ["nothing to accept", "',' is not a price", "more than $0, not -5", "'abc' is not a price",
                 "'1e12' is not a price", "more than 100 × the list price", "'1.200,50' is ambiguous",
                 "'1 200' is ambiguous", "did you mean /offer?", "nothing to counter"]:
        assert says in out, says
    assert out.count("you (buyer, turn 1/12) > ") == len(bad) + 1  # asked again, same turn
    assert "you offer $240" in out and "you counter with $260" in out and "seller > " in out
    (rec,) = records
    turns = rec["turns"]
    assert (turns[0]["role"], turns[0]["act"], turns[0]["price"], turns[0]["utterance"]) == \
        ("buyer", "offer", 240.0, "Would this work?")
    assert (turns[2]["act"], turns[2]["price"]) == ("counter", 260.0)
    assert turns[-1]["act"] == "quit" and rec["outcome"] == "quit"  # input ended after that


def test_chat_as_seller_to_a_deal(tmp_path):
    # the rule buyer opens at $249.38, then $261.31; at $250 it accepts
    result, records = chat(tmp_path, "--role", "seller", input="Hello, what do you offer?\n/offer 200\n/counter 250\n")
    assert result.exit_code == 0, result.output
    assert "You are the seller; your minimum $227.50" in result.output
    assert "buyer > I can offer $249.38 for it.  [offer $249.38]" in result.output
    assert "below your minimum $227.50" in result.output and "you counter with $250" in result.output
    assert "outcome: deal at $250" in result.output
    assert records[0]["deal_price"] == 250.0 and records[0]["seller"]["kind"] == "human"


@pytest.mark.parametrize("args, says", [
    (["--role", "banker"], "unknown role 'banker'"), (["--role", "buyr"], "did you mean buyer?"),
    (["--scenario", "36"], "the 36 built-in scenarios are 0 to 35"), (["--scenario", "-1"], "out of range"),
    (["--max-turns", "0"], "at least 1"),
])
def test_bad_options_stop_before_the_chat_starts(tmp_path, args, says):
    result, records = chat(tmp_path, *args, input="/offer 240\n")
    assert isinstance(result.exception, NegolensError) and says in str(result.exception)
    assert "listed" not in result.output and records == []


def test_ctrl_c_during_the_bots_turn_saves_the_transcript_so_far(tmp_path, monkeypatch):
    class Stuck:
        def config(self):
            return {"kind": "stuck"}

        def act(self, neg):
            raise KeyboardInterrupt

    monkeypatch.setattr("negolens.agents.factory.make_agent", lambda *a, **k: Stuck())
    result, records = chat(tmp_path, input="/offer 240\n")
    assert result.exit_code == 0, result.output
    assert "interrupted during the seller's turn" in result.output and "outcome: unfinished" in result.output
    (rec,) = records
    assert rec["interrupted"] is True and rec["outcome"] is None and rec["buyer"]["left"] == "interrupted"
    assert [(t["act"], t["price"]) for t in rec["turns"]] == [("offer", 240.0)]
