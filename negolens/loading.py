"""Resolve a model reference and load the HF model and tokenizer.

A reference is one of:

* a zoo name (``negolens models list``) — read from the cache, fetched on request;
* a local HF model directory (``config.json``), e.g. a fine-tuned checkpoint;
* a local PEFT adapter directory (``adapter_config.json``) — loaded on its base and merged, so
  hooks see ordinary linear layers (a TransformerLens bridge cannot wrap a ``PeftModel``);
* a hub id (``org/name``) where a hub is reachable.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from negolens.errors import ModelNotFetchedError, NegolensError, UnknownModelError
from negolens.fetching import cached_path, fetch, is_cached
from negolens.zoo import ZOO

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A ``torch.dtype`` from its name (``"float32"``, ``"bfloat16"``, ``"float16"``) or itself."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise NegolensError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def resolve(ref: str | Path, *, fetch_missing: bool = False) -> str | Path:
    """Turn a model reference into a local directory (or a hub id).

    A zoo name that is not cached yet is fetched with ``fetch_missing=True``, else raises
    :class:`~negolens.errors.ModelNotFetchedError` (``negolens.load`` fetches by default).
    """
    ref = str(ref)
    if ref in ZOO:
        if is_cached(ref):
            return cached_path(ref)
        if fetch_missing:
            return fetch(ref)
        raise ModelNotFetchedError(
            f"zoo model {ref!r} is not in the cache yet: run `negolens models fetch {ref}` "
            "(or pass fetch=True)"
        )
    path = Path(ref).expanduser()
    if path.exists():
        if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            return path
        raise UnknownModelError(
            f"{path} exists but holds no config.json or adapter_config.json: "
            "not a HF model or PEFT adapter directory"
        )
    if ref.count("/") == 1 and not ref.startswith((".", "/", "~")):
        return ref  # a hub id; loading fails with a clear error where there is no hub
    known = ", ".join(sorted(ZOO))
    raise UnknownModelError(
        f"unknown model {ref!r}: not a zoo name ({known}), not a local directory, not a hub id"
    )


def load_hf(
    ref: str | Path,
    *,
    dtype: str | torch.dtype = "float32",
    fetch_missing: bool = False,
    attn_implementation: str = "eager",
):
    """Load ``(model, tokenizer, path)`` for a reference; the model is in eval mode.

    ``attn_implementation="eager"`` is the default because attention patterns only exist in
    eager attention (and the TransformerLens bridge switches to it anyway).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(ref, fetch_missing=fetch_missing)
    adapter = Path(path) / "adapter_config.json" if isinstance(path, Path) else None
    base = path
    if adapter is not None and adapter.is_file():
        base = resolve(json.loads(adapter.read_text())["base_model_name_or_path"], fetch_missing=fetch_missing)
        if isinstance(base, Path) and (base / "adapter_config.json").is_file():
            # an adapter trained on a merged adapter (e.g. GRPO on the SFT buyer): merge both
            from peft import PeftModel

            model, tokenizer, _ = load_hf(base, dtype=dtype, fetch_missing=fetch_missing,
                                          attn_implementation=attn_implementation)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
            return model.eval(), tokenizer, path
    try:
        model = AutoModelForCausalLM.from_pretrained(
            base, dtype=as_dtype(dtype), attn_implementation=attn_implementation
        )
        tokenizer = AutoTokenizer.from_pretrained(path if _has_tokenizer(path) else base)
    except OSError as err:
        raise UnknownModelError(f"could not load model {ref!r}: {err}") from None
    if base is not path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer, path


def _has_tokenizer(path) -> bool:
    return isinstance(path, Path) and (path / "tokenizer_config.json").is_file()


def unwrap_peft(model):
    """The plain transformers model inside a (not merged) ``PeftModel``, else ``model`` itself.

    Hooks on a ``PeftModel`` see LoRA-wrapped layers; hand the bridge ``base_model.model``.
    """
    inner = getattr(getattr(model, "base_model", None), "model", None)
    return inner if inner is not None and type(model).__name__.startswith("Peft") else model
