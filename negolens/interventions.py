"""Interventions: one mechanism to change a site during every forward inside a block.

An :class:`Intervention` says *what* to do at *which* site (see :mod:`negolens.sites`)::

    Intervention("attn_z", layer=3, head=5)                          # zero-ablate head L3H5
    Intervention("attn_z", 3, 5, kind="mean", value=means)          # mean-ablate it
    Intervention("resid_post", 6, kind="add", value=d, alpha=8.0)   # steer along d after layer 6

Kinds:

* ``zero`` — the site (or the head's slice of ``z``) set to 0;
* ``mean``, ``resample``, ``patch`` — set to ``value`` (a mean activation, another input's
  activation, a clean run's activation: they differ only in where ``value`` comes from);
* ``add`` — ``alpha · value`` added (activation steering).

:func:`intervene` registers one PyTorch hook per touched module (via the site table), so the same
interventions act on plain forwards, on ``generate`` and on the negotiation runner's decoding,
and on partial forwards that call decoder layers directly. :func:`capture` records sites the
same way (optionally as gradient leaves, for attribution patching).

Shapes at ``attn_z``: the hook sees ``z`` as ``[batch, pos, n_heads, d_head]``; with ``head`` set,
``value`` broadcasts to ``[batch, pos, d_head]``, otherwise to the whole ``[batch, pos, n_heads,
d_head]``. At ``resid_pre`` / ``resid_post``: ``[batch, pos, d_model]``. ``rows`` restricts an
intervention to a range of batch rows, so one forward over a replicated batch can try a
different head in every replica (the fast head sweep does).

>>> import tempfile, torch, negolens
>>> from negolens.testing import tiny_model_dir
>>> model = negolens.load(tiny_model_dir(tempfile.mkdtemp()))
>>> batch = model.batch([[5, 6, 7, 8]])
>>> with intervene(model, [Intervention("attn_z", 0, head=1)]):
...     ablated = model.logits(batch)
>>> bool((ablated != model.logits(batch)).any())
True
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from negolens.errors import NegolensError
from negolens.sites import SITES

__all__ = ["Intervention", "KINDS", "REPLACE_KINDS", "intervene", "capture", "ablations"]

REPLACE_KINDS = ("zero", "mean", "resample", "patch")
"""Kinds that replace the site's value."""
KINDS = REPLACE_KINDS + ("add",)
"""Every intervention kind."""


