"""Where training happens: the model's device, batches moved there, autocast and the 4-bit base.

Every training loop (SFT, GRPO, the SFT benchmark) asks these functions rather than the
machine: batches go to the device of the model's input embeddings, autocast acts on that
device's type, and QLoRA's 4-bit base sits on the model's GPU.
"""

from __future__ import annotations

import contextlib

import torch

from negolens.errors import NegolensError

__all__ = ["model_device", "check_device", "to_device", "autocast", "load_4bit", "sum_across", "sync_gradients"]


def model_device(hf) -> torch.device:
    """Where ``hf``'s batches must go: the device of its input embeddings (a 4-bit base keeps them there too)."""
    return hf.get_input_embeddings().weight.device


def check_device(hf, *tensors: torch.Tensor) -> torch.device:
    """``hf``'s device, after checking that every tensor is on it (else a clear NegolensError).

    Examples
    --------
    >>> import torch
    >>> from negolens.testing import tiny_model
    >>> check_device(tiny_model().hf, torch.zeros(2, dtype=torch.long))
    device(type='cpu')
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

