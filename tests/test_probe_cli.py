"""The attention and probe verbs end to end on a tiny model and runner transcripts."""

from typer.testing import CliRunner

from negolens.cli import app


def test_attention_and_probe_on_runner_transcripts(tiny_dirs, tmp_path):
    run = CliRunner()
    neg = run.invoke(app, ["negotiate", "--buyer", "rule", "--seller", "rule", "--n", "6", "--max-turns", "6",
                           "--out", str(tmp_path / "neg")])
    assert neg.exit_code == 0, neg.output
    transcripts = str(tmp_path / "neg" / "dialogues.jsonl")
    model = str(tiny_dirs["llama"])
    att = run.invoke(app, ["attention", "--model", model, "--transcripts", transcripts, "--out", str(tmp_path / "att"),
                           "--show", "0:1.1"])
    assert att.exit_code == 0, att.output
    for name in ("attention_heads.csv", "attention_price_verb_across.png", "attention_d0_L1H1.html"):
        assert (tmp_path / "att" / name).is_file()
    html = (tmp_path / "att" / "attention_d0_L1H1.html").read_text(encoding="utf-8")
    assert "unpkg.com" not in html and "CircuitsVis" in html  # bundled JS, no CDN
    args = ["probe", "--model", model, "--transcripts", transcripts, "--labels", "speaker,last_offer_by,deal",
            "--out", str(tmp_path / "probe")]
    first = run.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "probe" / "probes" / "speaker" / "direction.npy").is_file()
    assert (tmp_path / "probe" / "probe_curves.png").is_file()
    again = run.invoke(app, args)
    assert again.exit_code == 0 and "reusing cached activations" in again.output
