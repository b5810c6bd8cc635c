"""Tiny offline models for tests and examples: no download, built in a second.

``tiny_model_dir(tmp, family)`` trains a small byte-level BPE tokenizer on a built-in
negotiation corpus (digits split one per token, like SmolLM2 and Gemma), builds a randomly
initialised Llama, Gemma-3 or Qwen2 config with ``architectures`` set, and saves both to a directory
that loads like any zoo model: ``negolens.load(tiny_model_dir(tmp))``. ``tiny_model(family)``
does that once per process and returns the loaded model (what examples and tests use).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch

from negolens.chat_templates import CHATML, GEMMA_TURNS

CORPUS = [
    "Hi, is the bike still available? I would offer $250 for it.",
    "I can sell it for $320, it is in great shape. Would you take 300?",
    "That is too much for me. My budget is 1.2k for both, or 120 bucks each.",
    "The buyer wants a discount; the seller accepted a counter offer of $7.50.",
    "Deal! I'll pay 2000 dollars. Let's meet in the middle and settle the price.",
    "system user assistant model buyer seller accept reject quit greet inquire inform",
    "0123456789 $ , . k % ? ! ' \" - :",
]

FAMILIES = ("llama", "gemma3", "qwen2")
"""The tiny model families (one per entry of :data:`negolens.sites.TABLES` that we test)."""


def tiny_tokenizer(family: str = "llama", vocab_size: int = 400):
    """A fast tokenizer with a chat template, trained offline on :data:`CORPUS`.

    ``gemma3`` gets Gemma's turn markers; ``llama`` and ``qwen2`` get ChatML.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if family == "gemma3":
        specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    else:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    if family == "gemma3":
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
            unk_token="<unk>", chat_template=GEMMA_TURNS,
            extra_special_tokens={"start_of_turn": "<start_of_turn>", "end_of_turn": "<end_of_turn>"},
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<pad>",
        unk_token="<|endoftext|>", chat_template=CHATML,
    )


def tiny_config(family: str, tokenizer, n_layers: int = 2, n_heads: int = 4, n_kv_heads: int = 2):
    """A small config of the family with ``architectures`` set (the bridge needs it)."""
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        head_dim=16,
        max_position_embeddings=512,
        initializer_range=0.2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    if family == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**common, architectures=["LlamaForCausalLM"])
    if family == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**common, architectures=["Qwen2ForCausalLM"])
    if family == "gemma3":
        from transformers import Gemma3TextConfig

        # A short sliding window so tests exercise Gemma-3's local/global layer mix.
        return Gemma3TextConfig(
            **common, sliding_window=8, layer_types=["sliding_attention", "full_attention"][:n_layers] * 1,
            architectures=["Gemma3ForCausalLM"],
        )
    raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")


def tiny_model_dir(root: str | Path, family: str = "llama", seed: int = 0, **config_kwargs) -> Path:
    """Build, randomly initialise (seeded) and save a tiny model + tokenizer; return the directory.

    Examples
    --------
    >>> import tempfile, negolens
    >>> model = negolens.load(tiny_model_dir(tempfile.mkdtemp(), "qwen2"))
    >>> model.sites.family, model.shape.n_heads
    ('qwen2', 4)
    """
    from transformers import AutoModelForCausalLM

    out = Path(root) / f"tiny-{family}-{seed}"
    tokenizer = tiny_tokenizer(family)
    config = tiny_config(family, tokenizer, **config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_model(family: str = "llama", **config_kwargs):
    """A tiny random :class:`~negolens.hooked.NegoModel`, built once per process and shared.

    The first call for a family (and config) builds it with :func:`tiny_model_dir` in a fresh
    temporary directory and loads it with :func:`negolens.load`; later calls return the same
    object (:func:`functools.lru_cache`). Because it is shared, do not train it or change its
    weights in place: build your own with ``negolens.load(tiny_model_dir(tmp))`` for that.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`: ``"llama"``, ``"gemma3"`` or ``"qwen2"``.
    **config_kwargs
        Passed to :func:`tiny_config` (``n_layers``, ``n_heads``, ``n_kv_heads``); each distinct
        setting is its own cached model.

    Returns
    -------
    NegoModel
        Two layers of four heads (``d_model`` 64) unless ``config_kwargs`` say otherwise, on the
        tiny byte-level tokenizer of :func:`tiny_tokenizer`.

    Raises
    ------
    ValueError
        For an unknown ``family``.

    Examples
    --------
    >>> model = tiny_model()
    >>> model.sites.family, model.shape.n_layers, model.shape.n_heads
    ('llama', 2, 4)
    >>> tiny_model() is model
    True
    """
    return _tiny_model(family, tuple(sorted(config_kwargs.items())))


@functools.lru_cache(maxsize=None)
def _tiny_model(family: str, config_items: tuple):
    from negolens.hooked import load

    root = tempfile.mkdtemp(prefix=f"negolens-tiny-{family}-")
    return load(tiny_model_dir(root, family, **dict(config_items)))
