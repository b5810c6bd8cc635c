"""Documentation checks: every public name has a docstring, and the examples run.

The docstring test imports every module of every negolens package (walking them with
:mod:`pkgutil`) and looks at what each module DEFINES: public functions, public classes and the
public methods and properties a class defines itself. Names starting with ``_``, names a module
imports from elsewhere, inherited members and the methods ``dataclass`` writes are not checked.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import pkgutil

import pytest

PACKAGES = (
    "negolens",
    "negolens.agents",
    "negolens.training",
    "negolens.probes",
    "negolens.analysis",
    "negolens.figures",
)

# Modules whose ``Examples`` sections run as doctests (model-loading lines are marked +SKIP).
DOCTEST_MODULES = (
    "negolens.autobatch",
    "negolens.distributed",
    "negolens.probes.store",
    "negolens.batching",
    "negolens.chat",
    "negolens.fetching",
    "negolens.lexicon",
    "negolens.prices",
    "negolens.stats",
    "negolens.tagging",
    "negolens.zoo",
    "negolens.config",
    "negolens.runs",
    "negolens.fingerprints",
    "negolens.cli.options",
    "negolens.cli.study_config",
    "negolens.training.devices", "negolens.training.data", "negolens.training.heldout", "negolens.training.environment",
    "negolens.training.filtered", "negolens.training.imitation", "negolens.training.cloning",
    "negolens.training.grpo", "negolens.training.recipe", "negolens.training.adapters", "negolens.training.branching",
    "negolens.agents.builtin",
    "negolens.agents.factory",
    "negolens.agents.formats",
    "negolens.agents.importers",
    "negolens.agents.negotiating",
    "negolens.agents.runner",
    "negolens.agents.scoring",
    "negolens.agents.transcripts",
    "negolens.agents.human",
    "negolens.agents.kvmemory",
    "negolens.agents.llm_agent",
    "negolens.agents.metrics",
    "negolens.agents.parsing",
    "negolens.agents.price_accuracy",
    "negolens.agents.prompts",
    "negolens.agents.protocol",
    "negolens.agents.rule_agent",
    "negolens.agents.oracle",
    "negolens.figures.redraw",
    "negolens.figures.report",
    "negolens.figures.beliefs",
    "negolens.figures.anchoring",
    "negolens.figures.checkpoints",
    "negolens.training.phases", "negolens.training.fused_head", "negolens.training.selection", "negolens.training.validation",
    "negolens.analysis.leading",
    "negolens.analysis.anchoring",
    "negolens.analysis.patched_decoding",
)


def module_names() -> list[str]:
    """Every importable module name of the negolens packages (``__main__`` modules excluded)."""
    names = []
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                names.append(info.name)
    return sorted(set(names))


def _has_doc(obj) -> bool:
    doc = obj.__doc__
    if not doc or not doc.strip():
        return False
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return False  # the signature dataclass / NamedTuple write when a class has no docstring
    return True


def _members(cls) -> list[tuple[str, object]]:
    """Public methods and properties ``cls`` defines itself, as (name, function) pairs."""
    out = []
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, property):
            attr = attr.fget
        attr = getattr(attr, "__func__", attr)  # staticmethod / classmethod
        if inspect.isfunction(attr) and attr.__qualname__.startswith(f"{cls.__qualname__}."):
            out.append((name, attr))
    return out


def undocumented(module) -> list[str]:
    """``module.name`` (or ``module.Class.method``) for each public definition without a docstring."""
    missing = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj) and obj.__name__ != "<lambda>":
            if not _has_doc(obj):
                missing.append(f"{module.__name__}.{name}")
        elif inspect.isclass(obj):
            if not _has_doc(obj):
                missing.append(f"{module.__name__}.{name}")
            generated = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
            for member, fn in _members(obj):
                if member not in generated and not _has_doc(fn):
                    missing.append(f"{module.__name__}.{name}.{member}")
    return missing


def test_every_public_definition_has_a_docstring():
    missing, broken = [], []
    for name in module_names():
        try:
            module = importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - report every module that does not import
            broken.append(f"{name}: {type(err).__name__}: {err}")
            continue
        missing += undocumented(module)
    assert not broken, "modules that do not import:\n" + "\n".join(broken)
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    assert any(t.examples for t in doctest.DocTestFinder().find(module)), f"{name} has no examples"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see the output)"
