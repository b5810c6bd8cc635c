"""Attribution patching for head ablations: AtP and AtP* (Kramár et al. 2024) on ``z``.

A head's ablation effect (:func:`~negolens.analysis.sweep.sweep_heads`) is ``M(z_h ← r) − M(z)``:
the metric when the head's output ``z`` (before the output projection) is replaced by ``r`` —
0, a mean, another point's ``z`` — at every position. Estimating it for every head from a few
passes, instead of one forward per head, lets a sweep ablate only the heads that rank high
(``sweep_heads(screen_top=…, screen=…)``). Estimates (:data:`SCREENS`):

``atp``
    attribution patching (Nanda 2022): ``Σ_pos (r − z) · ∂M/∂z`` at the clean input, from one
    forward and one backward per batch.
``atp*``
    AtP* (Kramár et al. 2024, "AtP*: An efficient and scalable method for localizing LLM
    behaviour to components"): AtP plus GradDrop. Cancellation between a head's paths (its
    direct effect against what later layers do with it) can make the gradient small while the
    real effect is not; GradDrop recomputes the gradient once per layer ℓ with the gradient
    through layer ℓ's contribution to the residual stream dropped (only the skip connection
    carries it), and averages the ``L − 1`` absolute estimates that each head gets. It returns
    magnitudes (≥ 0), the score the paper ranks by. Cost: about ``L / 2`` more backward passes.

The other half of AtP*, the *QK fix*, does not apply to these nodes. It re-computes the
attention softmax exactly when the patched node is a query or a key, because those feed a
softmax directly and a saturated softmax has a near-zero gradient. Our node is ``z``: it comes
out of the head's softmax, and the path ``z → o_proj → residual`` is linear, so zeroing or
replacing ``z`` never moves the head's own attention pattern. What stays nonlinear is
downstream — later norms, MLPs and later heads' softmaxes — and GradDrop is the part of AtP*
that targets it (through cancellation). Gradients are pulled back layer by layer
(:class:`_Graph`), so every path through later heads counts (:func:`atp` equals finite
differences; tested).
"""

from __future__ import annotations

import numpy as np
import torch

from negolens.batching import last_position
from negolens.analysis.ablation import check_kind, replacement_values
from negolens.analysis.sweep import as_metric, check_points, sdpa
from negolens.autobatch import map_chunks
from negolens.errors import NegolensError

__all__ = ["SCREENS", "atp", "atp_star", "screen_scores"]

SCREENS = ("atp", "atp*")
"""Screening estimates a head sweep can rank heads by (see the module docstring)."""


class _Graph:
    """One batch's forward with every decoder layer's graph kept apart: each layer's input is a
    leaf, so a gradient can be pulled back one layer at a time (and a layer's contribution
    skipped, for GradDrop). ``z`` stays inside the graph, so paths through later heads count."""

    def __init__(self, model, batch, metric):
        sites = model.sites
        self.inputs, self.outputs, self.z = {}, {}, {}
        handles = []
        for i in range(sites.n_layers):
            handles += [sites.layer(i).register_forward_pre_hook(self._leaf(i), with_kwargs=True),
                        sites.layer(i).register_forward_hook(self._keep(i)),
                        sites.attn_z(i).register_forward_pre_hook(self._keep_z(i))]
        try:
            with torch.enable_grad():
                logits = model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                  position_ids=batch.position_ids, use_cache=False, logits_to_keep=last_position(model.device)).logits
                self.value = metric(logits[:, -1, metric.tokens()].float())
        finally:
            for handle in handles:
                handle.remove()

    def _leaf(self, i):
        def pre(module, args, kwargs):
            h = (args[0] if args else kwargs["hidden_states"]).detach().requires_grad_(True)
            self.inputs[i] = h
            return ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})
        return pre

    def _keep(self, i):
        def post(module, args, output):
            self.outputs[i] = output[0] if isinstance(output, tuple) else output
        return post

    def _keep_z(self, i):
        def pre(module, args):
            self.z[i] = args[0]
        return pre

    def top_grad(self) -> torch.Tensor:
        """∂(Σ metric)/∂(last layer's output)."""
        return torch.autograd.grad(self.value.sum(), self.outputs[len(self.outputs) - 1], retain_graph=True)[0]

    def pull(self, layer: int, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient at ``layer``'s input and at its ``z``, given the gradient at its output."""
        grads = torch.autograd.grad(self.outputs[layer], (self.inputs[layer], self.z[layer]), grad_out,
                                    retain_graph=True, allow_unused=True)  # unused: a hook cut the path
        wrt = (self.inputs[layer], self.z[layer])
        return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, wrt))


def _deltas(model, batch, points, graph: _Graph, kind: str, means) -> dict[int, torch.Tensor]:
    """``r − z`` per layer ``[B, T, H, d]``, zero at padding."""
    B, T = batch.input_ids.shape
    H, d = model.shape.n_heads, model.shape.d_head
    z = {i: zi.detach() for i, zi in graph.z.items()}
    mask = batch.attention_mask[..., None, None].to(z[0].dtype)
    if kind == "zero":
        return {i: -zi.reshape(B, T, H, d) * mask for i, zi in z.items()}
    values = replacement_values(model, batch, points, z, kind, means)
    return {i: (values[i] - zi.reshape(B, T, H, d)) * mask for i, zi in z.items()}


