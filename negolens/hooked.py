"""The hooked model: one object with the HF model, its tokenizer and a TransformerLens bridge.

``negolens.load("smollm2-135m-instruct")`` returns a :class:`NegoModel`. The HF model is the
source of truth (generation, training); the TransformerLens 4.3 ``TransformerBridge`` wraps the
*same* weights for hooks (``run_with_cache``, ``run_with_hooks``, ``hook_z`` …) and is booted on
first use. Logits through either path agree to float precision (tested on real and tiny models).

TransformerLens 4.3 pitfalls handled here, so callers need not know them:

* ``boot_transformers`` switches the HF model's attention to eager *in place* — we load in eager
  from the start, so HF and bridge numerics never diverge mid-session;
* ``dtype=`` is ignored when ``hf_model`` is passed — we cast the HF model first;
* the bridge reloads the tokenizer from ``name_or_path`` unless given one, and normalises the
  one it gets in place — we hand it a copy of ours (so adapter directories work too);
* ``to_tokens`` adds a second BOS to chat-templated text — we always pass ids;
* ``hook_k``/``hook_v`` are per KV group under GQA (``n_kv_heads`` columns), ``hook_z`` and
  ``hook_pattern`` per query head;
* ``hook_result`` only fires after ``bridge.set_use_attn_result(True)``;
* a PEFT model must be merged or passed as ``peft_model.base_model.model`` (see ``loading``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
from jaxtyping import Float
from torch import Tensor

from negolens.batching import Batch, left_pad
from negolens.chat import RenderedChat, Turn, render_chat
from negolens.loading import as_dtype, load_hf, resolve_device, unwrap_peft
from negolens.sites import Sites


@dataclass(frozen=True)
class ModelShape:
    """The numbers an interpretability user asks for first.

    >>> import tempfile, negolens
    >>> from negolens.testing import tiny_model_dir
    >>> negolens.load(tiny_model_dir(tempfile.mkdtemp())).shape.n_heads
    4
    """

    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_vocab: int

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        """Read the shape from a transformers config."""
        n_heads = config.num_attention_heads
        return cls(
            n_layers=config.num_hidden_layers,
            n_heads=n_heads,
            n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
            d_model=config.hidden_size,
            d_head=getattr(config, "head_dim", None) or config.hidden_size // n_heads,
            d_vocab=config.vocab_size,
        )


class NegoModel:
    """HF model + tokenizer + lazily booted TransformerLens bridge over the same weights.

    Parameters
    ----------
    hf_model
        A transformers ``*ForCausalLM`` model (a ``PeftModel`` is unwrapped).
    tokenizer
        Its tokenizer (with a chat template).
    path
        Where it was loaded from (the bridge reads the config there).
    name
        Display name (defaults to ``path``).

    Examples
    --------
    >>> from negolens.testing import tiny_model
    >>> model = tiny_model()
    >>> model.shape.n_layers, model.sites.hook_name("resid_post", 0)
    (2, 'blocks.0.hook_resid_post')
    """

    def __init__(self, hf_model, tokenizer, path: str | Path, name: str | None = None):
        self.hf = unwrap_peft(hf_model)
        self.tokenizer = tokenizer
        self.path = path
        self.name = name or str(path)
        self.shape = ModelShape.from_config(self.hf.config)
        self._bridge = None
        self._sites = None

    @classmethod
    def load(
        cls,
        ref: str | Path,
        *,
        dtype: str | torch.dtype = "float32",
        fetch: bool | None = None,
        attn_implementation: str = "eager",
        device: str | torch.device = "auto",
    ) -> "NegoModel":
        """Load a zoo name, a local HF/PEFT directory or a hub id (see :mod:`negolens.loading`).

        Parameters
        ----------
        ref
            A zoo name (``negolens models list``), a model or adapter directory, or a hub id.
        dtype
            ``"float32"`` (default, on every device: interpretability numbers — logit
            differences, patching effects, HF-vs-bridge checks — are compared at float32
            precision) | ``"bfloat16"`` | ``"float16"`` | ``"auto"`` (bfloat16 on CUDA, float32
            elsewhere) or a ``torch.dtype``.
        fetch
            Download a zoo model that is not cached yet. ``None`` (default): yes — a zoo name is
            fetched on first use; ``False``: raise :class:`~negolens.errors.ModelNotFetchedError`
            instead.
        attn_implementation
            ``"eager"`` (default; attention patterns need it) or ``"sdpa"`` (faster for
            generation-only work; booting the bridge switches the model to eager in place).
        device
            ``"auto"`` (default: ``$NEGOLENS_DEVICE`` if set, else CUDA when available, else the
            CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``. Every tensor negolens
            creates for this model goes on its device; results come back on the CPU.

        Returns
        -------
        NegoModel
        """
        fetch_missing = True if fetch is None else fetch
        model, tokenizer, path = load_hf(ref, dtype=dtype, fetch_missing=fetch_missing,
                                         attn_implementation=attn_implementation, device=device)
        return cls(model, tokenizer, path, name=str(ref))

    # -- properties ---------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype."""
        return next(self.hf.parameters()).dtype

    @property
    def device(self) -> torch.device:
        """The parameters' device."""
        return next(self.hf.parameters()).device

    @property
    def pad_id(self) -> int:
        """The padding token id."""
        return self.tokenizer.pad_token_id

    @property
    def sites(self) -> Sites:
        """Where the layers, ``z``, residuals, final norm and unembedding live (:mod:`negolens.sites`)."""
        if self._sites is None or self._sites.hf is not self.hf:
            self._sites = Sites(self.hf)
        return self._sites

    @property
    def bridge(self):
        """The TransformerLens ``TransformerBridge`` over ``self.hf`` (booted on first access)."""
        if self._bridge is None:
            from transformer_lens.model_bridge import TransformerBridge

            self._bridge = TransformerBridge.boot_transformers(
                str(self.path),
                hf_model=self.hf,
                # The bridge normalises its tokenizer in place: give it its own copy.
                tokenizer=copy.deepcopy(self.tokenizer),
                device=str(self.device),
                dtype=self.dtype,
            )
        return self._bridge

    def to(self, dtype: str | torch.dtype | None = None, *, device: str | torch.device | None = None) -> "NegoModel":
        """Cast and/or move in place (the bridge is rebuilt on next use, as it ignores later casts).

        Parameters
        ----------
        dtype
            ``"float32"`` | ``"bfloat16"`` | ``"float16"`` or a ``torch.dtype``; ``None`` keeps it.
        device
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` …; ``None`` keeps it.

        Returns
        -------
        NegoModel
            ``self``.
        """
        if dtype is not None:
            self.hf.to(as_dtype(dtype))
        if device is not None:
            self.hf.to(resolve_device(device))
        self._bridge = None
        return self

    # -- text -----------------------------------------------------------------------------
    def render(
        self, turns: Iterable[Turn | Mapping[str, str]], add_generation_prompt: bool = False
    ) -> RenderedChat:
        """Render chat turns to ids with offsets and turn spans (see :mod:`negolens.chat`)."""
        return render_chat(self.tokenizer, turns, add_generation_prompt)

    def batch(self, sequences: list[list[int]] | list[RenderedChat]) -> Batch:
        """Left-pad id lists (or rendered chats) into a batch on the model's device."""
        ids = [s.input_ids if isinstance(s, RenderedChat) else list(s) for s in sequences]
        return left_pad(ids, self.pad_id).to(self.device)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Token ids to text."""
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    # -- forward passes ---------------------------------------------------------------------
    @torch.inference_mode()
    def logits(self, batch: Batch) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits of the plain HF model (padding handled by mask and position ids)."""
        out = self.hf(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
        return out.logits

    @torch.inference_mode()
    def bridge_logits(self, batch: Batch) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits through the TransformerLens bridge (same weights, hook points live)."""
        return self.bridge(
            batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            return_type="logits",
        )

    @torch.inference_mode()
    def run_with_cache(self, batch: Batch, names_filter: Callable[[str], bool] | list[str] | None = None):
        """``(logits, ActivationCache)`` via the bridge. Filter names: caching all hooks is slow."""
        return self.bridge.run_with_cache(
            batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            names_filter=names_filter,
        )

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[list[int]] | list[RenderedChat],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> list[list[int]]:
        """Generate continuations for a batch of prompts; returns only the new ids per prompt.

        ``temperature=0`` is greedy. Sampling is seeded: same seed, same batch → same output.
        Generation stops at the tokenizer's EOS (the end-of-turn token for chat models).
        """
        batch = self.batch(prompts)
        sample = temperature > 0
        torch.manual_seed(seed)
        out = self.hf.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=None,
            pad_token_id=self.pad_id,
            eos_token_id=self.stop_ids(),
        )
        new = out[:, batch.input_ids.shape[1] :].tolist()
        stops = set(self.stop_ids())
        return [_cut(row, stops) for row in new]

    def stop_ids(self) -> list[int]:
        """Token ids that end a chat turn: EOS and the template's end-of-turn marker."""
        ids = {self.tokenizer.eos_token_id}
        for marker in ("<|im_end|>", "<end_of_turn>"):
            tid = self.tokenizer.convert_tokens_to_ids(marker)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return sorted(i for i in ids if i is not None)

    def __repr__(self) -> str:
        s = self.shape
        return (
            f"NegoModel({self.name!r}, {s.n_layers} layers × {s.n_heads} heads "
            f"({s.n_kv_heads} KV), d_model={s.d_model}, vocab={s.d_vocab}, dtype={self.dtype})"
        )


def _cut(row: list[int], stops: set[int]) -> list[int]:
    """Drop everything from the first stop token on (generate pads finished rows)."""
    for i, tid in enumerate(row):
        if tid in stops:
            return row[:i]
    return row


def load(ref: str | Path, *, dtype: str | torch.dtype = "float32", fetch: bool | None = None,
         attn_implementation: str = "eager", device: str | torch.device = "auto") -> NegoModel:
    """Load a model as a :class:`NegoModel`; a zoo name is fetched on first use.

    Parameters are those of :meth:`NegoModel.load` (``fetch=False`` refuses to download;
    ``device="auto"`` puts the model on CUDA when available; ``dtype`` stays float32 unless
    you ask for ``"bfloat16"`` or ``"auto"``).

    Examples
    --------
    >>> import negolens
    >>> model = negolens.load("smollm2-135m-instruct")  # doctest: +SKIP
    >>> import tempfile
    >>> from negolens.testing import tiny_model_dir
    >>> negolens.load(tiny_model_dir(tempfile.mkdtemp()), dtype="bfloat16").dtype
    torch.bfloat16
    >>> negolens.load(tiny_model_dir(tempfile.mkdtemp()), device="cpu").device
    device(type='cpu')
    """
    return NegoModel.load(ref, dtype=dtype, fetch=fetch, attn_implementation=attn_implementation, device=device)
