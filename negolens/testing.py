"""Tiny offline models for tests and examples: no download, built in a second.

``tiny_model_dir(tmp, family)`` trains a small byte-level BPE tokenizer on a built-in
negotiation corpus (digits split one per token, like SmolLM2 and Gemma), builds a randomly
initialised Llama or Gemma-3 config with ``architectures`` set, and saves both to a directory
that loads like any zoo model: ``negolens.load(tiny_model_dir(tmp))``.
"""

from __future__ import annotations

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

FAMILIES = ("llama", "gemma3")


def tiny_tokenizer(family: str = "llama", vocab_size: int = 400):
    """A fast tokenizer with a chat template, trained offline on :data:`CORPUS`."""
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
    if family == "gemma3":
        from transformers import Gemma3TextConfig

        # A short sliding window so tests exercise Gemma-3's local/global layer mix.
        return Gemma3TextConfig(
            **common, sliding_window=8, layer_types=["sliding_attention", "full_attention"][:n_layers] * 1,
            architectures=["Gemma3ForCausalLM"],
        )
    raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")


def tiny_model_dir(root: str | Path, family: str = "llama", seed: int = 0, **config_kwargs) -> Path:
    """Build, randomly initialise (seeded) and save a tiny model + tokenizer; return the directory."""
    from transformers import AutoModelForCausalLM

    out = Path(root) / f"tiny-{family}-{seed}"
    tokenizer = tiny_tokenizer(family)
    config = tiny_config(family, tokenizer, **config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
