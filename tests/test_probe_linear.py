"""Probes: planted labels are found, random labels are not, and the estimator is sklearn-proper."""

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold

from negolens.probes.activations import ActivationSet, collect
from negolens.probes.labels import label_table
from negolens.probes.linear import LinearProbe
from negolens.probes.sweep import control_labels, layer_sweep

from probe_fixtures import transcripts


def planted_data(n=400, layers=4, d=32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, layers, d)).astype(np.float32)
    y = rng.integers(0, 2, n)
    X[:, 2, 5] += 3.0 * (2 * y - 1)  # the label, written into layer 2 only
    groups = np.repeat(np.arange(n // 4), 4)
    tokens = rng.integers(0, 50, n)
    return X, y, groups, tokens


def test_planted_label_is_read_only_where_written():
    X, y, groups, tokens = planted_data()
    curve = layer_sweep(X, y, groups, tokens, "classification", progress=False).set_index("layer")
    assert curve.loc[2, "score"] > 0.95 and curve.loc[2, "ci_low"] > 0.9
    for layer in (0, 1, 3):
        assert abs(curve.loc[layer, "score"] - 0.5) < 0.1
    assert (curve.baseline < 0.6).all()
    rand = np.random.default_rng(1).integers(0, 2, len(y))
    noise = layer_sweep(X, rand, groups, tokens, "classification", progress=False)
    assert (noise.score < 0.62).all()  # chance


def test_regression_probe_and_direction():
    X, y, groups, tokens = planted_data()
    target = X[:, 2, 5] * 0.5 + np.random.default_rng(2).normal(scale=0.1, size=len(y))
    curve = layer_sweep(X, target, groups, tokens, "regression", layers=[2], progress=False, alpha=1.0)
    assert curve.score.iloc[0] > 0.9
    probe = LinearProbe("classification").fit(X[:, 2], y)
    assert abs(probe.direction()[5]) > 0.9  # the planted axis, in residual units


def test_sklearn_protocol_and_persistence(tmp_path):
    X, y, groups, _ = planted_data()
    probe = LinearProbe(C=1.0)
    assert clone(probe).get_params()["C"] == 1.0
    search = GridSearchCV(LinearProbe(), {"C": [0.01, 1.0]}, cv=GroupKFold(3)).fit(X[:, 2], y, groups=groups)
    assert search.best_score_ > 0.9
    fitted = LinearProbe().fit(X[:, 2], y)
    fitted.save(tmp_path / "p", model="tiny", layer=2, label="planted")
    back, meta = LinearProbe.load(tmp_path / "p")
    assert (back.predict(X[:, 2]) == fitted.predict(X[:, 2])).all() and meta["layer"] == 2
    assert np.allclose(np.load(tmp_path / "p" / "direction.npy"), fitted.direction())


def test_control_task_ties_labels_to_token_types():
    tokens = np.array([1, 2, 1, 3, 2, 1])
    y = np.array(["a", "b", "a", "b", "a", "b"])
    ctrl = control_labels(tokens, y, seed=0)
    assert ctrl[0] == ctrl[2] == ctrl[5] and ctrl[1] == ctrl[4]


def test_collect_labels_and_cache(tiny_llama, tmp_path):
    items = transcripts(4)
    acts = collect(tiny_llama, items, "buyer", progress=False)
    assert acts.acts.shape == (4 * 4 * 2, tiny_llama.shape.n_layers, tiny_llama.shape.d_model)
    table = label_table(acts.meta, items, "buyer")
    row = table[(table.dialogue == "syn-0") & (table.turn == 2)].set_index("rule")
    assert row.loc["before_reply", "last_offer_by"] == "seller"
    assert row.loc["utterance_end", "speaker"] == "buyer" and row.loc["utterance_end", "deal"] == "deal"
    assert row.loc["utterance_end", "own_target_ratio"] == 0.75
    acts.save(tmp_path / "a")
    back = ActivationSet.load(tmp_path / "a")
    assert np.array_equal(back.acts, acts.acts) and isinstance(back.meta, pd.DataFrame)
    # token identity is in the residual: a probe reads "is this token a '?'" almost perfectly
    q = tiny_llama.tokenizer.convert_tokens_to_ids("?")
    y = (acts.meta.token_id == q).to_numpy() | (acts.meta.turn == 2).to_numpy()
    assert LinearProbe(C=10.0).fit(acts.acts[:, 0].astype(np.float32), y).score(acts.acts[:, 0].astype(np.float32), y) > 0.95


# -- fit_probes: the library entry point ---------------------------------------------------------

import pytest  # noqa: E402

from negolens.errors import NegolensError  # noqa: E402
from negolens.probes import PROBE_LABELS, ProbeConfig, fit_probes  # noqa: E402
from negolens.probes.activations import fingerprint  # noqa: E402


@pytest.fixture()
def planted_cache(tiny_llama, tmp_path):
    """Real positions of 12 synthetic dialogues, with ``speaker`` written into layer 1 only,
    saved as a cache that fit_probes must reuse."""
    items = transcripts(12)
    acts = collect(tiny_llama, items, "buyer", progress=False)
    rng = np.random.default_rng(0)
    X = rng.normal(size=acts.acts.shape).astype(np.float32)
    X[:, 1, :32] += np.where(acts.meta.speaker == "buyer", 1.0, -1.0)[:, None]  # spread over many axes
    acts.acts = X
    acts.info.update(model=tiny_llama.name, transcripts=fingerprint(items), role="buyer", n=len(items), max_tokens=512)
    acts.save(tmp_path / "cache")
    return items, tmp_path / "cache"


def test_fit_probes_reads_a_planted_label_at_its_layer(tiny_llama, planted_cache, tmp_path):
    items, cache = planted_cache
    said = []
    result = fit_probes(tiny_llama, items, ["speaker", "own_target_ratio", "deal"], cache=cache, progress=False,
                        log=said.append)
    assert result.from_cache and said == [f"reusing cached activations in {cache}"]
    curve = result.curves[result.curves.label == "speaker"].set_index("layer")
    assert curve.loc[1, "score"] > 0.95 and curve.loc[0, "score"] < 0.8  # (few dialogues: layer 0 is noisy)
    assert result.metadata["speaker"] == {
        "model": tiny_llama.name, "layer": 1, "position_rule": "utterance_end", "label": "speaker",
        "hook": "blocks.1.hook_resid_post", "dtype": "float16", "tl_mode": result.info["tl_mode"], "role": "buyer"}
    assert isinstance(result.probes["speaker"], LinearProbe) and result.probes["speaker"].n_features_in_ == 64
    assert result.skipped == {"own_target_ratio": "undefined: constant label"}  # every builtin target is the same ratio
    assert "deal" in set(result.curves.label)
    lines = result.summary()
    assert lines[0].strip().startswith("speaker best layer  1:") and "selectivity" in lines[0]
    assert lines[1].strip() == "own_target_ratio skipped: undefined: constant label"
    assert list(result.curves.columns[:3]) == ["label", "layer", "score"]
    folder = result.save(tmp_path / "out")
    back, meta = LinearProbe.load(folder / "speaker")
    assert meta["layer"] == 1 and meta["label"] == "speaker" and (folder / "speaker" / "direction.npy").is_file()
    assert list(back.classes_) == list(result.probes["speaker"].classes_) == ["buyer", "seller"]
    # another max_tokens: the cache does not match, activations are collected afresh (and re-saved)
    fresh = fit_probes(tiny_llama, items, "speaker", config=ProbeConfig(max_tokens=300, layers="1"), cache=cache,
                       progress=False)
    assert not fresh.from_cache and fresh.info["max_tokens"] == 300
    assert set(fresh.curves.layer) <= {1} and set(fresh.curves.label) | set(fresh.skipped) == {"speaker"}
    assert ActivationSet.load(cache).info["max_tokens"] == 300


def test_fit_probes_rejects_bad_input(tiny_llama):
    items = transcripts(3)
    with pytest.raises(NegolensError, match="choose from act, speaker"):
        fit_probes(tiny_llama, items, ["speakers"], progress=False)
    with pytest.raises(NegolensError, match="layer 2 out of range"):
        fit_probes(tiny_llama, items, ["speaker"], config=ProbeConfig(layers="0,2"), progress=False)
    with pytest.raises(NegolensError, match="not an integer"):
        fit_probes(tiny_llama, items, ["speaker"], config=ProbeConfig(layers="first"), progress=False)
    with pytest.raises(NegolensError, match="no transcripts"):
        fit_probes(tiny_llama, [], ["speaker"], progress=False)
    empty = [type(items[0])("empty", items[0].scenario, [])]
    with pytest.raises(NegolensError, match="no positions"):
        fit_probes(tiny_llama, empty, ["speaker"], progress=False)
    assert set(ProbeConfig().labels) <= set(PROBE_LABELS)


def test_layer_sweep_refuses_a_constant_label():
    X, _, groups, tokens = planted_data()
    with pytest.raises(NegolensError, match="constant label"):
        layer_sweep(X, np.full(len(X), 0.75), groups, tokens, "regression", progress=False)
