"""Checkpoints of adapters trained on adapters: each names the buyer it was trained from.

A GRPO run that starts from an SFT buyer trains a LoRA adapter on the SFT buyer merged into its
base; TRL records the merged-from base as the adapter's base, which would load the adapter on
the wrong model. :func:`point_adapter_at` rewrites it, and :func:`start_model_callback` does so
for every checkpoint TRL saves.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["point_adapter_at", "start_model_callback"]


def point_adapter_at(folder: str | Path, start: str) -> None:
    """Make a LoRA checkpoint's adapter name the model it was trained on: the starting buyer
    ``start`` (e.g. an SFT checkpoint), not the base model that starting buyer was merged from
    (what TRL writes), so :func:`negolens.load` rebuilds the trained policy. No-op for a full
    checkpoint.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2"}))
    >>> point_adapter_at(d, "smollm2-135m-instruct")
    >>> json.loads((d / "adapter_config.json").read_text())["base_model_name_or_path"]
    'smollm2-135m-instruct'
    """
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        return
    conf = json.loads(path.read_text(encoding="utf-8"))
    conf["base_model_name_or_path"] = str(Path(start).resolve()) if Path(start).exists() else start
    path.write_text(json.dumps(conf, indent=2), encoding="utf-8")


def start_model_callback(out: Path, start: str):
    """A TRL callback that points every saved checkpoint's adapter at the starting buyer."""
    from transformers import TrainerCallback

    class PointAdapters(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                point_adapter_at(out / f"checkpoint-{state.global_step}", start)

    return PointAdapters()
