"""Offline circuitsvis views: one dialogue, one head, the bundled JavaScript inlined (no CDN)."""

from __future__ import annotations

from pathlib import Path

import torch

from negolens.agents.transcripts import Transcript
from negolens.errors import NegolensError
from negolens.probes.views import render_view

__all__ = ["attention_html"]


@torch.inference_mode()
def attention_html(model, transcript: Transcript, role: str, layer: int, head: int, path: str | Path,
                   max_tokens: int | None = None) -> Path:
    """Write a standalone HTML page with one head's attention pattern over a rendered view.

    Parameters
    ----------
    model : NegoModel
        The model.
    transcript : Transcript
        The dialogue to show.
    role : {"buyer", "seller"}
        Whose view to render.
    layer, head : int
        The head.
    path : str or Path
        Where to write the page (circuitsvis's JavaScript is inlined: it opens offline).
    max_tokens : int, optional
        Keep whole turns up to this many tokens.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from negolens.testing import tiny_model
    >>> from negolens.agents import example_transcripts
    >>> tr = example_transcripts(1)[0]
    >>> page = attention_html(tiny_model(), tr, "buyer", 1, 0, Path(tempfile.mkdtemp()) / "L1H0.html")
    >>> "CircuitsVis" in page.read_text()
    True
    """
    import circuitsvis as cv

    n_layers, n_heads = model.shape.n_layers, model.shape.n_heads
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise NegolensError(f"no head L{layer}H{head}: {model.name} has layers 0..{n_layers - 1} "
                            f"and heads 0..{n_heads - 1}")
    view = render_view(model, transcript, role, max_tokens=max_tokens)
    batch = model.batch([view.chat])
    name = model.sites.hook_name("attn_pattern", layer)
    _, cache = model.run_with_cache(batch, names_filter=lambda n: n == name)
    pattern = cache[name][0, head].float().cpu()
    tokens = model.tokenizer.batch_decode([[i] for i in view.chat.input_ids])
    html = cv.attention.attention_pattern(tokens=tokens, attention=pattern).local_src
    title = f"{model.name} L{layer}H{head} — {transcript.id} ({role}'s view)"
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body><h3>{title}</h3>{html}</body></html>"
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
