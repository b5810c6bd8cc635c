"""GGUF → plain safetensors HF directory.

transformers' GGUF loader de-quantises every tensor to float on load. The loaded model still
carries a ``quantization_config`` that makes ``save_pretrained`` refuse, so we drop it (the
weights in memory are ordinary float tensors by then) and save a directory that any
``from_pretrained`` — and ``TransformerBridge.boot_transformers`` — opens without de-quantising
again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from negolens.errors import NegolensError
from negolens.zoo import ModelSpec


def gguf_to_hf(gguf_path: Path, out_dir: Path, spec: ModelSpec) -> None:
    """De-quantise ``gguf_path`` and save model + tokenizer to ``out_dir`` (float32 safetensors).

    The converted config is checked against the spec's shapes; a mismatch raises.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The weights are de-quantised floats now; forget that they came from a GGUF.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.config.architectures = [spec.architecture]
    model.config.name_or_path = spec.name
    if spec.chat_template is not None:
        tokenizer.chat_template = spec.chat_template
    check_shapes(model.config, spec)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def check_shapes(config, spec: ModelSpec) -> None:
    """Raise if a converted config does not have the shapes the zoo promises."""
    got = {
        "n_layers": config.num_hidden_layers,
        "n_heads": config.num_attention_heads,
        "n_kv_heads": getattr(config, "num_key_value_heads", config.num_attention_heads),
        "d_model": config.hidden_size,
        "d_vocab": config.vocab_size,
    }
    want = {k: getattr(spec, k) for k in got}
    if got != want:
        raise NegolensError(
            f"converted {spec.name} has shapes {got}, the zoo expects {want}: "
            "the wheel is not the model the zoo describes. Delete the cache entry and refetch."
        )
