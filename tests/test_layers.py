"""The architecture is one-way: a layer never imports a layer above it (checked on the source)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["agents", "training", "probes", "analysis", "figures"]


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "negolens" and len(parts) > 1 and parts[1] in ORDER:
                found.add(parts[1])
    return found


def test_no_upward_imports():
    bad = []
    for rank, layer in enumerate(ORDER):
        for path in (ROOT / layer).rglob("*.py"):
            for target in imported_layers(path):
                if ORDER.index(target) > rank:
                    bad.append(f"{path.relative_to(ROOT)} imports negolens.{target}")
    for path in (ROOT / "negolens").rglob("*.py"):  # the core imports no layer (the CLI glue may, lazily)
        if not path.name.startswith("cli") and path.name not in ("benchmarks.py", "study.py"):  # CLI glue
            bad += [f"{path.relative_to(ROOT)} imports negolens.{t}" for t in imported_layers(path)]
    assert not bad, bad
