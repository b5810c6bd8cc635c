import csv
import json

from typer.testing import CliRunner

from negolens.agents.factory import parse_spec
from negolens.cli import app


def test_parse_spec():
    assert parse_spec("smollm2-135m-instruct:aggressive+cot") == ("smollm2-135m-instruct", "aggressive", None, True)
    assert parse_spec("rule:injection") == ("rule", "fair", "injection", False)
    assert parse_spec("/tmp/ckpt") == ("/tmp/ckpt", "fair", None, False)


def test_negotiate_cli_resumes(tiny_dirs, tmp_path):
    out = tmp_path / "run"
    args = ["negotiate", "--buyer", f"{tiny_dirs['llama']}:passive", "--seller", "rule:aggressive",
            "--scenarios", "builtin", "--n", "3", "--max-turns", "4", "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "agreement" not in first.output and "deal" in first.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0
    lines = (out / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    rec = json.loads(lines[0])
    assert rec["buyer"]["personality"] == "passive" and rec["seller"]["personality"] == "aggressive"
    rows = list(csv.DictReader(open(out / "summary.csv", encoding="utf-8")))
    assert rows[0]["metric"] == "deal" and rows[0]["n"] == "3"


def test_chat_with_a_rule_seller(tmp_path):
    result = CliRunner().invoke(app, ["chat", "--role", "buyer", "--model", "rule", "--out", str(tmp_path)],
                                input="Hi! /offer 200\n/offer 300\n/accept\n")
    assert result.exit_code == 0, result.output
    assert "seller > " in result.output and "outcome: deal" in result.output
