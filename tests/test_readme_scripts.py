"""The README's "Scripting negolens" blocks run as written, on a tiny offline model.

Each ```python block of that section is executed in order in one namespace, with the zoo model
name replaced by a tiny random model directory (so the test needs no download) and figures
written to a temporary folder. If the documented API changes, this test fails.
"""

import os
import re
from pathlib import Path

import matplotlib

from negolens.zoo import DEFAULT_MODEL

matplotlib.use("Agg")
README = Path(__file__).resolve().parents[1] / "README.md"


def script_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Scripting negolens", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_the_scripting_section():
    blocks = script_blocks()
    assert len(blocks) >= 3
    assert "from negolens.probes import record_attention, fit_probes" in blocks[0]
    assert "sweep_heads(model, points" in blocks[0]


def test_readme_scripts_run_on_a_tiny_model(tiny_dirs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in script_blocks():
        code = block.replace(f'"{DEFAULT_MODEL}"', repr(str(tiny_dirs["llama"])))
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 — the README's own code
    assert len(namespace["records"]) == 8
    assert {"score", "layer", "head", "effect", "q"} <= set(namespace["heads"].columns)
    assert {"layer", "head", "effect", "ci_low", "ci_high", "q"} <= set(namespace["table"].columns)
    assert any(p.suffix == ".png" for p in Path(tmp_path).rglob("*")), os.listdir(tmp_path)
