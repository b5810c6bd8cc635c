"""Streaming attention scores for every layer × head, with matched controls and statistics.

:class:`AttentionRecorder` runs teacher-forced views through the TransformerLens bridge with one
hook per layer on ``hook_pattern``. Inside the hook the ``[batch, head, query, key]`` pattern is
reduced at once to a few numbers per head — the mass on each score's key set and on its
control set (see :mod:`negolens.probes.pairs`) — by a single gather over precomputed
(row, query, key) index lists, and the pattern is dropped. Nothing of size ``T × T`` outlives
its layer: extra memory is O(dialogues × scores × layers × heads).

:func:`summarize_heads` turns the per-dialogue scores into a tidy table: per (score, layer,
head) the tagged mean, the control mean, their difference (the effect), a bootstrap 95% CI over
dialogues, a two-sided sign-flip permutation p-value (tagged vs control is exchangeable within a
dialogue under the null) and a Benjamini–Hochberg q-value across the heads of each score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from negolens.probes.pairs import SCORES, build_pairs
from negolens.probes.transcripts import Transcript, render_view
from negolens.stats import bh_qvalues, bootstrap_ci_columns, sign_flip_pvalues
from negolens.tagging import tag_chat


@dataclass
class AttentionScores:
    """``tagged`` and ``control``: [dialogue, score, layer, head]; NaN where a view has no pairs."""

    tagged: np.ndarray
    control: np.ndarray
    ids: list[str] = field(default_factory=list)
    scores: tuple[str, ...] = SCORES


class AttentionRecorder:
    def __init__(self, model, window: int = 6, seed: int = 0):
        self.model, self.window, self.seed = model, window, seed

    def prepare(self, transcript: Transcript, role: str, max_turns: int | None = None, max_tokens: int | None = None):
        view = render_view(self.model, transcript, role, max_turns, max_tokens)
        pieces = self.model.tokenizer.batch_decode([[i] for i in view.chat.input_ids])
        return view, build_pairs(view, pieces, tag_chat(view.chat), self.window, self.seed)

    @torch.inference_mode()
    def record(self, transcripts: list[Transcript], role: str = "buyer", batch_size: int = 4,
               max_turns: int | None = None, progress: bool = True, max_tokens: int | None = None) -> AttentionScores:
        s, L, H = len(SCORES), self.model.shape.n_layers, self.model.shape.n_heads
        tagged = np.full((len(transcripts), s, L, H), np.nan, dtype=np.float32)
        control = np.full_like(tagged, np.nan)
        bar = tqdm(total=len(transcripts), desc="attention", disable=not progress)
        for start in range(0, len(transcripts), batch_size):
            chunk = transcripts[start : start + batch_size]
            prepared = [self.prepare(t, role, max_turns, max_tokens) for t in chunk]
            batch = self.model.batch([v.chat for v, _ in prepared])
            index, buckets = self._index(prepared, batch)
            sums = torch.zeros((L, len(chunk) * s * 2, H))

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
            out = sums.numpy().reshape(L, len(chunk), s, 2, H).transpose(1, 2, 3, 0, 4)  # [row, score, tag/ctrl, L, H]
            for r in range(len(chunk)):
                for j in range(s):
                    if buckets[r][j]:
                        tagged[start + r, j], control[start + r, j] = out[r, j, 0], out[r, j, 1]
            bar.update(len(chunk))
        bar.close()
        return AttentionScores(tagged, control, [t.id for t in transcripts])

    def _index(self, prepared, batch):
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
        t = lambda x, dt=torch.long: torch.tensor(x, dtype=dt)  # noqa: E731
        return (t(rows), t(q), t(k), t(w, torch.float32), t(b)), present


def summarize_heads(scores: AttentionScores, n_boot: int = 2000, n_perm: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Tidy per-(score, layer, head) table with effect, bootstrap CI, permutation p and BH q."""
    rows = []
    _, _, L, H = scores.tagged.shape
    for j, name in enumerate(scores.scores):
        tag, ctrl = scores.tagged[:, j], scores.control[:, j]
        keep = ~np.isnan(tag[:, 0, 0])
        if keep.sum() < 2:
            continue
        t, c = tag[keep].reshape(keep.sum(), -1), ctrl[keep].reshape(keep.sum(), -1)
        d = t - c
        lo, hi = bootstrap_ci_columns(d, n_boot=n_boot, seed=seed)
        p = sign_flip_pvalues(d, n_perm=n_perm, seed=seed)
        q = bh_qvalues(p)
        for idx in range(L * H):
            rows.append({
                "score": name, "layer": idx // H, "head": idx % H, "tagged": float(t[:, idx].mean()),
                "control": float(c[:, idx].mean()), "effect": float(d[:, idx].mean()),
                "ci_low": float(lo[idx]), "ci_high": float(hi[idx]), "p": float(p[idx]), "q": float(q[idx]),
                "n_dialogues": int(keep.sum()),
            })
    return pd.DataFrame(rows)


def claim(table: pd.DataFrame, score: str, layer: int, head: int) -> dict:
    """A testable statement about one head: its effect, CI, p, q and rank among all heads."""
    sub = table[table.score == score].sort_values("effect", ascending=False).reset_index(drop=True)
    hit = sub[(sub["layer"] == layer) & (sub["head"] == head)]
    if hit.empty:
        raise ValueError(f"no head L{layer}H{head} for score {score!r} (model has {sub['layer'].max() + 1} layers, "
                         f"{sub['head'].max() + 1} heads)")
    row = hit.iloc[0].to_dict()
    row["rank"] = int(hit.index[0]) + 1
    row["of"] = len(sub)
    return row
