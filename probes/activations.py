"""Residual-stream activations at chosen positions, every layer, cached to disk.

:func:`collect` teacher-forces transcripts (one speaker's view) through the bridge with a hook
on every ``blocks.{l}.hook_resid_post`` that keeps only the chosen positions. The result is
``acts [position, layer, d_model]`` plus a metadata table (dialogue, turn, position rule,
token index, speaker) that :mod:`negolens.probes.labels` turns into labels. Saved as
safetensors + CSV so a sweep over labels never reruns the model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from negolens.agents.transcripts import Transcript
from negolens.autobatch import map_chunks
from negolens.errors import NegolensError
from negolens.sites import HOOK_NAMES
from negolens.probes.store import DiskActivations, LayerStore
from negolens.probes.views import check_role, render_view

__all__ = ["RULES", "ActivationSet", "collect", "cached_collect", "fingerprint"]

RULES = ("utterance_end", "before_reply")


@dataclass
class ActivationSet:
    """Residual-stream activations at chosen positions, with what each position is.

    Attributes
    ----------
    acts : ndarray or DiskActivations of shape (n_positions, n_layers, d_model)
        ``blocks.{l}.hook_resid_post`` at each position, every layer (on disk, read a layer at
        a time, when collected into a cache folder).
    meta : DataFrame
        One row per position: ``dialogue``, ``turn``, ``rule``, ``token``, ``token_id``, ``speaker``.
    info : dict
        How they were recorded: model, role, rules, hook, dtype, TransformerLens mode, max_tokens
        (and, when cached, what the cache is keyed on).
    """

    acts: Float[np.ndarray, "position layer d_model"]
    meta: pd.DataFrame
    info: dict

    def save(self, folder: str | Path) -> Path:
        """Write the activations, ``meta.csv`` and ``info.json`` (last: the set is complete) into ``folder``.

        Activations streamed to ``folder`` already (:func:`collect` with ``out=folder``) stay
        where they are; in-memory ones go to ``acts.safetensors``.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        on_disk = isinstance(self.acts, DiskActivations) and self.acts.folder.resolve() == folder.resolve()
        if not on_disk:
            save_file({"acts": np.ascontiguousarray(np.asarray(self.acts))}, str(folder / "acts.safetensors"))
        self.meta.to_csv(folder / "meta.csv", index=False)
        (folder / "info.json").write_text(json.dumps(self.info, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "ActivationSet":
        """Read a set that :meth:`save` wrote."""
        folder = Path(folder)
        acts = DiskActivations(folder) if DiskActivations.exists(folder) else \
            load_file(str(folder / "acts.safetensors"))["acts"]
        return cls(acts, pd.read_csv(folder / "meta.csv"), json.loads((folder / "info.json").read_text(encoding="utf-8")))


@torch.inference_mode()
def collect(model, transcripts: Sequence[Transcript], role: str = "buyer", rules=RULES, batch_size: int | str = 4,
            max_tokens: int | None = 512, dtype=np.float16, progress: bool = True,
            out: str | Path | None = None) -> ActivationSet:
    """Activations after every block at each turn's ``rules`` positions, for ``role``'s view.

    Parameters
    ----------
    model : NegoModel
        The model, run through its TransformerLens bridge.
    transcripts : sequence of Transcript
        Dialogues, teacher-forced.
    role : {"buyer", "seller"}
        Whose view to render (:func:`~negolens.probes.views.render_view`).
    rules : tuple of str
        Position rules per turn, from :data:`RULES`.
    batch_size : int or "auto"
        Dialogues per forward pass (halved and retried when the device runs out of memory;
        :mod:`negolens.autobatch`).
    max_tokens : int, optional
        Keep whole turns up to this many tokens.
    dtype : numpy dtype
        Storage dtype of ``acts``.
    progress : bool
        Show a progress bar.
    out : str or Path, optional
        Stream the activations to this folder as each batch finishes, one file per layer
        (:class:`~negolens.probes.store.LayerStore`); ``acts`` is then a
        :class:`~negolens.probes.store.DiskActivations` that reads one layer at a time, so
        the whole set never has to fit in memory.

    Returns
    -------
    ActivationSet

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> model = tiny_model()
    >>> collect(model, example_transcripts(1), progress=False).acts.shape
    (6, 2, 64)
    """
    check_role(role)
    if not transcripts:
        raise NegolensError("no transcripts to collect activations from: pass at least one")
    L = model.shape.n_layers
    bar = tqdm(total=len(transcripts), desc="activations", disable=not progress)
    store = LayerStore(out, L, model.shape.d_model, dtype) if out is not None else None

    def run(part: list) -> tuple[np.ndarray | None, list[dict]] | None:  # one forward; retried smaller on OOM
        views = [render_view(model, t, role, max_tokens=max_tokens) for t in part]
        batch = model.batch([v.chat for v in views])
        where, meta = [], []
        for r, v in enumerate(views):
            for turn, utt in enumerate(v.transcript.turns[: len(v.turn_of_chat)]):
                for rule in rules:
                    pos = getattr(v, rule)[turn]
                    where.append((r, batch.pad[r] + pos))
                    meta.append({"dialogue": v.transcript.id, "turn": turn, "rule": rule, "token": pos,
                                 "token_id": v.chat.input_ids[pos], "speaker": utt.role})
        if not where:  # dialogues without turns: no positions
            bar.update(len(views))
            return None
        rix = torch.tensor([w[0] for w in where], device=batch.input_ids.device)
        cix = torch.tensor([w[1] for w in where], device=batch.input_ids.device)
        out = torch.empty((len(where), L, model.shape.d_model), dtype=torch.float32)  # on the CPU, like the result

        def hook(resid, hook):
            out[:, int(hook.name.split(".")[1])] = resid[rix.to(resid.device), cix.to(resid.device)].float().cpu()
            return resid

        model.bridge.run_with_hooks(batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                                    return_type=None, fwd_hooks=[(lambda n: n.endswith("hook_resid_post"), hook)])
        bar.update(len(views))
        if store is not None:  # written only once the forward succeeded, so a retried chunk is not doubled
            store.append(out.numpy())
            return None, meta
        return out.numpy().astype(dtype), meta

    parts = [p for p in map_chunks(run, list(transcripts), batch_size, model.device, cpu_default=4, log=tqdm.write)
             if p is not None]
    chunks, rows = [a for a, _ in parts if a is not None], [m for _, ms in parts for m in ms]
    bar.close()
    info = {"model": model.name, "role": role, "rules": list(rules), "hook": HOOK_NAMES["resid_post"],
            "dtype": np.dtype(dtype).name, "tl_mode": "TransformerBridge, no weight processing", "max_tokens": max_tokens}
    if store is not None:
        acts = store.close()
    else:
        acts = np.concatenate(chunks) if chunks else np.empty((0, L, model.shape.d_model), dtype=dtype)
    meta = pd.DataFrame(rows, columns=["dialogue", "turn", "rule", "token", "token_id", "speaker"])
    return ActivationSet(acts, meta, info)


def fingerprint(transcripts: Sequence[Transcript]) -> str:
    """A short hash of the transcripts' ids, roles and texts (what a cache of them is keyed on)."""
    h = hashlib.sha256()
    for t in transcripts:
        h.update(json.dumps([t.id, [(u.role, u.text) for u in t.turns]]).encode())
    return h.hexdigest()[:16]


def cached_collect(model, transcripts: Sequence[Transcript], role: str, folder: str | Path | None, *,
                   model_name: str | None = None, batch_size: int | str = 4, max_tokens: int | None = 512,
                   progress: bool = True) -> tuple[ActivationSet, bool]:
    """:func:`collect`, reusing ``folder``'s saved set when it was made from the same inputs.

    The saved set is reused only when its model, transcripts (:func:`fingerprint`), role,
    number of transcripts and ``max_tokens`` all match; otherwise activations are collected
    and saved there. ``model`` may be a model name or directory, loaded only when needed.

    Returns
    -------
    (ActivationSet, bool)
        The activations, and whether they came from the cache.
    """
    name = model_name or (str(model) if isinstance(model, (str, Path)) else model.name)
    key = {"model": name, "transcripts": fingerprint(transcripts), "role": role, "n": len(transcripts),
           "max_tokens": max_tokens}
    if folder is not None and (Path(folder) / "info.json").is_file():
        saved = ActivationSet.load(folder)
        if all(saved.info.get(k) == v for k, v in key.items()):
            return saved, True
    if isinstance(model, (str, Path)):
        model = load_model(model)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "info.json").unlink(missing_ok=True)  # a set is complete once info.json is back
        (Path(folder) / "acts.safetensors").unlink(missing_ok=True)
    acts = collect(model, transcripts, role, batch_size=batch_size, max_tokens=max_tokens, progress=progress,
                   out=folder)  # streamed to disk layer by layer when cached
    acts.info.update(key)
    if folder is not None:
        acts.save(folder)
    return acts, False


def load_model(ref: str | Path):
    """Load a zoo name (fetched on first use) or a model directory as a ``NegoModel``."""
    from negolens.hooked import load

    return load(ref)
