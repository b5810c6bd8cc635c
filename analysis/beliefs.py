"""Does the buyer act on its belief about the seller's floor? Patching and steering on its next offer.

Paired dialogues (:func:`concession_pairs`) are identical except the seller's second asking
price: it concedes a little in one (``small``) and a lot in the other (``big``). The outcome is
the buyer's next offer — the price it writes greedily after ``ACTION: counter $``, as
log(price / list price), the measure of :func:`~negolens.analysis.behaviour.greedy_offer`.

* **Concession effect** — offer(big) − offer(small) per pair, mean with a bootstrap CI.
* **Patching** — the big run's residual stream (after layer l) copied into the small run, at
  the seller's differing price tokens or at every later token; the share of the offer
  difference it restores is mean(patched − small) / mean(big − small), CI by resampling pairs.
  Early layers carry the concession at the price tokens; once it has been read into later
  positions, patching those restores it.
* **Steering** — along a belief probe's direction (:func:`~negolens.probes.beliefs.fit_beliefs`)
  at its layer, in label units: a step ``delta`` moves the probe's reading by ``delta`` (a
  believed seller cost ``delta`` × list higher). The slope of the offer on ``delta`` per pair,
  mean with a CI, against a random direction of the same norm.

Every pair is run in one batch over a shared prefix: the tokens before the first difference are
run once and their KV cache is repeated for every condition (clean small, clean big, each
patch, each steering step); interventions act from the first differing token on, and the big
row is the patching donor inside the same forward. Steering therefore leaves the shared prefix
(the system prompt and the earlier turns) as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from negolens.batching import last_position
from negolens.agents.decoding import digit_tokens, token_pieces
from negolens.agents.prompts import system_prompt, view_messages
from negolens.agents.protocol import Act, format_action, format_price
from negolens.agents.scenarios import Scenario
from negolens.analysis.behaviour import MAX_DIGITS, next_digits
from negolens.config import option
from negolens.errors import NegolensError
from negolens.stats import bootstrap_ci

__all__ = ["CausalConfig", "ConcessionPair", "concession_pairs", "belief_effects", "POSITION_SETS"]

POSITION_SETS = ("price tokens", "later tokens")
"""Where patching copies the big run's residual: the seller's differing price tokens, or every token after them."""
DECISION = "ACTION: counter $"


@dataclass
class CausalConfig:
    """Settings of the causal belief tests (:func:`concession_pairs`, :func:`belief_effects`).

    Examples
    --------
    >>> CausalConfig().small_step < CausalConfig().big_step
    True
    >>> CausalConfig.quick().n_pairs < CausalConfig().n_pairs
    True
    """

    n_pairs: int = option(24, "paired dialogues (built-in scenarios, cycled)")
    small_step: float = option(0.02, "the seller's small second concession, as a fraction of the list price")
    big_step: float = option(0.2, "the seller's big second concession, as a fraction of the list price")
    patch_layers: str = option("all", "'all' or a comma list of layers to patch the residual stream after")
    steer_deltas: tuple[float, ...] = option((-0.2, -0.1, 0.0, 0.1, 0.2),
                                             "steering steps along the belief direction, in label units "
                                             "(believed seller cost / list price)")
    steer_label: str = option("seller_cost_ratio", "the belief probe whose direction is steered along")
    seed: int = option(0, "seed of the pairs' first asks, the random direction and the bootstrap")

    @classmethod
    def quick(cls, **overrides) -> "CausalConfig":
        """A fast preset: fewer pairs, three steering steps."""
        return cls(**{"n_pairs": 8, "steer_deltas": (-0.2, 0.0, 0.2), **overrides})

    def __post_init__(self) -> None:
        from negolens.errors import at_least

        at_least(self.n_pairs, 2, "n_pairs")
        if not 0 <= self.small_step < self.big_step < 0.6:
            raise NegolensError(f"concessions must satisfy 0 <= small_step < big_step < 0.6 (fractions of the list "
                                f"price), got {self.small_step} and {self.big_step}")
        if isinstance(self.steer_deltas, (int, float)):
            self.steer_deltas = (float(self.steer_deltas),)
        if len(set(self.steer_deltas)) < 2:
            raise NegolensError("steer_deltas needs at least two different steps to fit a slope, e.g. -0.2,0,0.2")


@dataclass
class ConcessionPair:
    """Two buyer decision prompts that differ only in the seller's second asking price.

    Attributes
    ----------
    id : str
        Pair id.
    scenario : Scenario
        The item (list price, the buyer's budget and target in its system prompt).
    small, big : list of int
        Token ids of the prompt after a small / a big second concession, ending in
        ``ACTION: counter $``; equal lengths.
    asks : tuple of float
        The seller's first ask, small second ask and big second ask, in dollars.
    """

    id: str
    scenario: Scenario
    small: list[int]
    big: list[int]
    asks: tuple[float, float, float]

    @property
    def start(self) -> int:
        """Index of the first token where the two prompts differ (the shared prefix ends here)."""
        return int(np.argmax(np.asarray(self.small) != np.asarray(self.big)))


def _prompt(model, sc: Scenario, asks: tuple[float, float]) -> list[int]:
    """The buyer's prompt after: its offer, the seller's ask, its counter, the seller's second ask."""
    bids = (round(0.6 * sc.list_price), round(0.65 * sc.list_price))

    def buyer(p, act):
        return f"I can offer {format_price(p)} for it.\n{format_action(act, p)}"

    def seller(p):
        return f"I can let it go for {format_price(p)}.\n{format_action(Act.COUNTER, p)}"

    turns = [("buyer", buyer(bids[0], Act.OFFER)), ("seller", seller(asks[0])),
             ("buyer", buyer(bids[1], Act.COUNTER)), ("seller", seller(asks[1]))]
    prompt = model.render(view_messages(system_prompt(sc, "buyer"), "buyer", turns), add_generation_prompt=True)
    return list(prompt.input_ids) + model.tokenizer.encode(DECISION, add_special_tokens=False)


def concession_pairs(model, config: CausalConfig | None = None) -> list[ConcessionPair]:
    """Paired buyer prompts: the seller's second ask concedes ``small_step`` vs ``big_step`` × list.

    The buyer offers 60% of the list price, the seller asks a first price drawn in [90%, 100%],
    the buyer counters at 65%, and the seller's second ask is the first minus the small or the
    big step (whole dollars, in the rule agents' wording). Pairs whose two prompts tokenize to
    different lengths are skipped, so every position lines up.

    Parameters
    ----------
    model : NegoModel
        Its chat template and tokenizer render the prompts.
    config : CausalConfig, optional
        Number of pairs, concession steps, seed.

    Returns
    -------
    list of ConcessionPair
        Up to ``config.n_pairs`` pairs.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> model = tiny_model()
    >>> pairs = concession_pairs(model, CausalConfig(n_pairs=3))
    >>> len(pairs), len(pairs[0].small) == len(pairs[0].big), model.decode(pairs[0].small).endswith("counter $")
    (3, True, True)
    """
    from negolens.agents.builtin import builtin_scenarios

    config = config or CausalConfig()
    base = [s for s in builtin_scenarios() if s.list_price >= 100]  # whole-dollar steps stay distinct
    rng = np.random.default_rng(config.seed)
    out = []
    for i in range(4 * config.n_pairs):
        sc = base[i % len(base)]
        first = round(rng.uniform(0.9, 1.0) * sc.list_price)
        small, big = (round(first - step * sc.list_price) for step in (config.small_step, config.big_step))
        a, b = _prompt(model, sc, (first, small)), _prompt(model, sc, (first, big))
        if len(a) == len(b):
            out.append(ConcessionPair(f"pair{i}-{sc.id}", sc, a, b, (float(first), float(small), float(big))))
        if len(out) == config.n_pairs:
            break
    if len(out) < 2:
        raise NegolensError("fewer than 2 concession pairs tokenize to equal lengths: change small_step / big_step")
    return out


@dataclass
class _Rows:
    """The conditions of one batched run: which suffix each row reads and what is done to it."""

    patches: list[tuple[int, str]] = field(default_factory=list)     # (layer, position set), on the small suffix
    steers: list[tuple[str, float]] = field(default_factory=list)    # (direction name, delta), on the small suffix

    @property
    def size(self) -> int:
        return 2 + len(self.patches) + len(self.steers)


@torch.inference_mode()
def _run_pair(model, pair: ConcessionPair, rows: _Rows, steer: dict | None, digits, pieces) -> np.ndarray:
    """Greedy next offers (log price / list) of every row; rows 0 and 1 are clean small and big."""
    start = pair.start
    prefix = torch.tensor([pair.small[:start]], device=model.device)
    suffix = torch.tensor([pair.small[start:], pair.big[start:]], device=model.device)
    R = rows.size
    ids = suffix[[0, 1] + [0] * (R - 2)]
    diff = (suffix[0] != suffix[1]).nonzero().flatten()
    where = {"price tokens": diff, "later tokens": torch.arange(int(diff.max()) + 1, suffix.shape[1], device=model.device)}
    state = {"step": 0}
    by_layer: dict[int, list] = {}
    for j, (layer, positions) in enumerate(rows.patches, start=2):
        by_layer.setdefault(layer, []).append(("patch", j, where[positions]))
    for j, (name, delta) in enumerate(rows.steers, start=2 + len(rows.patches)):
        by_layer.setdefault(steer["layer"], []).append(("add", j, delta * steer["vectors"][name]))

    def hook_for(actions):
        def post(module, args, output):
            h = (output[0] if isinstance(output, tuple) else output).clone()
            for kind, j, what in actions:
                if kind == "add":
                    h[j] += what.to(h.dtype)
                elif state["step"] == 0:  # the donor is row 1 of this very forward
                    h[j, what] = h[1, what]
            return (h, *output[1:]) if isinstance(output, tuple) else h
        return post

    past = model.hf(input_ids=prefix, use_cache=True).past_key_values  # the shared prefix, untouched
    past.batch_repeat_interleave(R)
    handles = [model.sites.module("resid_post", layer).register_forward_hook(hook_for(actions))
               for layer, actions in by_layer.items()]
    try:
        res = model.hf(input_ids=ids, past_key_values=past, use_cache=True, logits_to_keep=last_position(model.device))
        text, done, eos = [""] * R, [False] * R, model.tokenizer.eos_token_id
        for step in range(MAX_DIGITS):
            nxt = next_digits(res.logits[:, -1].float(), digits, pieces, step, text, done, eos, model.pad_id)
            if all(done) or step == MAX_DIGITS - 1:
                break
            state["step"] = step + 1
            res = model.hf(input_ids=nxt[:, None], past_key_values=res.past_key_values, use_cache=True)
    finally:
        for handle in handles:
            handle.remove()
    price = np.array([float(t) if t else 0.0 for t in text])
    with np.errstate(divide="ignore"):
        return np.where(price > 0, np.log(price / pair.scenario.list_price), np.nan)


def _ratio_ci(num: np.ndarray, den: np.ndarray, seed: int, n_boot: int = 2000) -> tuple[float, float, float]:
    """mean(num) / mean(den) with a percentile bootstrap CI over rows (resampled together)."""
    if len(num) < 2 or den.mean() == 0:
        return (np.nan,) * 3  # no gap to restore: the share is undefined
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = num[idx].mean(1) / den[idx].mean(1)
    boots = boots[np.isfinite(boots)]
    return float(num.mean() / den.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return np.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def belief_effects(model, pairs: list[ConcessionPair], probe=None, layer: int | None = None,
                   config: CausalConfig | None = None, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The concession effect, patching shares per layer and steering slopes, with CIs over pairs.

    Parameters
    ----------
    model : NegoModel
        The buyer model.
    pairs : list of ConcessionPair
        From :func:`concession_pairs`.
    probe : LinearProbe, optional
        A belief probe (regression) to steer along; ``None`` skips steering.
    layer : int, optional
        The layer ``probe`` reads (resid_post); required with ``probe``.
    config : CausalConfig, optional
        Layers to patch, steering steps, seed.
    progress : bool
        Show a progress bar over pairs.

    Returns
    -------
    dict of str to DataFrame
        ``pairs`` — per pair: the seller's latest asks ``ask_small``, ``ask_big`` (log price /
        list), the clean offers ``small``, ``big`` and every patched / steered offer;
        ``effect`` — one row: mean offer(big) − offer(small) with CI, ``n_pairs``,
        ``copy_effect`` (the effect if the buyer offered the seller's latest ask) and
        ``copy_rate`` (share of clean offers within 0.5% of that ask);
        ``patching`` — per (positions, layer): ``share`` restored with CI, ``delta`` (mean
        patched − small), ``gap``, ``n_pairs``;
        ``steering`` — per (direction, delta): mean offer with CI and ``alpha`` (the residual
        step in model units);
        ``slopes`` — per direction (``belief``, ``random``): mean slope of the offer on delta
        with CI. Empty tables where nothing was steered.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> model = tiny_model()
    >>> out = belief_effects(model, concession_pairs(model, CausalConfig(n_pairs=2)), progress=False)
    >>> sorted(out), sorted(out["patching"].positions.unique())
    (['effect', 'pairs', 'patching', 'slopes', 'steering'], ['later tokens', 'price tokens'])
    """
    from negolens.probes.fit import parse_layers
    from tqdm.auto import tqdm

    config = config or CausalConfig()
    if not pairs:
        raise NegolensError("no concession pairs: build them with concession_pairs(model)")
    layers = parse_layers(config.patch_layers, model.shape.n_layers)
    rows = _Rows(patches=[(l, s) for s in POSITION_SETS for l in layers])
    steer = None
    if probe is not None:
        if layer is None:
            raise NegolensError("belief_effects: pass the layer the probe reads (layer=) to steer along it")
        scaler, est = probe.pipeline_[0], probe.pipeline_[-1]
        gain = float(np.linalg.norm(np.atleast_2d(est.coef_)[0] / scaler.scale_))  # label units per residual unit
        rng = np.random.default_rng(config.seed)
        rand = rng.normal(size=model.shape.d_model)
        vectors = {"belief": probe.direction() / gain, "random": rand / np.linalg.norm(rand) / gain}
        steer = {"layer": layer, "gain": gain,
                 "vectors": {k: torch.as_tensor(v, dtype=torch.float32, device=model.device) for k, v in vectors.items()}}
        rows.steers = [(name, float(d)) for name in ("belief", "random") for d in config.steer_deltas]
    pieces = token_pieces(model.tokenizer)
    digits = digit_tokens(model.tokenizer, pieces).to(model.device)
    offers = np.stack([_run_pair(model, p, rows, steer, digits, pieces)
                       for p in tqdm(pairs, desc="belief pairs", disable=not progress)])
    names = (["small", "big"] + [f"patch L{l} {s}" for l, s in rows.patches]
             + [f"steer {n} {d:+g}" for n, d in rows.steers])
    table = pd.DataFrame(offers, columns=names)
    asks = np.log(np.array([[p.asks[1] / p.scenario.list_price, p.asks[2] / p.scenario.list_price] for p in pairs]))
    table.insert(0, "pair", [p.id for p in pairs])
    table.insert(1, "ask_small", asks[:, 0])  # the seller's latest ask, log(price / list): what a copy would offer
    table.insert(2, "ask_big", asks[:, 1])
    ok = np.isfinite(offers[:, 0]) & np.isfinite(offers[:, 1])
    gap = offers[ok, 1] - offers[ok, 0]
    lo, hi = bootstrap_ci(gap, seed=config.seed)
    copies = np.abs(offers[:, :2] - asks) < 0.005  # offered the seller's own latest ask (within 0.5%)
    effect = pd.DataFrame([{"effect": float(gap.mean()) if len(gap) else np.nan, "ci_low": lo, "ci_high": hi,
                            "n_pairs": int(ok.sum()), "copy_effect": float((asks[ok, 1] - asks[ok, 0]).mean()),
                            "copy_rate": float(copies.mean())}])
    patching = []
    for j, (l, s) in enumerate(rows.patches, start=2):
        keep = ok & np.isfinite(offers[:, j])
        delta, den = offers[keep, j] - offers[keep, 0], offers[keep, 1] - offers[keep, 0]
        share, slo, shi = _ratio_ci(delta, den, config.seed)
        patching.append({"positions": s, "layer": l, "share": share, "ci_low": slo, "ci_high": shi,
                         "delta": float(delta.mean()) if len(delta) else np.nan,
                         "gap": float(den.mean()) if len(den) else np.nan, "n_pairs": int(keep.sum())})
    steering, slopes = [], []
    if steer is not None:
        deltas = np.asarray(config.steer_deltas, dtype=float)
        for name in ("belief", "random"):
            cols = [2 + len(rows.patches) + k for k, (n, _) in enumerate(rows.steers) if n == name]
            for d, j in zip(deltas, cols):
                vals = offers[:, j][np.isfinite(offers[:, j])]
                clo, chi = bootstrap_ci(vals, seed=config.seed)
                steering.append({"direction": name, "delta": d, "alpha": abs(d) / steer["gain"],
                                 "mean": float(vals.mean()) if len(vals) else np.nan, "ci_low": clo, "ci_high": chi,
                                 "n": len(vals), "layer": layer})
            per = np.array([_slope(deltas, offers[i, cols]) for i in range(len(pairs))])
            per = per[np.isfinite(per)]
            clo, chi = bootstrap_ci(per, seed=config.seed)
            slopes.append({"direction": name, "slope": float(per.mean()) if len(per) else np.nan, "ci_low": clo,
                           "ci_high": chi, "n_pairs": len(per), "layer": layer, "label": config.steer_label})
    return {"pairs": table, "effect": effect, "patching": pd.DataFrame(patching),
            "steering": pd.DataFrame(steering, columns=["direction", "delta", "alpha", "mean", "ci_low", "ci_high", "n",
                                                        "layer"]),
            "slopes": pd.DataFrame(slopes, columns=["direction", "slope", "ci_low", "ci_high", "n_pairs", "layer",
                                                    "label"])}
