"""Offline circuitsvis views: one dialogue, one head, the bundled JavaScript inlined (no CDN)."""

from __future__ import annotations

from pathlib import Path

import torch


@torch.inference_mode()
def attention_html(model, recorder, transcript, role: str, layer: int, head: int, path: str | Path,
                   max_tokens: int | None = None) -> Path:
    """Write a standalone HTML page with the head's attention pattern over the rendered view."""
    import circuitsvis as cv

    view, _ = recorder.prepare(transcript, role, max_tokens=max_tokens)
    batch = model.batch([view.chat])
    _, cache = model.run_with_cache(batch, names_filter=lambda n: n == f"blocks.{layer}.attn.hook_pattern")
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, head].float()
    tokens = model.tokenizer.batch_decode([[i] for i in view.chat.input_ids])
    html = cv.attention.attention_pattern(tokens=tokens, attention=pattern).local_src
    title = f"{model.name} L{layer}H{head} — {transcript.id} ({role}'s view)"
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body><h3>{title}</h3>{html}</body></html>"
    path = Path(path)
    path.write_text(page)
    return path
