"""Shared fixtures: tiny offline models (unit tests) and the real SmolLM2 (integration tests).

Test device: ``NEGOLENS_TEST_DEVICE=cuda pytest …`` loads every model of the tests onto that
device — the fixtures below explicitly, and every other ``negolens.load(device="auto")`` (inside
training, the CLI, tiny_model()) through ``$NEGOLENS_DEVICE``, which is set to it here. Without
it the tests run on the CPU, also on a machine with a GPU (but for the tests that need CUDA). Tests marked
``@pytest.mark.needs("cuda", "bitsandbytes")`` (or ``"data"``: the shared datasets, found as
``negolens.paths.data_dir`` finds them) are deselected (listed at the end of the run) where a
requirement is missing, never passed silently.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

import negolens
from negolens.paths import data_dir
from negolens.testing import tiny_model_dir

TEST_DEVICE = os.environ.get("NEGOLENS_TEST_DEVICE", "cpu")
os.environ["NEGOLENS_DEVICE"] = TEST_DEVICE  # device="auto" everywhere in the tests means the test device


def _missing(requirement: str) -> bool:
    if requirement == "cuda":
        return not torch.cuda.is_available()
    if requirement == "data":  # the shared datasets (../shared/data or $NEGOLENS_DATA)
        root = data_dir()
        return root is None or not all((root / d).is_dir() for d in ("craigslist_bargains", "amazon_history_price"))
    return importlib.util.find_spec(requirement) is None


def pytest_collection_modifyitems(config, items):
    keep, dropped = [], []
    for item in items:
        needs = [r for m in item.iter_markers("needs") for r in m.args]
        missing = [r for r in needs if _missing(r)]
        (dropped if missing else keep).append(item)
        if missing:
            config._negolens_deselected = getattr(config, "_negolens_deselected", []) + [(item.nodeid, missing)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_report_header(config):
    return f"negolens test device: {TEST_DEVICE} (NEGOLENS_TEST_DEVICE)"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for nodeid, missing in getattr(config, "_negolens_deselected", []):
        terminalreporter.write_line(f"deselected {nodeid}: needs {', '.join(missing)}")


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {family: tiny_model_dir(root, family) for family in ("llama", "gemma3", "qwen2")}


@pytest.fixture(scope="session", params=["llama", "gemma3"])
def tiny(request, tiny_dirs):
    """A tiny random model of each family, loaded as a NegoModel (on the test device)."""
    return negolens.load(tiny_dirs[request.param], device=TEST_DEVICE)


@pytest.fixture(scope="session")
def tiny_llama(tiny_dirs):
    return negolens.load(tiny_dirs["llama"], device=TEST_DEVICE)


@pytest.fixture(scope="session")
def smollm2():
    """The real default model, fetched once into the cache (integration tests only)."""
    return negolens.load("smollm2-135m-instruct", fetch=True, device=TEST_DEVICE)
