import subprocess
import sys

from typer.testing import CliRunner

from negolens.cli import app


def test_models_list():
    out = CliRunner().invoke(app, ["models", "list"])
    assert out.exit_code == 0
    assert "smollm2-135m-instruct*" in out.output and "gemma3-270m" in out.output


def test_unknown_model_is_one_clear_line():
    proc = subprocess.run(
        [sys.executable, "-m", "negolens.cli", "models", "fetch", "nope"], capture_output=True, text=True, encoding="utf-8"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("negolens: error: unknown model 'nope'")
    assert "Traceback" not in proc.stderr


def test_unknown_bench():
    proc = subprocess.run([sys.executable, "-m", "negolens.cli", "bench", "nope"], capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 2 and "known: ablation, dtype, grpo-pass, recorder, runner, sft" in proc.stderr
