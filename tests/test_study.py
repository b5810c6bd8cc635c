"""The one-command study, quick preset, on the real SmolLM2: every stage, resumable, a report
that renders offline in headless Chromium, figures regenerated from saved results alone."""

import json

import pytest
from typer.testing import CliRunner

from negolens.cli import app
from negolens.figures.redraw import FIGURES
from negolens.figures.report import check_in_browser
from negolens.cli.study import STAGES, StudyConfig, run_study

pytestmark = [pytest.mark.integration, pytest.mark.needs("data")]


@pytest.fixture(scope="module")
def quick_run(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return run_study(StudyConfig.quick_preset(), out, "quick", log=lambda m: None)


def test_quick_study_runs_every_stage(quick_run):
    # No wall-clock assertion: CI machines are shared (`negolens bench` and the README time it).
    run = quick_run
    for stage in STAGES:
        assert (run / stage / ".done.json").is_file(), stage
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["timings_s"]) == set(STAGES) and manifest["versions"]["trl"]
    assert "?" not in manifest["versions"].values()  # TransformerLens has no __version__: read from its metadata
    assert manifest["config"]["quick"] is True
    figures = {p.stem for p in (run / "figures").glob("*.png")}
    for name, _ in FIGURES:
        assert any(f.startswith(name) for f in figures), name
    assert (run / "sft-buyer" / "checkpoint" / "adapter_config.json").is_file()
    assert (run / "grpo" / "final" / "negolens_manifest.json").is_file()
    # the narrow segment and the choice on validation products (the README's run 23, shorter)
    assert (run / "grpo" / "narrow" / "final" / "negolens_manifest.json").is_file()
    chosen = (run / "grpo" / "buyer.txt").read_text(encoding="utf-8").strip()
    assert (run / "grpo" / "selection" / "selection.csv").is_file() and (run / chosen).is_dir()


def test_report_renders_offline(quick_run):
    run = quick_run
    seen = check_in_browser(run / "report.html")
    n = len(list((run / "figures").glob("*.png")))
    assert seen["ready"] and seen["figures"] == n == seen["images_loaded"] and seen["images_failed"] == 0
    assert seen["views_rendered"] >= 1 and seen["requests"] == 0 and seen["console_errors"] == []


def test_rerun_skips_finished_stages_and_figures_redraw(quick_run):
    run = quick_run
    said = []
    run_study(StudyConfig.quick_preset(), run.parent, run.name, log=said.append)
    assert sum("done already" in s for s in said) == len(STAGES)
    stamp = (run / "negotiate" / "conditions.csv").stat().st_mtime
    res = CliRunner().invoke(app, ["figures", str(run)])
    assert res.exit_code == 0, res.output
    assert (run / "negotiate" / "conditions.csv").stat().st_mtime == stamp  # nothing recomputed