def _batch_estimates(model, points, metric, kind, means, graddrop: bool) -> np.ndarray:
    """``[B, L, H]`` AtP estimates (GradDrop magnitudes when ``graddrop``) for one batch."""
    L, H = model.shape.n_layers, model.shape.n_heads
    batch = model.batch([p.ids for p in points])
    graph = _Graph(model, batch, metric)
    delta = _deltas(model, batch, points, graph, kind, means)

    def estimate(i, grad_z):
        return (delta[i] * grad_z.reshape(delta[i].shape)).sum(dim=(1, 3)).detach().float().cpu()

    plain = torch.zeros(len(points), L, H)
    grad, after = graph.top_grad(), {}
    for i in reversed(range(L)):
        after[i] = grad  # gradient at layer i's output
        grad, grad_z = graph.pull(i, grad)
        plain[:, i] = estimate(i, grad_z)
    if not graddrop or L == 1:
        return (plain.abs() if graddrop else plain).numpy()
    # GradDrop ℓ: layer ℓ's contribution carries no gradient, so the gradient at its input is the
    # one at its output (skip connection only); heads of layers > ℓ keep their AtP estimate, heads of
    # layer ℓ get 0, heads of layers < ℓ a new one. Average the L − 1 magnitudes that can be nonzero.
    total = plain.abs() * torch.arange(L, dtype=plain.dtype)[None, :, None]  # the ℓ < layer terms
    for drop in range(1, L):
        grad = after[drop]
        for i in reversed(range(drop)):
            grad, grad_z = graph.pull(i, grad)
            total[:, i] += estimate(i, grad_z).abs()
    return (total / (L - 1)).numpy()


def _estimates(model, points, metric, kind, means, batch_size, graddrop) -> np.ndarray:
    check_kind(kind)
    check_points(points)
    metric = as_metric(model, metric)
    if kind != "zero" and means is None:
        raise NegolensError(f"{kind} ablation needs means= (negolens.analysis.reference_means)")
    with sdpa(model):
        parts = map_chunks(lambda chunk: _batch_estimates(model, chunk, metric, kind, means, graddrop), list(points),
                           batch_size, model.device, cpu_default=4)
    return np.concatenate(parts)


def atp(model, points, metric="accept", kind: str = "zero", means=None, batch_size: int | str = 4) -> np.ndarray:
    """Attribution patching: per point and head, ``Σ_pos (r − z) · ∂metric/∂z`` at the clean input.

    A first-order estimate of each head's ablation effect (ablated − clean), signed, from one
    forward and one backward per batch. Arguments as for :func:`atp_star`.

    Returns
    -------
    numpy.ndarray
        ``[n_points, n_layers, n_heads]``.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis import decision_points
    >>> model = tiny_model()
    >>> atp(model, decision_points(model, example_transcripts(2), limit=2)).shape
    (2, 2, 4)
    """
    return _estimates(model, points, metric, kind, means, batch_size, graddrop=False)


def atp_star(model, points, metric="accept", kind: str = "zero", means=None, batch_size: int | str = 4) -> np.ndarray:
    """AtP* on ``z``: attribution patching with GradDrop (the QK fix does not apply; module docstring).

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    points
        Decision points (:func:`negolens.analysis.decision_points`).
    metric
        ``"accept"`` or a :class:`~negolens.analysis.sweep.LogitDiff`.
    kind
        ``zero`` | ``mean`` | ``resample``: what replaces ``z`` (as in the sweep).
    means
        :func:`~negolens.analysis.ablation.reference_means`, for ``mean``/``resample``.
    batch_size
        Points per forward.

    Returns
    -------
    numpy.ndarray
        ``[n_points, n_layers, n_heads]``: estimated |effect| per point (≥ 0) — the mean over
        the ``L − 1`` GradDrop variants of each one's absolute AtP estimate.

    Raises
    ------
    NegolensError
        For an unknown ``kind``, no points, or ``mean``/``resample`` without ``means``.

    Examples
    --------
    The GradDrop magnitudes are never negative:

    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis import decision_points
    >>> scores = atp_star(tiny_model(), decision_points(tiny_model(), example_transcripts(2), limit=2))
    >>> scores.shape, bool((scores >= 0).all())
    ((2, 2, 4), True)
    """
    return _estimates(model, points, metric, kind, means, batch_size, graddrop=True)


def screen_scores(model, points, metric="accept", method: str = "atp", kind: str = "zero", means=None,
                  batch_size: int | str = 4) -> np.ndarray:
    """One ranking score per head ``[n_layers, n_heads]``: larger = more likely to matter.

    ``atp``: |mean AtP estimate| over points (the sweep ranks exact effects by |mean| too);
    ``atp*``: mean AtP* magnitude. Other arguments as for :func:`atp_star`.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis import decision_points
    >>> model = tiny_model()
    >>> screen_scores(model, decision_points(model, example_transcripts(2), limit=2), method="atp*").shape
    (2, 4)
    """
    if method not in SCREENS:
        raise NegolensError(f"unknown screen {method!r}; use one of {', '.join(SCREENS)}")
    if method == "atp":
        return np.abs(atp(model, points, metric, kind, means, batch_size).mean(axis=0))
    return atp_star(model, points, metric, kind, means, batch_size).mean(axis=0)
