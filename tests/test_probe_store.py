"""Activation caches on disk, one file per layer: the same numbers and the same probes as in memory."""

import numpy as np
import pytest

from negolens.agents import example_transcripts
from negolens.probes import fit_probes
from negolens.probes.activations import ActivationSet, cached_collect, collect
from negolens.probes.fit import ProbeConfig
from negolens.probes.store import DiskActivations, LayerStore


@pytest.fixture()
def stored(tmp_path):
    data = np.random.default_rng(0).normal(size=(7, 3, 5)).astype(np.float16)
    store = LayerStore(tmp_path / "s", n_layers=3, d_model=5)
    store.append(data[:4])
    store.append(data[4:])
    return data, store.close()


@pytest.mark.parametrize("key", [
    (slice(None), 1), (np.array([True, False, True, True, False, False, True]), 2), (np.array([6, 0, 3]), 0),
    (slice(2, 5), 1), (4, 2)])
def test_disk_activations_index_like_the_array(stored, key):
    data, acts = stored
    np.testing.assert_array_equal(acts[key], data[key])


def test_row_views_compose_and_materialise(stored):
    data, acts = stored
    mask = np.array([True, False, True, True, False, False, True])
    view = acts[mask]
    assert isinstance(view, DiskActivations) and view.shape == (4, 3, 5)
    np.testing.assert_array_equal(view[:, 1], data[mask][:, 1])
    np.testing.assert_array_equal(view[np.array([0, 3])], data[mask][[0, 3]])
    np.testing.assert_array_equal(np.asarray(view), data[mask])
    with pytest.raises(IndexError):
        acts.layer(3)


def test_incomplete_store_is_not_a_store(tmp_path):
    store = LayerStore(tmp_path, n_layers=2, d_model=4)
    store.append(np.zeros((2, 2, 4)))
    assert not DiskActivations.exists(tmp_path)  # killed before close(): no layers.json
    with pytest.raises(ValueError, match="shape"):
        store.append(np.zeros((2, 3, 4)))


def test_streamed_collection_equals_in_memory_and_probes_agree(tiny_llama, tmp_path):
    items = example_transcripts(6)
    mem = collect(tiny_llama, items, progress=False)
    disk = collect(tiny_llama, items, progress=False, out=tmp_path / "acts", batch_size=2)
    assert isinstance(disk.acts, DiskActivations)
    np.testing.assert_allclose(np.asarray(disk.acts), mem.acts, rtol=2e-3, atol=1e-3)
    assert disk.meta.equals(mem.meta)

    cfg = ProbeConfig(labels=("last_offer_ratio",), n_splits=2)
    plain = fit_probes(tiny_llama, items, config=cfg, progress=False)
    cached = fit_probes(tiny_llama, items, config=cfg, cache=tmp_path / "cache", progress=False)
    again = fit_probes(tiny_llama, items, config=cfg, cache=tmp_path / "cache", progress=False)
    assert not cached.from_cache and again.from_cache
    assert list((tmp_path / "cache").glob("layer_*.bin")) and not (tmp_path / "cache" / "acts.safetensors").exists()
    for other in (cached, again):
        np.testing.assert_allclose(other.curves.score, plain.curves.score, atol=0.02)


def test_old_in_memory_caches_still_load(tiny_llama, tmp_path):
    items = example_transcripts(2)
    mem = collect(tiny_llama, items, progress=False)
    mem.info.update({"model": tiny_llama.name})
    mem.save(tmp_path)
    back = ActivationSet.load(tmp_path)
    assert isinstance(back.acts, np.ndarray)
    np.testing.assert_array_equal(back.acts, mem.acts)
