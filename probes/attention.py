"""Streaming attention scores for every layer × head, with matched controls and statistics.

:class:`AttentionRecorder` runs teacher-forced views through the TransformerLens bridge with one
hook per layer on ``hook_pattern``. Inside the hook the ``[batch, head, query, key]`` pattern is
reduced at once to a few numbers per head — the mass on each score's key set and on its
control set (see :mod:`negolens.probes.pairs`) — by a single gather over precomputed
(row, query, key) index lists, and the pattern is dropped. Nothing of size ``T × T`` outlives
its layer: extra memory is O(dialogues × scores × layers × heads).

:func:`record_attention` is the entry point: it records and summarises in one call.
:func:`summarize_heads` turns the per-dialogue scores into a tidy table: per (score, layer,
head) the tagged mean, the control mean, their difference (the effect), a bootstrap 95% CI over
dialogues, a two-sided sign-flip permutation p-value (tagged vs control is exchangeable within a
dialogue under the null) and a Benjamini–Hochberg q-value across the heads of each score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from negolens.agents.transcripts import Transcript
from negolens.autobatch import map_chunks
from negolens.config import option
from negolens.distributed import active_world, gather, is_main, shard
from negolens.errors import NegolensError
from negolens.probes.pairs import SCORES, build_pairs
from negolens.probes.views import check_role, render_view
from negolens.stats import bh_qvalues, bootstrap_ci_columns, sign_flip_pvalues
from negolens.tagging import tag_chat

__all__ = ["AttentionConfig", "AttentionScores", "AttentionRecorder", "HEAD_COLUMNS", "record_attention",
           "summarize_heads", "claim"]

#: Columns of the per-(score, layer, head) table of :func:`summarize_heads` / :func:`record_attention`.
HEAD_COLUMNS = ("score", "layer", "head", "tagged", "control", "effect", "ci_low", "ci_high", "p", "q", "n_dialogues")


@dataclass
class AttentionConfig:
    """Settings of :func:`record_attention`.

    Examples
    --------
    >>> AttentionConfig.quick().n_perm < AttentionConfig().n_perm
    True
    """

    max_tokens: int = option(512, "keep whole turns up to this many tokens")
    batch_size: int | str = option(4, "dialogues per forward pass, or auto (the most that fit; halved on out-of-memory)")
    window: int = option(6, "content tokens after a verb that count as its arguments (verb_args)")
    seed: int = option(0, "seed of control-token tie-breaks, bootstrap and permutations")
    n_boot: int = option(2000, "bootstrap resamples of dialogues for each head's 95% CI")
    n_perm: int = option(5000, "sign-flip permutations for each head's p-value")

    @classmethod
    def quick(cls, **overrides) -> "AttentionConfig":
        """A fast preset for smoke runs: shorter views, fewer resamples."""
        return cls(**{"max_tokens": 256, "n_boot": 200, "n_perm": 500, **overrides})

    def __post_init__(self) -> None:
        from negolens.autobatch import check_batch_size
        from negolens.errors import at_least

        for name in ("max_tokens", "window", "n_boot", "n_perm"):
            at_least(getattr(self, name), 1, name)
        self.batch_size = check_batch_size(self.batch_size)


@dataclass
class AttentionScores:
    """Per-dialogue attention masses of every score, layer and head.

    Attributes
    ----------
    tagged, control : ndarray of shape (n_dialogues, n_scores, n_layers, n_heads)
        Mass on each score's key set and on its matched control set; NaN where a view has
        no pairs for the score.
    ids : list of str
        Transcript ids, one per dialogue row.
    scores : tuple of str
        Score names, in the order of axis 1 (:data:`~negolens.probes.pairs.SCORES`).
    """

    tagged: np.ndarray
    control: np.ndarray
    ids: list[str] = field(default_factory=list)
    scores: tuple[str, ...] = SCORES


class AttentionRecorder:
    """Streams per-head attention masses on tagged tokens and their controls.

    Parameters
    ----------
    model : NegoModel
        Run through its TransformerLens bridge (eager attention).
    window : int
        Content tokens after a verb that count as its arguments (``verb_args``).
    seed : int
        Seed of the control tokens' random tie-breaks.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> AttentionRecorder(model).record(example_transcripts(1), progress=False).tagged.shape
    (1, 5, 2, 4)
    """

    def __init__(self, model, window: int = 6, seed: int = 0):
        self.model, self.window, self.seed = model, window, seed

    def prepare(self, transcript: Transcript, role: str, max_turns: int | None = None, max_tokens: int | None = None):
        """Render ``transcript`` in ``role``'s view and build its (query, key, control) pairs.

        Returns
        -------
        (View, dict of str to PairSet)
        """
        view = render_view(self.model, transcript, role, max_turns, max_tokens)
        pieces = self.model.tokenizer.batch_decode([[i] for i in view.chat.input_ids])
        return view, build_pairs(view, pieces, tag_chat(view.chat), self.window, self.seed)

    @torch.inference_mode()
    def record(self, transcripts: Sequence[Transcript], role: str = "buyer", batch_size: int | str = 4,
               max_turns: int | None = None, progress: bool = True, max_tokens: int | None = None) -> AttentionScores:
        """Attention masses of every score, layer and head, per dialogue, in ``role``'s view.

        One forward pass per batch; nothing of size tokens × tokens outlives its layer.
        """
        check_role(role)
        s, L, H = len(SCORES), self.model.shape.n_layers, self.model.shape.n_heads
        tagged = np.full((len(transcripts), s, L, H), np.nan, dtype=np.float32)
        control = np.full_like(tagged, np.nan)
        bar = tqdm(total=len(transcripts), desc="attention", disable=not progress or not is_main())
        def run(part: list) -> None:  # one forward over (index, transcript) rows; retried smaller on out-of-memory
            chunk = [t for _, t in part]
            prepared = [self.prepare(t, role, max_turns, max_tokens) for t in chunk]
            batch = self.model.batch([v.chat for v, _ in prepared])
            index, buckets = self._index(prepared, batch, batch.input_ids.device)
            sums = torch.zeros((L, len(chunk) * s * 2, H), device=batch.input_ids.device)

            def hook(pattern, hook):
                layer = int(hook.name.split(".")[1])
                rows, q, k, w, b = index
                vals = pattern[rows, :, q, k].float() * w[:, None]  # [pairs, head]
                sums[layer].index_add_(0, b, vals)
                return pattern

            self.model.bridge.run_with_hooks(
                batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                return_type=None, fwd_hooks=[(lambda name: name.endswith("attn.hook_pattern"), hook)],
            )
            out = sums.cpu().numpy().reshape(L, len(chunk), s, 2, H).transpose(1, 2, 3, 0, 4)  # [row, score, tag/ctrl, L, H]
            for r, (i, _) in enumerate(part):
                for j in range(s):
                    if buckets[r][j]:
                        tagged[i, j], control[i, j] = out[r, j, 0], out[r, j, 1]
            bar.update(len(chunk))

        mine = shard(list(transcripts))  # this process's dialogues when launched as several
        map_chunks(run, mine, batch_size, self.model.device, cpu_default=4, log=tqdm.write)
        if active_world().size > 1:
            for i, (t, c) in enumerate(gather([(i, (tagged[i], control[i])) for i, _ in mine], len(transcripts))):
                tagged[i], control[i] = t, c
        bar.close()
        return AttentionScores(tagged, control, [t.id for t in transcripts])

    def _index(self, prepared, batch, device=None):
        rows, q, k, w, b, present = [], [], [], [], [], []
        for r, (_, pairs) in enumerate(prepared):
            pad = batch.pad[r]
            present.append([])
            for j, name in enumerate(SCORES):
                ps = pairs[name]
                present[r].append(bool(ps.q))
                for keys, which in ((ps.k, 0), (ps.ctrl_k, 1)):
                    rows += [r] * len(ps.q)
                    q += [pad + x for x in ps.q]
                    k += [pad + x for x in keys]
                    w += ps.w
                    b += [(r * len(SCORES) + j) * 2 + which] * len(ps.q)
        t = lambda x, dt=torch.long: torch.tensor(x, dtype=dt, device=device)  # noqa: E731
        return (t(rows), t(q), t(k), t(w, torch.float32), t(b)), present


def summarize_heads(scores: AttentionScores, n_boot: int = 2000, n_perm: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Tidy per-(score, layer, head) table with effect, bootstrap CI, permutation p and BH q.

    Scores present in fewer than two dialogues are left out (:class:`NegolensError` when that
    leaves none: no statistics over nothing); a head whose effect is undefined
    (NaN in some dialogue) has NaN CI, p and q, and is not counted in the BH correction.

    Returns
    -------
    DataFrame
        Columns :data:`HEAD_COLUMNS`: ``tagged`` and ``control`` mean masses, ``effect`` =
        their mean difference, its bootstrap 95% CI over dialogues (``ci_low``, ``ci_high``),
        the sign-flip permutation ``p``, the Benjamini–Hochberg ``q`` across the heads of the
        score, and ``n_dialogues``.
    """
    rows = []
    _, _, L, H = scores.tagged.shape
    for j, name in enumerate(scores.scores):
        tag, ctrl = scores.tagged[:, j], scores.control[:, j]
        keep = ~np.isnan(tag[:, 0, 0])
        if keep.sum() < 2:
            continue
        t, c = tag[keep].reshape(keep.sum(), -1), ctrl[keep].reshape(keep.sum(), -1)
        d = t - c
        ok = np.isfinite(d).all(axis=0)  # a head with an undefined effect gets no CI, p or q
        lo, hi, p, q = (np.full(L * H, np.nan) for _ in range(4))
        if ok.any():
            lo[ok], hi[ok] = bootstrap_ci_columns(d[:, ok], n_boot=n_boot, seed=seed)
            p[ok] = sign_flip_pvalues(d[:, ok], n_perm=n_perm, seed=seed)
            q[ok] = bh_qvalues(p[ok])
        for idx in range(L * H):
            rows.append({
                "score": name, "layer": idx // H, "head": idx % H, "tagged": float(t[:, idx].mean()),
                "control": float(c[:, idx].mean()), "effect": float(d[:, idx].mean()),
                "ci_low": float(lo[idx]), "ci_high": float(hi[idx]), "p": float(p[idx]), "q": float(q[idx]),
                "n_dialogues": int(keep.sum()),
            })
    if not rows:
        raise NegolensError(f"no attention statistics: every score needs at least 2 usable dialogues (ones with "
                            f"offers and the tagged words), and these {len(scores.tagged)} transcript(s) have fewer; "
                            "pass more transcripts")
    return pd.DataFrame(rows, columns=list(HEAD_COLUMNS))


