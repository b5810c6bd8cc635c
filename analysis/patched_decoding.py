"""Greedy offers with components patched between paired prompts (the engine of the mediation study).

A :class:`Component` is a patchable part of the model; :func:`pair_spans` says which
right-aligned positions of a (low, high) prompt pair can be patched; :func:`greedy_digits`
decodes the greedy offer after the low prompts with components taken from the high ones — at
the prompt positions and, in lockstep (the high run is fed the same digits), at every
generated digit. See :mod:`negolens.analysis.mediation` for the study built on it.

**Alignment.** Positions are right-aligned from the decision token. Only the opening price
differs, so tokens after it are the same in both prompts and line up; before it the prompts
are identical, so patching there changes nothing. When the two prices have the same number of
tokens, every position from the first differing token on is patched; when they do not (``$96``
vs ``$144``), only the common suffix after the price is (the price tokens themselves cannot be
paired).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from negolens.batching import last_position
from negolens.agents.decoding import digit_tokens, token_pieces
from negolens.analysis.behaviour import MAX_DIGITS
from negolens.interventions import Intervention, capture, intervene

__all__ = ["COMPONENT_KINDS", "Component", "Lockstep", "pair_spans", "greedy_digits", "offer_value", "patches"]

COMPONENT_KINDS = ("head", "attn", "resid_after", "resid_last")
"""What can be patched (see the module docstring)."""


@dataclass(frozen=True)
class Component:
    """A patchable part of the model: ``kind`` (one of :data:`COMPONENT_KINDS`) at ``layer`` (``head``
    for ``kind="head"``).

    >>> Component("head", 3, 5).name, Component("resid_last", 2).name
    ('L3H5', 'L2 resid_last')
    """

    kind: str
    layer: int
    head: int | None = None

    @property
    def name(self) -> str:
        """``L3H5`` for a head, ``L3 attn`` / ``L3 resid_after`` … otherwise."""
        return f"L{self.layer}H{self.head}" if self.kind == "head" else f"L{self.layer} {self.kind}"

    @property
    def site(self) -> str:
        """The :mod:`negolens.sites` site it patches."""
        return "attn_z" if self.kind in ("head", "attn") else "resid_pre"


@dataclass(frozen=True, eq=False)
class _Patch(Intervention):
    """A patch on the positions in ``mask`` ``[B, T]`` only; a no-op on a forward of another length."""

    mask: torch.Tensor | None = None

    def apply(self, x: torch.Tensor) -> None:
        if x.shape[1] != self.mask.shape[1]:
            return
        rows = self.rows if self.rows is not None else slice(None)
        target = x[rows] if self.head is None else x[rows, :, self.head]
        m = self.mask.to(x.device)
        target[m] = self.value.to(device=x.device, dtype=x.dtype)[m]


def pair_spans(low: list[int], high: list[int]) -> tuple[int, int, bool]:
    """Right-aligned positions to patch for a (low, high) prompt pair.

    Returns
    -------
    (full, after, aligned)
        ``full``: positions patched for heads/layers (from the first differing token on when the
        prices have as many tokens — ``aligned`` — else the common suffix); ``after``: the common
        suffix after the last differing token.

    Examples
    --------
    >>> pair_spans([1, 2, 7, 8, 3, 4], [1, 2, 9, 9, 3, 4]), pair_spans([1, 2, 7, 3, 4], [1, 2, 9, 9, 3, 4])
    ((4, 2, True), (2, 2, False))
    """
    p = 0
    while p < min(len(low), len(high)) and low[p] == high[p]:
        p += 1
    s = 0
    while s < min(len(low), len(high)) - p and low[-1 - s] == high[-1 - s]:
        s += 1
    aligned = len(low) == len(high)
    return (len(low) - p if aligned else s), s, aligned


def _span(comp: Component, spans) -> int:
    full, after, _ = spans
    return {"resid_after": after, "resid_last": 1}.get(comp.kind, full)


def _donor_value(model, comp: Component, z: dict, resid: dict, layer: int) -> torch.Tensor:
    """The donor's activation of ``comp``: ``[B, T, d_head]`` (head), ``[B, T, H, d_head]`` (attn),
    ``[B, T, d_model]`` (residual)."""
    if comp.site == "resid_pre":
        return resid[layer]
    B, T = z[layer].shape[:2]
    heads = z[layer].reshape(B, T, model.shape.n_heads, model.shape.d_head)
    return heads[:, :, comp.head] if comp.kind == "head" else heads


def patches(model, comps, T: int, donor_T: int, spans, z: dict, resid: dict, rows=None) -> list[Intervention]:
    """Right-aligned patch interventions of ``comps`` into a batch of length ``T``.

    ``z`` / ``resid``: the donor's recorded ``attn_z`` ``[B, donor_T, H·d]`` and ``resid_pre``
    ``[B, donor_T, d_model]`` per layer; ``spans``: :func:`pair_spans` per row; ``rows``: per
    component, the batch rows ``(start, stop)`` it acts on (replicated batches).
    """
    out = []
    for j, comp in enumerate(comps):
        donor = _donor_value(model, comp, z, resid, comp.layer)
        value = torch.zeros((donor.shape[0], T, *donor.shape[2:]), dtype=donor.dtype, device=donor.device)
        mask = torch.zeros((donor.shape[0], T), dtype=torch.bool, device=donor.device)
        for r, sp in enumerate(spans):
            k = min(_span(comp, sp), T, donor_T)
            if k:
                value[r, T - k :] = donor[r, donor_T - k :]
                mask[r, T - k :] = True
        where = None if rows is None else rows[j]
        out.append(_Patch(comp.site, comp.layer, comp.head if comp.kind == "head" else None, "patch", value,
                          rows=where, mask=mask))
    return out


def _step(model, ids: torch.Tensor, mask, pos, past):
    res = model.hf(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True,
                   logits_to_keep=last_position(model.device))
    return res.past_key_values, res.logits[:, -1].float()


class Lockstep:
    """Greedy offers after ``low`` prompts, with any component set patched from ``high`` ones.

    Built once per batch of pairs, then :meth:`run` once per component set: the high prompts'
    prefill (every layer's ``z`` and ``resid_pre`` recorded) and the low prompts' keys/values
    before the patched span are computed once and reused, so a set costs the span, the digits
    and the high run's lockstep digits only.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    low, high
        Decision points (``offer`` metric), one per row; ``high=None``: no patching.
    spans
        :func:`pair_spans` per row (computed when not given).
    dot
        A ``.`` also ends the number (see :func:`greedy_digits`).
    comma
        A ``,`` may continue the number (a thousands separator; see :func:`greedy_digits`).
    """

    @torch.inference_mode()
    def __init__(self, model, low, high=None, spans=None, dot: bool = True, comma: bool = False):
        tok = model.tokenizer
        pieces = token_pieces(tok)
        self.model, self.B = model, len(low)
        self.digits = digit_tokens(tok, pieces).to(model.device)
        self.commas = torch.tensor([i for i, p in enumerate(pieces) if p == ","] if comma else [], dtype=torch.long,
                                   device=model.device)
        self.steps = MAX_DIGITS + (2 if comma else 0)
        stops = [tok.eos_token_id] + ([i for i, p in enumerate(pieces) if p == "."] if dot else [])
        self.stops = torch.tensor(stops, dtype=torch.long, device=model.device)
        self.low = model.batch([list(p.ids) for p in low])
        T = self.low.input_ids.shape[1]
        self.high = None
        if high is not None:
            self.spans = spans or [pair_spans(list(lo.ids), list(hi.ids)) for lo, hi in zip(low, high)]
            self.high = model.batch([list(p.ids) for p in high])
            with capture(model, "attn_z") as z, capture(model, "resid_pre") as resid:
                self.high_past, _ = _step(model, self.high.input_ids, self.high.attention_mask,
                                          self.high.position_ids, None)
            self.z, self.resid = dict(z), dict(resid)
        self.P = max(0, T - max([1] + [sp[0] for sp in getattr(self, "spans", [])]))
        self.prefix = None
        if self.P:
            b = self.low
            self.prefix, _ = _step(model, b.input_ids[:, : self.P], b.attention_mask[:, : self.P],
                                   b.position_ids[:, : self.P], None)

    @torch.inference_mode()
    def run(self, comps=()) -> list[list[int]]:
        """Greedy digit tokens per row with ``comps`` (:class:`Component` list) patched together.

        Returns
        -------
        list of list of int
            Per row, the digits written, then the token that ended the number (none when the
            digit limit did).
        """
        import copy

        model, B, b, P = self.model, self.B, self.low, self.P
        comps = list(comps)
        if comps and self.high is None:
            raise ValueError("Lockstep(..., high=None) cannot patch: pass the high-anchor points")
        T = b.input_ids.shape[1]
        active = patches(model, comps, T - P, self.high.input_ids.shape[1], self.spans, self.z, self.resid) \
            if comps else []
        with intervene(model, active):
            past, logits = _step(model, b.input_ids[:, P:], b.attention_mask, b.position_ids[:, P:],
                                 copy.deepcopy(self.prefix))
        donor = None
        if comps:
            donor = {"past": copy.deepcopy(self.high_past), "mask": self.high.attention_mask,
                     "pos": self.high.position_ids[:, -1:]}
        z_layers = sorted({c.layer for c in comps if c.site == "attn_z"})
        r_layers = sorted({c.layer for c in comps if c.site == "resid_pre"})
        mask, pos = b.attention_mask, b.position_ids[:, -1:]
        out, done = [[] for _ in range(B)], [False] * B
        for step in range(self.steps):
            best = logits[:, self.digits].max(-1)
            end = logits[:, self.stops].max(-1)
            sep = logits[:, self.commas].max(-1) if len(self.commas) else None
            nxt = torch.full((B,), model.pad_id, dtype=torch.long, device=mask.device)
            for r in range(B):
                if not done[r] and step > 0 and end.values[r] > best.values[r] and \
                        (sep is None or end.values[r] > sep.values[r]):
                    out[r].append(int(self.stops[end.indices[r]]))
                    done[r] = True
                if done[r]:
                    continue
                after_digit = step > 0 and int(out[r][-1]) not in self.commas.tolist()
                if sep is not None and after_digit and sep.values[r] > best.values[r]:
                    nxt[r] = int(self.commas[sep.indices[r]])
                else:
                    nxt[r] = int(self.digits[best.indices[r]])
                out[r].append(int(nxt[r]))
            if all(done) or step == self.steps - 1:
                break
            mask, pos = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1), pos + 1
            active = []
            if donor is not None:  # the high run reads the same digits; its components at them are patched in
                donor["mask"] = torch.cat([donor["mask"], torch.ones_like(donor["mask"][:, :1])], dim=1)
                donor["pos"] = donor["pos"] + 1
                with capture(model, "attn_z", z_layers) as z, capture(model, "resid_pre", r_layers) as resid:
                    donor["past"], _ = _step(model, nxt[:, None], donor["mask"], donor["pos"], donor["past"])
                active = patches(model, comps, 1, 1, [(1, 1, True)] * B, z, resid)
            with intervene(model, active):
                past, logits = _step(model, nxt[:, None], mask, pos, past)
        return out


def greedy_digits(model, low, high=None, comps=(), spans=None, dot: bool = True, comma: bool = False) -> list[list[int]]:
    """Greedy digit tokens after ``low`` prompts, optionally with ``comps`` patched from ``high``.

    Digits only, at most :data:`~negolens.analysis.behaviour.MAX_DIGITS`; after the first digit
    the number ends where the end-of-turn token — or, with ``dot``, a ``.`` (the agents' decoder
    allows cents, so the integer part ends there) — beats every digit. ``dot=False`` is exactly
    the rule of :func:`negolens.analysis.greedy_offer`, which lets an untuned model that wants to
    write ``.00`` run on to seven figures. With ``comma``, a ``,`` right after a digit continues
    the number (``9,000``; the agents' decoder has no comma, so there a model copying ``$9,000``
    offers ``$9``). With ``comps``, the ``high`` prompts run in lockstep,
    fed the same digits, and each component is patched at its prompt positions
    (:func:`pair_spans`) and at every generated one. For several component sets on the same
    pairs, build one :class:`Lockstep` and call its ``run`` per set.

    Parameters
    ----------
    model
        A :class:`negolens.hooked.NegoModel`.
    low, high
        Decision points (``offer`` metric), one per row; ``high`` only with ``comps``.
    comps
        :class:`Component` list patched together.
    spans
        :func:`pair_spans` per row (computed when not given).
    dot
        A ``.`` also ends the number.
    comma
        A ``,`` after a digit continues the number (read as a thousands separator).

    Returns
    -------
    list of list of int
        Per row, the digit token ids written, then the token that ended the number (end-of-turn
        or ``.``; none when the digit limit did). :func:`offer_value` reads the price.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> from negolens.analysis.anchoring import anchoring_pairs
    >>> model = tiny_model()
    >>> pair = anchoring_pairs(model, example_transcripts(1))[0]
    >>> plain = greedy_digits(model, [pair.low])
    >>> greedy_digits(model, [pair.low], [pair.high], comps=[]) == plain   # nothing patched: the plain offer
    True
    """
    return Lockstep(model, low, high if comps else None, spans, dot, comma).run(comps)


def offer_value(pieces: list[str], tokens: list[int], list_price: float) -> float:
    """log(price / list price) of :func:`greedy_digits` tokens (NaN for no digit or 0).

    >>> offer_value(["0", "1", "2", "."], [1, 2, 3], 12.0)   # "12." on a list price of 12
    0.0
    """
    text = "".join(pieces[t] for t in tokens if pieces[t].isdigit())
    price = float(text) if text else 0.0
    return float(np.log(price / list_price)) if price > 0 else float("nan")
