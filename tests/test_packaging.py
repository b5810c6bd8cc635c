"""The built wheel (not only the editable install) maps the top-level folders to negolens.*."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("agents", "training", "probes", "analysis", "figures")


def test_wheel_contains_and_imports_every_layer(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("negolens-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for layer in LAYERS:
        assert f"negolens/{layer}/__init__.py" in names
    assert not any(n.startswith(("agents/", "tests/")) for n in names)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import negolens, importlib\n"
        f"mods = [importlib.import_module('negolens.' + m) for m in {LAYERS!r}]\n"
        "assert all(m.__file__.startswith(sys.argv[1]) for m in mods), [m.__file__ for m in mods]\n"
        "import negolens.tagging, negolens.cli; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, encoding="utf-8", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
