"""Screening estimates (AtP, AtP*): exact as derivatives, GradDrop as defined, planted head ranked first."""

import numpy as np
import pytest
import torch

import negolens
from negolens.analysis.ablation import reference_means, replacement_values
from negolens.analysis.screening import atp, atp_star, screen_scores
from negolens.analysis.decisions import decision_points
from negolens.analysis.sweep import LogitDiff, sweep_heads
from negolens.errors import NegolensError
from negolens.interventions import capture

from probe_fixtures import plant_copy_head, transcripts


@pytest.fixture(scope="module")
def copy_model(tiny_dirs):
    model = negolens.load(tiny_dirs["llama"])
    plant_copy_head(model)
    return model


def _metric_with(model, batch, metric, layer, head, direction, eps):
    """The metric with head ``(layer, head)``'s z moved by ``eps · direction`` ([B, T, d_head])."""
    H, d = model.shape.n_heads, model.shape.d_head

    def move(module, args):
        z = args[0].clone()
        z.view(*z.shape[:-1], H, d)[:, :, head] += eps * direction
        return (z, *args[1:])

    handle = model.sites.attn_z(layer).register_forward_pre_hook(move)
    try:
        with torch.no_grad():
            logits = model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids).logits
    finally:
        handle.remove()
    return metric(logits[:, -1, metric.tokens()].double())


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_atp_is_the_directional_derivative_through_every_path(tiny_llama, kind):
    """AtP = d metric / d eps along (replacement − z), for heads of EVERY layer: paths through
    later heads count (a head of layer 0 reaches the logits through layer 1's attention too)."""
    tiny = tiny_llama
    points = decision_points(tiny, transcripts(2), "buyer", "accept")
    metric = LogitDiff.accept_vs_counter(tiny)
    means = reference_means(tiny, points) if kind == "mean" else None
    est = atp(tiny, points, metric, kind, means)
    b = tiny.batch([p.ids for p in points])
    B, T = b.input_ids.shape
    H, d = tiny.shape.n_heads, tiny.shape.d_head
    with capture(tiny, "attn_z") as zs:
        tiny.logits(b)
    values = replacement_values(tiny, b, points, zs, kind, means) if kind == "mean" else None
    mask = b.attention_mask[..., None].float()
    eps = 1e-3
    for layer in (0,):  # the layer whose heads reach the metric through later heads too
        z = zs[layer].reshape(B, T, H, d)
        for head in range(H):
            target = torch.zeros_like(z[:, :, head]) if values is None else values[layer][:, :, head]
            direction = (target - z[:, :, head]) * mask
            up = _metric_with(tiny, b, metric, layer, head, direction, eps)
            down = _metric_with(tiny, b, metric, layer, head, direction, -eps)
            fd = ((up - down) / (2 * eps)).cpu().numpy()
            assert np.allclose(est[:, layer, head], fd, atol=2e-2, rtol=2e-2), (layer, head, est[:, layer, head], fd)
    assert np.abs(est[:, 0]).max() > 1e-2  # layer-0 heads matter at all


def test_graddrop_is_the_mean_of_absolute_estimates_with_each_layer_dropped(tiny_llama):
    """With 2 layers: a layer-1 head's AtP* is |AtP|; a layer-0 head's is |AtP| computed with
    layer 1's contribution to the residual stream carrying no gradient (skip connection only)."""
    model = tiny_llama
    points = decision_points(model, transcripts(3), "buyer", "accept")
    plain, star = atp(model, points), atp_star(model, points)
    assert model.shape.n_layers == 2 and (star >= 0).all()
    assert np.allclose(star[:, 1], np.abs(plain[:, 1]), atol=1e-5)

    def drop(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        h = args[0] + (h - args[0]).detach()
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = model.sites.layer(1).register_forward_hook(drop)
    try:
        dropped = atp(model, points)
    finally:
        handle.remove()
    assert np.allclose(star[:, 0], np.abs(dropped[:, 0]), atol=1e-5)
    assert not np.allclose(dropped[:, 0], plain[:, 0], atol=1e-3)  # layer 1 does carry gradient


@pytest.mark.parametrize("method", ["atp", "atp*"])
def test_screens_rank_the_planted_copy_head_first(copy_model, method):
    points = decision_points(copy_model, transcripts(8), "buyer", "accept")
    scores = screen_scores(copy_model, points, "accept", method)
    assert np.unravel_index(scores.argmax(), scores.shape) == (0, 0)
    assert scores[0, 1] < 1e-6  # the inert head: no estimate either
    table = sweep_heads(copy_model, points, "accept", screen_top=1, screen=method, progress=False)
    assert [(int(r.layer), int(r["head"])) for _, r in table.iterrows()] == [(0, 0)]


def test_unknown_screen_is_refused(copy_model):
    points = decision_points(copy_model, transcripts(2), "buyer", "accept")
    with pytest.raises(NegolensError, match="atp\\*"):
        sweep_heads(copy_model, points, "accept", screen_top=2, screen="exact", progress=False)
    with pytest.raises(NegolensError, match="means"):
        atp(copy_model, points, kind="mean")
