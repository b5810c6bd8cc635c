"""The site table resolves for every tiny family, and interventions through it equal TransformerLens hooks."""

from types import SimpleNamespace

import pytest
import torch

import negolens
from negolens.chat import Turn
from negolens.errors import NegolensError
from negolens.interventions import Intervention, ablations, capture, intervene
from negolens.sites import TABLES, Sites
from negolens.testing import FAMILIES, tiny_model_dir

TURNS = [Turn("user", "I'm asking $350 for the bike, it has new tires and 21 speeds."), Turn("assistant", "Would you take $250?")]


@pytest.fixture(scope="module", params=FAMILIES)
def model(request, tmp_path_factory):
    return negolens.load(tiny_model_dir(tmp_path_factory.mktemp("sites"), request.param))


def _batch(model):
    """Two rows, the second left-padded."""
    return model.batch([model.render(TURNS), model.render(TURNS[:1], add_generation_prompt=True)])


def _bridge(model, batch, hooks):
    return model.bridge.run_with_hooks(batch.input_ids, attention_mask=batch.attention_mask,
                                       position_ids=batch.position_ids, fwd_hooks=hooks)


def test_site_table_resolves(model):
    s, shape = model.sites, model.shape
    assert s.family in TABLES and s.n_layers == shape.n_layers == 2
    for layer in range(s.n_layers):
        assert s.attn_z(layer).in_features == shape.n_heads * shape.d_head
        assert s.resid_post(layer) is s.layers()[layer] is s.module("resid_post", layer)
    assert tuple(s.unembed_weight().shape) == (shape.d_vocab, shape.d_model)
    assert isinstance(s.final_norm(), torch.nn.Module)
    assert s.hook_name("attn_z", 1) == "blocks.1.attn.hook_z"
    assert s.hook_name("resid_post", 0) == "blocks.0.hook_resid_post"
    with pytest.raises(NegolensError, match="out of range"):
        s.attn_z(5)
    # logits from the last residual through final norm + unembedding equal the model's
    batch = _batch(model)
    with capture(model, "resid_post", [s.n_layers - 1]) as acts:
        full = model.logits(batch)
    assert torch.allclose(s.logits_at(acts[s.n_layers - 1]), full, atol=1e-4)


def test_zero_head_equals_transformer_lens_hook_z(model):
    batch = _batch(model)
    real = batch.attention_mask.bool()
    clean = model.logits(batch)
    with intervene(model, ablations([(0, 1), (1, 2)])):
        ours = model.logits(batch)

    def zero(head):
        def hook(z, hook):
            z[:, :, head] = 0.0
            return z
        return hook

    theirs = _bridge(model, batch, [(model.sites.hook_name("attn_z", 0), zero(1)),
                                    (model.sites.hook_name("attn_z", 1), zero(2))])
    assert (ours - clean)[real].abs().max() > 1e-2  # the ablation does something
    assert (ours - theirs)[real].abs().max() < 1e-4
    assert torch.allclose(model.logits(batch), clean)  # hooks are gone after the block


def test_add_at_resid_post_equals_transformer_lens(model):
    batch = _batch(model)
    real = batch.attention_mask.bool()
    direction = torch.randn(model.shape.d_model, generator=torch.Generator().manual_seed(0)).to(model.device)
    with intervene(model, Intervention("resid_post", 0, kind="add", value=direction, alpha=3.0)):
        ours = model.logits(batch)
    theirs = _bridge(model, batch, [(model.sites.hook_name("resid_post", 0), lambda x, hook: x + 3.0 * direction)])
    assert (ours - model.logits(batch))[real].abs().max() > 1e-2
    assert (ours - theirs)[real].abs().max() < 1e-4
    with intervene(model, Intervention("resid_pre", 1, kind="add", value=direction, alpha=3.0)):
        pre = model.logits(batch)  # the residual entering layer 1 is the one after layer 0
    assert (pre - ours)[real].abs().max() < 1e-4


def test_capture_equals_hook_z_and_patch_restores(model):
    batch = _batch(model)
    names = [model.sites.hook_name("attn_z", layer) for layer in range(2)]
    _, cache = model.run_with_cache(batch, names_filter=lambda n: n in names)
    with capture(model, "attn_z") as z:
        clean = model.logits(batch)
    B, T = batch.input_ids.shape
    for layer, name in enumerate(names):
        assert torch.allclose(z[layer].reshape(B, T, model.shape.n_heads, -1), cache[name], atol=1e-5)
    # patching a head with its own clean value changes nothing; rows= limits an intervention to rows
    own = z[0].reshape(B, T, model.shape.n_heads, -1)[:, :, 1]
    with intervene(model, [Intervention("attn_z", 0, 1, "patch", value=own), Intervention("attn_z", 1, 0, rows=(1, 2))]):
        out = model.logits(batch)
    assert torch.allclose(out[0], clean[0], atol=1e-5) and not torch.allclose(out[1], clean[1], atol=1e-3)


def test_generation_sees_interventions(model):
    prompt = model.render(TURNS[:1], add_generation_prompt=True)
    calls = []
    with intervene(model, Intervention("resid_post", 1, kind="add", value=torch.zeros(model.shape.d_model))):
        with capture(model, "resid_post", [1], store={}) as seen:
            model.generate([prompt], max_new_tokens=3)
            calls.append(seen[1].shape[1])
    assert calls == [1]  # the last cached step was hooked too


def test_unknown_family_and_bad_interventions_raise_clear_errors(model):
    fake = SimpleNamespace(config=SimpleNamespace(model_type="mamba"))
    with pytest.raises(NegolensError, match=r"no site table for model family 'mamba'.*TABLES in negolens/sites.py"):
        Sites(fake)
    with pytest.raises(NegolensError, match="zero, mean, resample, patch, add"):
        Intervention("attn_z", 0, 0, kind="erase")
    with pytest.raises(NegolensError, match="needs value="):
        Intervention("attn_z", 0, 0, kind="mean")
    with pytest.raises(NegolensError, match="unknown site"):
        Intervention("mlp_out", 0)
    with pytest.raises(NegolensError, match="unknown site"):
        model.sites.hook_name("nowhere", 0)
