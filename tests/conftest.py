"""Shared fixtures: tiny offline models (unit tests) and the real SmolLM2 (integration tests)."""

from __future__ import annotations

import pytest

import negolens
from negolens.testing import tiny_model_dir


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {family: tiny_model_dir(root, family) for family in ("llama", "gemma3", "qwen2")}


@pytest.fixture(scope="session", params=["llama", "gemma3"])
def tiny(request, tiny_dirs):
    """A tiny random model of each family, loaded as a NegoModel."""
    return negolens.load(tiny_dirs[request.param])


@pytest.fixture(scope="session")
def tiny_llama(tiny_dirs):
    return negolens.load(tiny_dirs["llama"])


@pytest.fixture(scope="session")
def smollm2():
    """The real default model, fetched once into the cache (integration tests only)."""
    return negolens.load("smollm2-135m-instruct", fetch=True)