@dataclass(frozen=True, eq=False)
class Intervention:
    """Change ``site`` of ``layer`` (one head of it, at ``attn_z``) during forwards.

    Parameters
    ----------
    site
        ``"attn_z"``, ``"resid_pre"`` or ``"resid_post"`` (see :mod:`negolens.sites`).
    layer
        Decoder layer index.
    head
        At ``attn_z`` only: the query head whose slice of ``z`` to change (``None``: all heads).
    kind
        One of :data:`KINDS`: ``zero`` | ``mean`` | ``resample`` | ``patch`` | ``add``.
    value
        The replacement (``mean``/``resample``/``patch``) or the direction (``add``); a tensor
        that broadcasts to the site (see the module docstring). Not used by ``zero``.
    alpha
        ``add`` only: the scale of ``value``.
    rows
        Only these batch rows (a ``slice`` or ``(start, stop)``); ``None``: every row.
    """

    site: str
    layer: int
    head: int | None = None
    kind: str = "zero"
    value: torch.Tensor | None = None
    alpha: float = 1.0
    rows: slice | tuple[int, int] | None = None

    def __post_init__(self):
        if self.site not in SITES:
            raise NegolensError(f"unknown site {self.site!r}; use one of {', '.join(SITES)}")
        if self.kind not in KINDS:
            raise NegolensError(f"unknown intervention kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.head is not None and self.site != "attn_z":
            raise NegolensError(f"head= only applies at site 'attn_z', not {self.site!r}")
        if self.kind != "zero" and self.value is None:
            raise NegolensError(f"a {self.kind!r} intervention needs value= (zero is the only kind without one)")
        if isinstance(self.rows, tuple):
            object.__setattr__(self, "rows", slice(*self.rows))

    def apply(self, x: torch.Tensor) -> None:
        """Apply to ``x`` IN PLACE; ``x`` is the site's tensor (``z`` viewed per head at ``attn_z``)."""
        rows = self.rows if self.rows is not None else slice(None)
        target = x[rows] if self.head is None else x[rows, :, self.head]
        if self.kind == "zero":
            target.zero_()
            return
        value = torch.as_tensor(self.value).to(device=x.device, dtype=x.dtype)
        if self.kind == "add":
            target.add_(self.alpha * value)
        else:
            target.copy_(value.expand_as(target))

    def __repr__(self) -> str:
        where = f"L{self.layer}" + (f"H{self.head}" if self.head is not None else "")
        rows = "" if self.rows is None else f", rows={self.rows.start}:{self.rows.stop}"
        return f"Intervention({self.kind} {self.site} {where}{rows})"


def ablations(heads: Iterable[tuple[int, int]], kind: str = "zero", values=None, rows=None) -> list[Intervention]:
    """Interventions replacing ``z`` of each (layer, head): ``values[(layer, head)]`` unless zero."""
    return [Intervention("attn_z", layer, head, kind, None if values is None else values[(layer, head)], rows=rows)
            for layer, head in heads]


def _split_heads(model, z: torch.Tensor) -> torch.Tensor:
    return z.view(*z.shape[:-1], model.shape.n_heads, model.shape.d_head)


@contextmanager
def intervene(model, interventions: Intervention | Iterable[Intervention]) -> Iterator[None]:
    """Apply ``interventions`` to every forward of ``model`` inside the block (generation included).

    Interventions on the same module run in the given order; hooks are removed on exit, also
    after an exception.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    interventions
        One :class:`Intervention` or several.

    Examples
    --------
    >>> import tempfile, negolens
    >>> from negolens.testing import tiny_model_dir
    >>> model = negolens.load(tiny_model_dir(tempfile.mkdtemp()))
    >>> prompt = model.render([{"role": "user", "content": "Would you take $250?"}], add_generation_prompt=True)
    >>> with intervene(model, ablations([(0, 0), (1, 2)])):
    ...     ids = model.generate([prompt], max_new_tokens=4)
    """
    items = [interventions] if isinstance(interventions, Intervention) else list(interventions)
    grouped: dict[tuple[str, int], list[Intervention]] = {}
    for iv in items:
        grouped.setdefault((iv.site, iv.layer), []).append(iv)
    sites = model.sites
    handles = []
    try:
        for (site, layer), group in grouped.items():
            module = sites.module(site, layer)
            if site == "attn_z":
                def pre(module, args, group=group):
                    z = args[0].clone()
                    heads = _split_heads(model, z)
                    for iv in group:
                        iv.apply(heads)
                    return (z, *args[1:])
                handles.append(module.register_forward_pre_hook(pre))
            elif site == "resid_pre":
                def pre_kw(module, args, kwargs, group=group):
                    if args:
                        h = args[0].clone()
                        for iv in group:
                            iv.apply(h)
                        return (h, *args[1:]), kwargs
                    h = kwargs["hidden_states"].clone()
                    for iv in group:
                        iv.apply(h)
                    return args, {**kwargs, "hidden_states": h}
                handles.append(module.register_forward_pre_hook(pre_kw, with_kwargs=True))
            else:
                def post(module, args, output, group=group):
                    h = (output[0] if isinstance(output, tuple) else output).clone()
                    for iv in group:
                        iv.apply(h)
                    return (h, *output[1:]) if isinstance(output, tuple) else h
                handles.append(module.register_forward_hook(post))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture(model, site: str = "attn_z", layers: Iterable[int] | None = None, *, grad: bool = False,
            store: dict | None = None) -> Iterator[dict[int, torch.Tensor]]:
    """Record ``site`` at ``layers`` (default all) during forwards inside the block.

    Yields a dict ``layer → tensor`` filled by each forward (the last forward wins): ``z`` is
    ``[batch, pos, n_heads·d_head]``, residuals ``[batch, pos, d_model]``. With ``grad=True``
    (``attn_z`` only) the recorded tensor is a leaf that requires grad and is used by the rest of
    the forward, so after ``backward()`` its ``.grad`` is ∂output/∂site *with every earlier
    layer's z held fixed*: each layer's leaf cuts the paths from earlier heads through later
    ones, so the gradient is the full one for the last layer only (for attribution patching
    through every path use :func:`negolens.analysis.screening.atp`).

    >>> import tempfile, negolens
    >>> from negolens.testing import tiny_model_dir
    >>> model = negolens.load(tiny_model_dir(tempfile.mkdtemp()))
    >>> with capture(model, "resid_post", [1]) as acts:
    ...     _ = model.logits(model.batch([[5, 6, 7]]))
    >>> tuple(acts[1].shape)
    (1, 3, 64)
    """
    if site not in SITES:
        raise NegolensError(f"unknown site {site!r}; use one of {', '.join(SITES)}")
    if grad and site != "attn_z":
        raise NegolensError("capture(grad=True) is only supported at site 'attn_z'")
    sites = model.sites
    out = {} if store is None else store
    handles = []
    try:
        for layer in (range(sites.n_layers) if layers is None else layers):
            module = sites.module(site, layer)
            if site == "attn_z":
                def pre(module, args, layer=layer):
                    if not grad:
                        out[layer] = args[0].detach()
                        return None
                    z = args[0].detach().requires_grad_(True)
                    out[layer] = z
                    return (z, *args[1:])
                handles.append(module.register_forward_pre_hook(pre))
            elif site == "resid_pre":
                def pre_kw(module, args, kwargs, layer=layer):
                    out[layer] = (args[0] if args else kwargs["hidden_states"]).detach()
                handles.append(module.register_forward_pre_hook(pre_kw, with_kwargs=True))
            else:
                def post(module, args, output, layer=layer):
                    out[layer] = (output[0] if isinstance(output, tuple) else output).detach()
                handles.append(module.register_forward_hook(post))
        yield out
    finally:
        for handle in handles:
            handle.remove()
