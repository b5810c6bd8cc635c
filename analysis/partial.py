"""Partial forwards: record one clean forward, then re-run only layers L…end under interventions.

An intervention at layer L cannot change anything before L, so re-running the whole model per
intervention wastes the first L layers. :meth:`CleanForward.record` runs the batch once and
keeps, for every decoder layer, the residual stream entering it and the layer's own keyword
inputs (attention mask, rotary embeddings …), plus every layer's ``z``.
:meth:`CleanForward.run_from` then feeds layer L's recorded input through layers L…end with
:func:`negolens.interventions.intervene` active, optionally over ``replicas`` copies of the
batch (each intervention can target its own replica through ``rows``), and returns logits at
the last position for a few tokens only. The head sweep, layer ablations and activation
patching all use this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from negolens.batching import Batch, last_position
from negolens.interventions import Intervention, capture, intervene

__all__ = ["CleanForward"]


def _expand(value, batch: int, replicas: int):
    """Repeat batch-sized tensors (also inside tuples) ``replicas`` times along dim 0."""
    if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == batch:
        return value.repeat(replicas, *([1] * (value.dim() - 1)))
    if isinstance(value, tuple):
        return tuple(_expand(v, batch, replicas) for v in value)
    return value


@dataclass
class CleanForward:
    """One batch's clean forward, recorded for partial re-runs (see the module docstring).

    Attributes
    ----------
    batch
        The left-padded batch.
    tokens
        The token ids whose logits are kept (at the last position).
    logits
        Clean logits ``[batch, len(tokens)]`` at the last position.
    inputs
        Per layer: ``(hidden_states entering it, its keyword arguments)``.
    z
        Per layer: ``z`` ``[batch, pos, n_heads·d_head]``.
    """

    model: object
    batch: Batch
    tokens: list[int]
    logits: torch.Tensor
    inputs: dict
    z: dict

    @classmethod
    @torch.inference_mode()
    def record(cls, model, batch: Batch, tokens: list[int]) -> "CleanForward":
        """Run ``batch`` once through ``model``, recording what :meth:`run_from` needs.

        >>> from negolens.testing import tiny_model
        >>> model = tiny_model()
        >>> run = CleanForward.record(model, model.batch([[5, 6, 7, 8]]), tokens=[9, 10])
        >>> bool(torch.allclose(run.run_from(1, []), run.logits, atol=1e-5))
        True
        """
        sites, inputs, handles = model.sites, {}, []
        for i in range(sites.n_layers):
            def grab(module, args, kwargs, i=i):
                inputs[i] = (args[0] if args else kwargs["hidden_states"], dict(kwargs))
            handles.append(sites.layer(i).register_forward_pre_hook(grab, with_kwargs=True))
        try:
            with capture(model, "attn_z") as z:
                out = model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, use_cache=False, logits_to_keep=last_position(model.device))
        finally:
            for handle in handles:
                handle.remove()
        logits = out.logits[:, -1, tokens].float()
        return cls(model, batch, list(tokens), logits, inputs, dict(z))

    @property
    def size(self) -> int:
        """Rows in the batch."""
        return self.batch.input_ids.shape[0]

    @torch.inference_mode()
    def run_from(self, layer: int, interventions: list[Intervention], replicas: int = 1) -> torch.Tensor:
        """Logits ``[replicas·batch, len(tokens)]`` (float32) at the last position, re-running layers
        ``layer``…end from the recorded input of ``layer`` with ``interventions`` active.

        Interventions must act at ``layer`` or later (earlier ones cannot fire). Replica ``j`` is
        rows ``j·batch … (j+1)·batch``; address it with ``Intervention(rows=...)``.
        """
        sites, B = self.model.sites, self.size
        h = self.inputs[layer][0].repeat(replicas, 1, 1)
        with intervene(self.model, interventions):
            for i in range(layer, sites.n_layers):
                kwargs = {key: _expand(v, B, replicas) for key, v in self.inputs[i][1].items()}
                h = sites.layer(i)(h, **kwargs)
                h = h[0] if isinstance(h, tuple) else h
        return sites.logits_at(h[:, -1], self.tokens).float()
