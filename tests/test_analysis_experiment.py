"""run_ablation: the public entry point behind `negolens ablate` returns every table, validated up front."""

import numpy as np
import pandas as pd
import pytest

import negolens
from negolens.analysis import AblationConfig, AblationResult, run_ablation
from negolens.errors import NegolensError

from probe_fixtures import plant_copy_head, transcripts

SWEEP_COLUMNS = ["layer", "head", "effect", "ci_low", "ci_high", "p", "q", "n_points"]


@pytest.fixture(scope="module")
def copy_model(tiny_dirs):
    model = negolens.load(tiny_dirs["llama"])
    plant_copy_head(model)
    return model


def test_run_ablation_returns_every_table(copy_model, tmp_path):
    from negolens.probes.linear import LinearProbe

    rng = np.random.default_rng(0)
    LinearProbe().fit(rng.normal(size=(40, 64)), rng.integers(0, 2, 40)).save(tmp_path / "probe", layer=0, label="toy")
    attention = pd.DataFrame([{"score": s, "layer": l, "head": h, "effect": 0.1 * l + h}
                              for s in ("price", "verb") for l in range(2) for h in range(4)])
    cfg = AblationConfig.quick(n=4, max_tokens=1024, metric="offer", top=2, rerun_n=2, rerun_max_turns=4, alphas=(-2.0, 0.0, 2.0))
    result = run_ablation(copy_model, transcripts(4), cfg, attention=attention, steer_probe=tmp_path / "probe",
                          progress=False)
    assert isinstance(result, AblationResult) and result.n_points == 4
    tables = result.tables()
    assert list(tables) == ["ablation_accept_zero", "ablation_offer_top", "top_heads", "rerun", "steering"]
    assert list(tables["ablation_accept_zero"].columns) == SWEEP_COLUMNS
    assert len(tables["ablation_accept_zero"]) == copy_model.shape.n_layers * copy_model.shape.n_heads
    assert result.heads[0] == (0, 0) and len(result.heads) == 2  # the planted head comes first
    assert list(tables["top_heads"].columns) == SWEEP_COLUMNS + ["price", "verb"]
    assert len(tables["ablation_offer_top"]) == 2 and list(tables["ablation_offer_top"].columns) == SWEEP_COLUMNS
    assert set(tables["rerun"].condition) == {"intact", "top heads ablated", "random heads ablated"}
    assert list(tables["steering"].alpha) == [-2.0, 0.0, 2.0] and tables["steering"].probe.iloc[0] == "toy:@L0"
    plain = run_ablation(copy_model, transcripts(4), AblationConfig(n=3, kind="mean", top=3, max_tokens=1024), progress=False)
    assert list(plain.tables()) == ["ablation_accept_mean", "top_heads"] and plain.offer is None


def test_run_ablation_validates_up_front(copy_model):
    with pytest.raises(NegolensError, match="unknown kind 'erase'; use one of zero, mean, resample"):
        run_ablation(copy_model, transcripts(2), AblationConfig(kind="erase"))
    with pytest.raises(NegolensError, match="unknown metric 'price'; use one of accept, offer"):
        run_ablation(copy_model, transcripts(2), AblationConfig(metric="price"))
    with pytest.raises(NegolensError, match="no decision points"):
        run_ablation(copy_model, transcripts(2), AblationConfig(max_tokens=5))
    with pytest.raises(NegolensError, match="no decision points"):
        run_ablation(copy_model, [], AblationConfig())


def test_quick_preset_changes_only_scale():
    quick, full = AblationConfig.quick(), AblationConfig()
    changed = {k for k in vars(full) if getattr(quick, k) != getattr(full, k)}
    assert changed == {"n", "max_tokens", "rerun_n", "rerun_max_turns", "offer_heads"}
