"""The architecture is one-way: a layer never imports a layer above it (checked on the source).

Core (``negolens/*.py``) → agents → training → probes → analysis → figures → cli (``negolens/cli/``:
the command line, the study and the benchmarks). No exemptions, and no imports hidden in strings.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["agents", "training", "probes", "analysis", "figures", "cli"]
FOLDERS = {"agents": ROOT / "agents", "training": ROOT / "training", "probes": ROOT / "probes",
           "analysis": ROOT / "analysis", "figures": ROOT / "figures", "cli": ROOT / "negolens" / "cli"}


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "negolens":  # from negolens import cli / agents …
                names += [f"negolens.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "negolens" and len(parts) > 1 and parts[1] in ORDER:
                found.add(parts[1])
    return found


def core_files():
    return [p for p in (ROOT / "negolens").rglob("*.py") if FOLDERS["cli"] not in p.parents]


def test_no_upward_imports():
    bad = []
    for rank, layer in enumerate(ORDER):
        for path in FOLDERS[layer].rglob("*.py"):
            bad += [f"{path.relative_to(ROOT)} imports negolens.{t}" for t in imported_layers(path)
                    if ORDER.index(t) > rank]
    for path in core_files():  # the core imports no layer at all
        bad += [f"{path.relative_to(ROOT)} imports negolens.{t}" for t in imported_layers(path)]
    assert not bad, bad


def test_no_imports_hidden_in_strings():
    bad = []
    for path in [*core_files(), *(p for layer in ORDER for p in FOLDERS[layer].rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node.func, "attr", getattr(node.func, "id", "")) if isinstance(node, ast.Call) else ""
            if name in ("import_module", "__import__"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} dynamic import")
    assert not bad, bad


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from negolens.cli.study import run_study\nfrom negolens import analysis\n", encoding="utf-8")
    assert imported_layers(bad) == {"cli", "analysis"}


def test_no_public_name_shadows_a_submodule():
    """``negolens.fetch`` was once the module after first use: a package must not export a name
    that is also one of its submodules (``import negolens.x.y as m`` would then get the name)."""
    import importlib
    import pkgutil

    clashes = []
    for pkg in ["negolens", *(f"negolens.{layer}" for layer in ORDER)]:
        module = importlib.import_module(pkg)
        subs = {m.name for m in pkgutil.iter_modules(module.__path__)}
        clashes += [f"{pkg}.{name}" for name in getattr(module, "__all__", []) if name in subs]
    assert not clashes, clashes


def _is_mode(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and set(node.value) <= set("rwxabt+")


def _text_io_without_encoding(tree: ast.AST) -> list[int]:
    """Lines that read or write text without naming its encoding: ``read_text``, ``write_text``,
    ``open``/``Path.open`` in a text mode, ``subprocess`` calls with ``text=True``. Those use the
    locale's encoding, which is ASCII on some machines, so a page with an em dash fails there."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or any(k.arg in ("encoding", None) for k in node.keywords):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if name in ("read_text", "write_text"):
            lines.append(node.lineno)
        elif any(k.arg in ("text", "universal_newlines") and getattr(k.value, "value", None) is True for k in node.keywords):
            lines.append(node.lineno)  # subprocess.run(..., text=True) decodes the output
        elif name == "open" and (isinstance(f, ast.Name) or getattr(f.value, "id", "") not in (
                "os", "gzip", "tarfile", "zipfile", "webbrowser", "Image")):
            args = node.args[1:] if isinstance(f, ast.Name) else node.args
            mode = next((k.value for k in node.keywords if k.arg == "mode"), args[0] if args else None)
            if (mode is None and (isinstance(f, ast.Name) or not args)) or (_is_mode(mode) and "b" not in mode.value):
                lines.append(node.lineno)
    return lines


def test_every_text_file_is_read_and_written_as_utf8():
    files = [p for layer in FOLDERS.values() for p in layer.rglob("*.py")] + core_files() + list((ROOT / "tests").glob("*.py"))
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in files for n in _text_io_without_encoding(ast.parse(p.read_text(encoding="utf-8")))]
    assert not bad, f"name the encoding (encoding='utf-8') at: {bad}"
    example = ("open(p, 'w')\np.read_text()\nopen(p, 'rb')\np.open(encoding='utf-8')\nsubprocess.run(c, text=True)\n"
               "p.open()\nwebbrowser.open('http://x')\nzf.open('a.txt')")
    assert _text_io_without_encoding(ast.parse(example)) == [1, 2, 5, 6]
