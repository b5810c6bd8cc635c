"""Figures are redrawn from saved tables alone, and the offline report renders in Chromium."""

import json

import numpy as np
import pandas as pd
import torch

from negolens.figures.redraw import FIGURES, regenerate
from negolens.figures.report import check_in_browser, write_report


def _ci(rng, n=3):
    m = rng.uniform(0, 1, n)
    return m, m - 0.1, m + 0.1


def fake_run(root):
    """A study run directory with every table in the shape its stage writes (random numbers)."""
    rng = np.random.default_rng(0)
    rows = []
    names = [("matrix", f"matrix:{b}-vs-{s}", b, s) for b in ("untuned", "SFT", "rule") for s in ("untuned", "SFT", "rule")]
    names += [("personality", f"personality:{p}-vs-{p}", p, p) for p in ("aggressive", "fair", "passive")]
    names += [("cot", f"cot:SFT{c}", "SFT", "rule") for c in ("", "+cot")]
    for group, name, b, s in names:
        for metric in ("deal", "fairness", "bias", "reward"):
            m = rng.uniform(-1, 1)
            rows.append(dict(name=name, group=group, buyer_label=b, seller_label=s, metric=metric, mean=m,
                             ci_low=m - .1, ci_high=m + .1, n=8, undefined=0))
    (root / "negotiate").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "negotiate" / "conditions.csv", index=False)
    heads = [dict(layer=l, head=h, effect=rng.normal(), ci_low=-1, ci_high=1, p=.5, q=rng.uniform(), n_dialogues=5,
                  score=sc) for sc in ("verb_args", "decision_other_price") for l in range(3) for h in range(4)]
    (root / "attention").mkdir()
    pd.DataFrame(heads).to_csv(root / "attention" / "attention_heads.csv", index=False)
    import circuitsvis as cv

    view = cv.attention.attention_pattern(tokens=["I", " offer", " $", "5"], attention=torch.tril(torch.ones(4, 4)) / 4)
    (root / "attention" / "attention_d0_L1H2.html").write_text(
        f"<!doctype html><html><body><h3>tiny L1H2</h3>{view.local_src}</body></html>", encoding="utf-8")
    curves = [dict(label=lab, layer=l, score=rng.uniform(), ci_low=0, ci_high=1, baseline=.3, control=.2,
                   task="classification", n_dialogues=9, selectivity=.1) for lab in ("act", "phase") for l in range(3)]
    (root / "probes").mkdir()
    pd.DataFrame(curves).to_csv(root / "probes" / "probe_curves.csv", index=False)
    (root / "ablation").mkdir()
    pd.DataFrame([dict(layer=l, head=h, effect=rng.normal(), ci_low=-1, ci_high=1, p=.01, q=.02, n_points=4)
                  for l in range(3) for h in range(4)]).to_csv(root / "ablation" / "ablation_accept_zero.csv", index=False)
    pd.DataFrame([dict(layer=l, head=h, effect=rng.normal(), ci_low=-1, ci_high=1, p=.01, q=.02, n_points=4)
                  for l in range(3) for h in range(4)]).to_csv(root / "ablation" / "ablation_offer_zero.csv", index=False)
    pd.DataFrame([dict(condition=c, metric=m, mean=rng.uniform(), ci_low=0, ci_high=1, n=6, heads="L1H2")
                  for c in ("intact", "top heads ablated", "random heads ablated")
                  for m in ("deal", "reward", "overshoot", "first_offer_ratio_buyer")]).to_csv(root / "ablation" / "rerun.csv", index=False)
    pd.DataFrame([dict(alpha=a, mean=a / 10, ci_low=a / 10 - .1, ci_high=a / 10 + .1, n=4, probe="act:agree@L1")
                  for a in (-4, 0, 4)]).to_csv(root / "ablation" / "steering.csv", index=False)
    pd.DataFrame([dict(layer=1, head=2, effect=.5, ci_low=.1, ci_high=.9, p=.01, q=.02)]).to_csv(
        root / "ablation" / "top_heads.csv", index=False)
    (root / "grpo").mkdir()
    (root / "grpo" / "steps.jsonl").write_text("".join(json.dumps(dict(
        step=s, reward=rng.uniform(-1, 1), deal_rate=.5, bargained_ratio=.8, overshoot_rate=.2,
        first_offer_budget_ratio=.7, length=5.0, protocol_failure_rate=0.0, dialogues=8)) + "\n" for s in range(1, 6)), encoding="utf-8")
    pd.DataFrame([dict(model=mo, metric=m, mean=rng.uniform(), ci_low=0, ci_high=1, n=4, undefined=0)
                  for mo in ("untuned", "SFT", "GRPO") for m in ("reward", "deal", "overshoot", "bargained_ratio")]
                 ).to_csv(root / "grpo" / "model_comparison.csv", index=False)
    (root / "sft-buyer" / "checkpoint").mkdir(parents=True)
    (root / "sft-buyer" / "checkpoint" / "negolens_manifest.json").write_text(json.dumps(
        {"eval_curve": [{"step": 0, "eval_loss": 3.0}, {"step": 5, "eval_loss": 2.5}]}), encoding="utf-8")
    (root / "manifest.json").write_text(json.dumps({"timings_s": {"negotiate": 1.0}}), encoding="utf-8")
    return root