def claim(table: pd.DataFrame, score: str, layer: int, head: int) -> dict:
    """A testable statement about one head: its effect, CI, p, q and rank among all heads.

    Returns
    -------
    dict
        The head's row of ``table`` plus ``rank`` (1 = largest effect of the score) and ``of``
        (heads ranked). Raises ``ValueError`` if the table has no such head.
    """
    sub = table[table.score == score].sort_values("effect", ascending=False).reset_index(drop=True)
    hit = sub[(sub["layer"] == layer) & (sub["head"] == head)]
    if hit.empty:
        raise ValueError(f"no head L{layer}H{head} for score {score!r} (model has {sub['layer'].max() + 1} layers, "
                         f"{sub['head'].max() + 1} heads)")
    row = hit.iloc[0].to_dict()
    row["rank"] = int(hit.index[0]) + 1
    row["of"] = len(sub)
    return row


def record_attention(model, transcripts: Sequence[Transcript], view: str = "buyer", config: AttentionConfig | None = None,
                     *, progress: bool = True) -> pd.DataFrame:
    """Per-head attention on verbs and prices vs matched controls, over ``transcripts``.

    Records every head's attention mass on each score's key set and on its matched control
    set (:mod:`negolens.probes.pairs`), per dialogue, and summarises them per head.

    Parameters
    ----------
    model : NegoModel
        The model whose heads to record.
    transcripts : sequence of Transcript
        Dialogues, teacher-forced.
    view : {"buyer", "seller"}
        Whose view to render.
    config : AttentionConfig, optional
        Settings; default ``AttentionConfig()``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    DataFrame
        One row per (score, layer, head) with columns :data:`HEAD_COLUMNS` (see
        :func:`summarize_heads`); ``attrs`` holds the model, view and number of transcripts.

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> heads = record_attention(model, example_transcripts(4), config=AttentionConfig.quick(), progress=False)
    >>> list(heads.columns[:4])
    ['score', 'layer', 'head', 'tagged']
    """
    config = config or AttentionConfig()
    check_role(view)
    if not transcripts:
        raise NegolensError("no transcripts to record attention on: pass at least one")
    recorder = AttentionRecorder(model, window=config.window, seed=config.seed)
    scores = recorder.record(list(transcripts), view, batch_size=config.batch_size, progress=progress,
                             max_tokens=config.max_tokens)
    table = summarize_heads(scores, n_boot=config.n_boot, n_perm=config.n_perm, seed=config.seed)
    table.attrs.update(model=getattr(model, "name", str(model)), view=view, n_transcripts=len(transcripts))
    return table
