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
import os
from pathlib import Path

import torch

from negolens.errors import ModelNotFetchedError, NegolensError, UnknownModelError
from negolens.fetching import cache_problem, cached_path, fetch, is_cached, model_files_problem
from negolens.zoo import ZOO

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICE_ENV = "NEGOLENS_DEVICE"
"""Environment variable that ``device="auto"`` follows when set (e.g. ``cpu`` on a GPU machine)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` a model goes on: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` …

    ``"auto"`` is ``$NEGOLENS_DEVICE`` when that is set, else CUDA when available (the process's
    own GPU, ``cuda:$LOCAL_RANK``, when launched as several processes by torchrun or accelerate),
    else the CPU.
    A CUDA device on a machine without CUDA (or past the last GPU) raises
    :class:`~negolens.errors.NegolensError`.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in ("cpu", "cuda")
    True
    """
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        env = os.environ.get(DEVICE_ENV, "").strip()
        if env and env != "auto":
            return resolve_device(env)
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = os.environ.get("LOCAL_RANK")  # one GPU per process under torchrun / accelerate launch
        if local is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return torch.device("cuda", int(local) % torch.cuda.device_count())
        return torch.device("cuda")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise NegolensError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NegolensError(f"device {device!r} asked for, but this machine has no usable CUDA GPU "
                                "(torch.cuda.is_available() is False): use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NegolensError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                                f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "auto") -> torch.dtype:
    """A ``torch.dtype`` for ``device``: ``"auto"`` is bfloat16 on CUDA and float32 elsewhere.

    Examples
    --------
    >>> resolve_dtype("auto", "cpu"), resolve_dtype("bfloat16", "cpu")
    (torch.float32, torch.bfloat16)
    """
    if dtype == "auto":
        return torch.bfloat16 if resolve_device(device).type == "cuda" else torch.float32
    return as_dtype(dtype)


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
        broken = cache_problem(ref)
        if broken:
            raise NegolensError(f"the cached zoo model {ref!r} is broken: {broken}. "
                                f"Run `negolens models fetch {ref} --force` to fetch it again")
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
            broken = model_files_problem(path)
            if broken:
                raise NegolensError(f"model directory {path} is incomplete or corrupt: {broken}. "
                                    "Copy or save the model there again")
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
    device: str | torch.device = "auto",
):
    """Load ``(model, tokenizer, path)`` for a reference; the model is in eval mode on ``device``.

    ``attn_implementation="eager"`` is the default because attention patterns only exist in
    eager attention (and the TransformerLens bridge switches to it anyway). ``device`` and
    ``dtype="auto"`` are resolved by :func:`resolve_device` and :func:`resolve_dtype`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    path = resolve(ref, fetch_missing=fetch_missing)
    adapter = Path(path) / "adapter_config.json" if isinstance(path, Path) else None
    base = path
    if adapter is not None and adapter.is_file():
        base = resolve(json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"], fetch_missing=fetch_missing)
        if isinstance(base, Path) and (base / "adapter_config.json").is_file():
            # an adapter trained on a merged adapter (e.g. GRPO on the SFT buyer): merge both
            from peft import PeftModel

            model, tokenizer, _ = load_hf(base, dtype=dtype, fetch_missing=fetch_missing,
                                          attn_implementation=attn_implementation, device=device)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
            return model.eval(), tokenizer, path
    try:
        model = AutoModelForCausalLM.from_pretrained(
            base, dtype=resolve_dtype(dtype, device), attn_implementation=attn_implementation
        )
        tokenizer = AutoTokenizer.from_pretrained(path if _has_tokenizer(path) else base)
    except OSError as err:
        raise UnknownModelError(f"could not load model {ref!r}: {err}") from None
    except Exception as err:  # safetensors' SafetensorError (corrupt weights) is no OSError
        if type(err).__name__ != "SafetensorError":
            raise
        first = (str(err).splitlines() or [""])[0]
        raise NegolensError(f"could not read the weights of {ref!r} ({first}): the file is corrupt; "
                            + (f"run `negolens models fetch {ref} --force`" if str(ref) in ZOO
                               else "copy or save the model again")) from None
    if base is not path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer, path


def _has_tokenizer(path) -> bool:
    return isinstance(path, Path) and (path / "tokenizer_config.json").is_file()


def unwrap_peft(model):
    """The plain transformers model inside a (not merged) ``PeftModel``, else ``model`` itself.

    Hooks on a ``PeftModel`` see LoRA-wrapped layers; hand the bridge ``base_model.model``.
    """
    inner = getattr(getattr(model, "base_model", None), "model", None)
    return inner if inner is not None and type(model).__name__.startswith("Peft") else model
