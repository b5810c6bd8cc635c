"""Residual-stream activations at chosen positions, every layer, cached to disk.

:func:`collect` teacher-forces transcripts (one speaker's view) through the bridge with a hook
on every ``blocks.{l}.hook_resid_post`` that keeps only the chosen positions. The result is
``acts [position, layer, d_model]`` plus a metadata table (dialogue, turn, position rule,
token index, speaker) that :mod:`negolens.probes.labels` turns into labels. Saved as
safetensors + CSV so a sweep over labels never reruns the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from negolens.probes.transcripts import Transcript, render_view

RULES = ("utterance_end", "before_reply")


@dataclass
class ActivationSet:
    acts: Float[np.ndarray, "position layer d_model"]
    meta: pd.DataFrame  # one row per position
    info: dict  # model, role, rules, dtype, TL mode

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"acts": np.ascontiguousarray(self.acts)}, str(folder / "acts.safetensors"))
        self.meta.to_csv(folder / "meta.csv", index=False)
        (folder / "info.json").write_text(json.dumps(self.info, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "ActivationSet":
        folder = Path(folder)
        return cls(load_file(str(folder / "acts.safetensors"))["acts"], pd.read_csv(folder / "meta.csv"),
                   json.loads((folder / "info.json").read_text()))


@torch.inference_mode()
def collect(model, transcripts: list[Transcript], role: str = "buyer", rules=RULES, batch_size: int = 4,
            max_tokens: int | None = 512, dtype=np.float16, progress: bool = True) -> ActivationSet:
    """Activations after every block at each turn's ``rules`` positions, for ``role``'s view."""
    L = model.shape.n_layers
    chunks, rows = [], []
    bar = tqdm(total=len(transcripts), desc="activations", disable=not progress)
    for start in range(0, len(transcripts), batch_size):
        views = [render_view(model, t, role, max_tokens=max_tokens) for t in transcripts[start : start + batch_size]]
        batch = model.batch([v.chat for v in views])
        where, meta = [], []
        for r, v in enumerate(views):
            for turn, utt in enumerate(v.transcript.turns[: len(v.turn_of_chat)]):
                for rule in rules:
                    pos = getattr(v, rule)[turn]
                    where.append((r, batch.pad[r] + pos))
                    meta.append({"dialogue": v.transcript.id, "turn": turn, "rule": rule, "token": pos,
                                 "token_id": v.chat.input_ids[pos], "speaker": utt.role})
        rix = torch.tensor([w[0] for w in where])
        cix = torch.tensor([w[1] for w in where])
        out = torch.empty((len(where), L, model.shape.d_model), dtype=torch.float32)

        def hook(resid, hook):
            out[:, int(hook.name.split(".")[1])] = resid[rix, cix].float()
            return resid

        model.bridge.run_with_hooks(batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                                    return_type=None, fwd_hooks=[(lambda n: n.endswith("hook_resid_post"), hook)])
        chunks.append(out.numpy().astype(dtype))
        rows += meta
        bar.update(len(views))
    bar.close()
    info = {"model": model.name, "role": role, "rules": list(rules), "hook": "blocks.{l}.hook_resid_post",
            "dtype": np.dtype(dtype).name, "tl_mode": "TransformerBridge, no weight processing", "max_tokens": max_tokens}
    return ActivationSet(np.concatenate(chunks), pd.DataFrame(rows), info)