def test_every_figure_is_redrawn_from_saved_tables(tmp_path):
    run = fake_run(tmp_path / "run")
    drawn = regenerate(run, log=lambda m: None)
    assert set(drawn) == {name for name, _ in FIGURES}
    for paths in drawn.values():
        assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
        assert {p.suffix for p in paths} == {".png", ".pdf"}
    assert len(drawn["attention_heads"]) == 4  # one heatmap per attention score, PNG + PDF


def test_missing_stages_are_skipped_not_fatal(tmp_path):
    run = fake_run(tmp_path / "run")
    (run / "grpo" / "steps.jsonl").unlink()
    said = []
    drawn = regenerate(run, log=said.append)
    assert "rlvr_curves" not in drawn and any("rlvr_curves: skipped" in s for s in said)


def test_report_is_self_contained_and_renders_in_chromium(tmp_path):
    run = fake_run(tmp_path / "run")
    regenerate(run, log=lambda m: None)
    page = write_report(run, run / "report.html")
    text = page.read_text(encoding="utf-8")
    assert text.count("CircuitsVis=") == 1  # the bundle is inlined once
    assert not [u for u in __import__("re").findall(r'(?:src|href)="([^"]+)"', text) if not u.startswith("data:")]
    n_png = len(list((run / "figures").glob("*.png")))
    seen = check_in_browser(page)
    assert seen["ready"], seen
    assert seen["figures"] == n_png and seen["images_loaded"] == n_png and seen["images_failed"] == 0
    assert seen["views_rendered"] == 1
    assert seen["requests"] == 0 and seen["failed_requests"] == [] and seen["console_errors"] == []


def test_rlvr_figure_numbers_the_studys_narrow_segment_on(tmp_path, monkeypatch):
    from negolens.figures import training

    run = fake_run(tmp_path / "run")
    (run / "grpo" / "narrow").mkdir()
    (run / "grpo" / "narrow" / "steps.jsonl").write_text("".join(
        json.dumps(dict(step=s, reward=0.5, deal_rate=.5, overshoot_rate=0.0, dialogues=8)) + "\n" for s in (1, 2)),
        encoding="utf-8")
    seen = []
    monkeypatch.setattr(training, "rlvr_curves", lambda steps, dest, **kw: seen.append(steps) or [])
    regenerate(run, log=lambda m: None)
    assert [s["step"] for s in seen[0]] == [1, 2, 3, 4, 5, 6, 7] and seen[0][-1]["reward"] == 0.5
