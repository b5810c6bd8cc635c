"""Where things live inside a model: one small declarative table per model family.

Interpretability code addresses a model through *sites* — the per-head attention output ``z``
of a layer, the residual stream after a layer, the final norm, the unembedding — never through
raw Hugging Face attribute paths. This module is the only place that knows those paths, like
TransformerLens' per-architecture component mapping or pyvene's per-model tables. Every site
also has its TransformerLens hook name, so the HF path and the bridge path can be checked
against each other (``tests/test_sites.py`` does, for every family below).

Sites (the ``site`` argument of :meth:`Sites.module`, :meth:`Sites.hook_name` and of
:class:`negolens.interventions.Intervention`):

``attn_z``
    the per-head attention output before the output projection, ``[batch, pos, n_heads·d_head]``:
    the INPUT of the layer's ``o_proj`` (TransformerLens ``blocks.{l}.attn.hook_z``);
``resid_pre``
    the residual stream entering a layer: the INPUT of the decoder layer
    (``blocks.{l}.hook_resid_pre``);
``resid_post``
    the residual stream after a layer: the OUTPUT of the decoder layer
    (``blocks.{l}.hook_resid_post``).

To support a new family, add one :class:`SiteTable` to :data:`TABLES`, keyed by the HF
``config.model_type``; nothing else changes.

>>> from negolens.sites import TABLES
>>> TABLES["llama"].attn_out
'self_attn.o_proj'
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from negolens.errors import NegolensError

__all__ = ["SiteTable", "Sites", "TABLES", "SITES", "HOOK_NAMES", "sites_of"]


@dataclass(frozen=True)
class SiteTable:
    """Attribute paths of one model family (dotted, relative to the ``*ForCausalLM`` model).

    Parameters
    ----------
    layers
        The ``ModuleList`` of decoder layers.
    attn_out
        Inside one decoder layer: the attention output projection, whose INPUT is ``z``.
    final_norm
        The norm applied after the last layer.
    unembed
        The unembedding (``lm_head``) linear layer.
    """

    layers: str = "model.layers"
    attn_out: str = "self_attn.o_proj"
    final_norm: str = "model.norm"
    unembed: str = "lm_head"


TABLES: dict[str, SiteTable] = {
    "llama": SiteTable(),
    "qwen2": SiteTable(),
    "gemma3_text": SiteTable(),
    # the multimodal Gemma-3 wrapper keeps its text model one level down
    "gemma3": SiteTable(layers="model.language_model.layers", final_norm="model.language_model.norm"),
}
"""The site table of each supported family, keyed by HF ``config.model_type``."""

HOOK_NAMES: dict[str, str] = {
    "attn_z": "blocks.{layer}.attn.hook_z",
    "attn_pattern": "blocks.{layer}.attn.hook_pattern",
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "final_norm": "ln_final.hook_normalized",
}
"""TransformerLens (bridge) hook name of each site; ``{layer}`` is filled in by :meth:`Sites.hook_name`."""

SITES = ("attn_z", "resid_pre", "resid_post")
"""Sites that have a module per layer (and so can be hooked and intervened on)."""


def _get(root, dotted: str):
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


class Sites:
    """The resolved sites of one HF model (``NegoModel.sites``).

    Parameters
    ----------
    hf_model
        A transformers ``*ForCausalLM`` model (not a ``PeftModel``: merge or unwrap it first).

    Raises
    ------
    NegolensError
        If the model's family (``config.model_type``) has no entry in :data:`TABLES`.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> sites = tiny_model().sites
    >>> sites.n_layers, sites.hook_name("attn_z", 1)
    (2, 'blocks.1.attn.hook_z')
    >>> sites.attn_z(0) is sites.layer(0).self_attn.o_proj
    True
    """

    def __init__(self, hf_model):
        self.hf = hf_model
        self.family = getattr(hf_model.config, "model_type", None)
        if self.family not in TABLES:
            raise NegolensError(
                f"negolens has no site table for model family {self.family!r} "
                f"(supported: {', '.join(sorted(TABLES))}). To add one, add an entry "
                f"`{self.family!r}: SiteTable(layers=..., attn_out=..., final_norm=..., unembed=...)` "
                "to TABLES in negolens/sites.py, with the dotted paths of the decoder layers, the "
                "attention output projection inside a layer, the final norm and the unembedding."
            )
        self.table = TABLES[self.family]

    # -- modules --------------------------------------------------------------------------
    def layers(self) -> torch.nn.ModuleList:
        """The decoder layers, in order."""
        return _get(self.hf, self.table.layers)

    @property
    def n_layers(self) -> int:
        """Number of decoder layers."""
        return len(self.layers())

    def layer(self, layer: int) -> torch.nn.Module:
        """Decoder layer ``layer``: its input is ``resid_pre``, its output ``resid_post``."""
        return self.layers()[self._check(layer)]

    def attn_z(self, layer: int) -> torch.nn.Module:
        """The module whose INPUT is ``z`` of ``layer`` (the attention output projection)."""
        return _get(self.layer(layer), self.table.attn_out)

    def resid_post(self, layer: int) -> torch.nn.Module:
        """The module whose OUTPUT is the residual stream after ``layer`` (the decoder layer)."""
        return self.layer(layer)

    def resid_pre(self, layer: int) -> torch.nn.Module:
        """The module whose INPUT is the residual stream entering ``layer`` (the decoder layer)."""
        return self.layer(layer)

    def module(self, site: str, layer: int) -> torch.nn.Module:
        """The module that carries ``site`` (one of :data:`SITES`) at ``layer``."""
        if site not in SITES:
            raise NegolensError(f"unknown site {site!r}; use one of {', '.join(SITES)}")
        return getattr(self, site)(layer)

    def final_norm(self) -> torch.nn.Module:
        """The norm applied to the last layer's output before the unembedding."""
        return _get(self.hf, self.table.final_norm)

    def unembed(self) -> torch.nn.Module:
        """The unembedding linear layer (``d_model`` → vocabulary)."""
        return _get(self.hf, self.table.unembed)

    def unembed_weight(self) -> torch.Tensor:
        """The unembedding matrix ``[d_vocab, d_model]`` (rows are token directions)."""
        return self.unembed().weight

    def logits_at(self, hidden: torch.Tensor, tokens: list[int] | None = None) -> torch.Tensor:
        """Logits from final-layer residuals ``[..., d_model]``, only for ``tokens`` if given.

        Computing a few tokens' logits is much cheaper than the full vocabulary head.
        """
        w = self.unembed_weight()
        w = w if tokens is None else w[tokens]
        out = self.final_norm()(hidden) @ w.T
        bias = getattr(self.unembed(), "bias", None)
        if bias is not None:
            out = out + (bias if tokens is None else bias[tokens])
        cap = getattr(self.hf.config, "final_logit_softcapping", None)
        return torch.tanh(out / cap) * cap if cap else out

    # -- TransformerLens names ----------------------------------------------------------------
    def hook_name(self, site: str, layer: int | None = None) -> str:
        """The TransformerLens hook name of ``site`` (at ``layer`` for per-layer sites).

        >>> from negolens.sites import HOOK_NAMES
        >>> HOOK_NAMES["resid_post"].format(layer=3)
        'blocks.3.hook_resid_post'
        """
        try:
            name = HOOK_NAMES[site]
        except KeyError:
            raise NegolensError(f"unknown site {site!r}; use one of {', '.join(HOOK_NAMES)}") from None
        if "{layer}" in name:
            if layer is None:
                raise NegolensError(f"site {site!r} needs a layer")
            return name.format(layer=self._check(layer))
        return name

    def _check(self, layer: int) -> int:
        n = len(self.layers())
        if not -n <= layer < n:
            raise NegolensError(f"layer {layer} out of range: the model has {n} layers (0…{n - 1})")
        return layer

    def __repr__(self) -> str:
        return f"Sites({self.family!r}, {self.n_layers} layers)"


def sites_of(hf_model) -> Sites:
    """The :class:`Sites` of a transformers model (see :data:`TABLES`)."""
    return Sites(hf_model)
