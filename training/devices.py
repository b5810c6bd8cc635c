"""Where training happens: the model's device, batches moved there, autocast and the 4-bit base.

Every training loop (SFT, GRPO, the SFT benchmark) asks these functions rather than the
machine: batches go to the device of the model's input embeddings, autocast acts on that
device's type, and QLoRA's 4-bit base sits on the model's GPU.
"""

from __future__ import annotations

import contextlib

import torch

from negolens.errors import NegolensError

__all__ = ["model_device", "check_device", "to_device", "autocast", "cast_weights", "load_4bit", "sum_across", "sync_gradients"]


def model_device(hf) -> torch.device:
    """Where ``hf``'s batches must go: the device of its input embeddings (a 4-bit base keeps them there too)."""
    return hf.get_input_embeddings().weight.device


def check_device(hf, *tensors: torch.Tensor) -> torch.device:
    """``hf``'s device, after checking that every tensor is on it (else a clear NegolensError).

    Examples
    --------
    >>> import torch
    >>> from negolens.testing import tiny_model
    >>> hf = tiny_model().hf  # on the CPU, or on $NEGOLENS_DEVICE when that is set
    >>> check_device(hf, torch.zeros(2, dtype=torch.long, device=model_device(hf))) == model_device(hf)
    True
    """
    device = model_device(hf)
    for t in tensors:
        if t.device != device:
            raise NegolensError(f"the model is on {device} but a training batch is on {t.device}: move the batch "
                                f"with tensor.to({str(device)!r}) (or load the model with device={str(t.device)!r})")
    return device


def to_device(tensors, device) -> tuple:
    """The tensors moved to ``device`` (a tuple, in order)."""
    return tuple(t.to(device) for t in tensors)


def autocast(dtype: str, device: str | torch.device = "cpu"):
    """A bfloat16 autocast context for matmuls (``"bfloat16"``) or a no-op (``"float32"``).

    ``device`` is the model's device: autocast acts only on operations of its device type
    (a CUDA autocast leaves a CPU model's matmuls in float32, and the reverse).

    Examples
    --------
    >>> import torch
    >>> with autocast("bfloat16", "cpu"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """
    if dtype == "float32":
        return contextlib.nullcontext()
    if dtype != "bfloat16":
        raise NegolensError(f"dtype must be float32 or bfloat16, not {dtype!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def cast_weights(hf: torch.nn.Module, dtype: str | torch.dtype) -> None:
    """Cast ``hf``'s floating-point parameters to ``dtype`` in place; buffers keep theirs.

    For LoRA on a frozen base: a bfloat16 base under autocast is used as it is, where a float32
    one is cast to bfloat16 again in every matmul of every pass (autocast caches the casts of
    trainable weights only). Buffers such as the rotary ``inv_freq`` stay float32, as when a
    model is loaded in bfloat16. Tied weights stay tied (one parameter, cast once).

    Examples
    --------
    >>> import copy
    >>> from negolens.testing import tiny_model
    >>> hf = copy.deepcopy(tiny_model().hf)  # the shared test model stays float32
    >>> cast_weights(hf, "bfloat16")
    >>> {p.dtype for p in hf.parameters()}, {b.dtype for b in hf.buffers() if b.is_floating_point()}
    ({torch.bfloat16}, {torch.float32})
    """
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    for p in hf.parameters():
        if p.is_floating_point():
            p.data = p.data.to(dtype)


def load_4bit(model, cfg):
    """QLoRA's frozen base: ``model``'s weights again, 4-bit NF4, on ``model``'s CUDA device (else
    the current one). ``model``'s float weights then move to the CPU: QLoRA does not use them."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise NegolensError("QLoRA needs bitsandbytes (CUDA only): pip install bitsandbytes, "
                            "or use --mode lora") from None
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = model.device
    index = device.index if device.type == "cuda" and device.index is not None else torch.cuda.current_device()
    compute = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
    hf = AutoModelForCausalLM.from_pretrained(str(model.path), quantization_config=quant, device_map={"": index})
    model.hf.to("cpu")
    return prepare_model_for_kbit_training(hf, use_gradient_checkpointing=False)


def sum_across(value: float | torch.Tensor, device) -> float:
    """``value`` summed over the processes of :func:`negolens.distributed.sharded` (itself alone).

    Examples
    --------
    >>> sum_across(3.0, "cpu")
    3.0
    """
    from negolens.distributed import active_world

    t = torch.as_tensor(value, dtype=torch.float64, device=device).clone()
    if active_world().size > 1:
        import torch.distributed as dist

        dist.all_reduce(t)
    return float(t)


def sync_gradients(params) -> None:
    """Sum every parameter's gradient over the processes (data-parallel training; no-op in one).

    Each process computes its share of the batch's loss already divided by the batch's *total*
    target-token count, so the summed gradient is exactly the one-process gradient of the
    whole batch.
    """
    from negolens.distributed import active_world

    if active_world().size == 1:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)



def is_sharded(hf) -> bool:
    """Whether ``hf`` is wrapped by FSDP2 (:func:`shard_model`)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return False
    return isinstance(hf, FSDPModule)


def shard_model(hf) -> None:
    """Shard ``hf`` across the processes with FSDP2 (``torch.distributed.fsdp.fully_shard``), in place.

    Every decoder layer is its own unit (its parameters are gathered just before it runs and
    freed after), the rest — embeddings, final norm, output head (tied or not) — is the root
    unit. Each process then holds 1/N of the parameters, gradients and optimizer state: for a
    model whose training state does not fit one GPU. Gradients are reduce-scattered (averaged)
    by FSDP itself. The device mesh is built on the device of the model's weights (left to
    itself FSDP would take the machine's accelerator, also for a model kept on the CPU). Call it
    inside an initialised process group, before building the optimizer.

    Parameters
    ----------
    hf : transformers.PreTrainedModel or peft.PeftModel
        The model to shard, on its device.

    Raises
    ------
    NegolensError
        When the model has no ``get_decoder().layers`` to shard.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from negolens.errors import NegolensError

    base = hf.get_base_model() if hasattr(hf, "get_base_model") else hf
    layers = getattr(base.get_decoder(), "layers", None)
    if layers is None:
        raise NegolensError(f"cannot shard {type(base).__name__}: its decoder has no .layers; train without --fsdp")
    mesh = init_device_mesh(next(hf.parameters()).device.type, (dist.get_world_size(),))
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(hf, mesh=mesh)


def full_state_dict(hf) -> dict | None:
    """The whole model's state dict gathered from its FSDP shards onto the CPU of the main process
    (``None`` elsewhere); every process must call it. Unsharded: ``None`` (save as usual)."""
    if not is_sharded(hf):
        return None
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(hf, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() != 0:
        return None
    config = hf.config.get_text_config() if hasattr(hf.config, "get_text_config") else hf.config
    if getattr(config, "tie_word_embeddings", False):  # a tied head is saved once, as the embedding
        tied = getattr(hf, "_tied_weights_keys", None) or {}
        sd = {k: v for k, v in sd.items() if k not in tied}
    return sd
