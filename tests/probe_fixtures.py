"""Synthetic transcripts and a tiny model with a planted price-attention head."""

from __future__ import annotations

import torch

from negolens.agents import extract_price
from negolens.agents.builtin import builtin_scenarios
from negolens.agents.transcripts import Transcript, Utterance

LINES = [
    ("buyer", "Hi, I would offer $250 for it."),
    ("seller", "I can sell it for $320, it is in great shape."),
    ("buyer", "Would you take 300? That is my budget."),
    ("seller", "Deal, I accept 310 dollars."),
]


def transcripts(n: int = 12) -> list[Transcript]:
    out = []
    for i, sc in enumerate(builtin_scenarios()[:n]):
        texts = [(r, t.replace("250", str(200 + i))) for r, t in LINES]
        turns = [Utterance(r, t, "offer" if "$" in t else "other", extract_price(t)) for r, t in texts]
        out.append(Transcript(f"syn-{i}", sc, turns, deal=i % 2 == 0))
    return out


def plant_price_head(model, head: int = 0) -> None:
    """Wire layer 0, ``head`` to attend to price tokens (' $' and digits) from every query.

    Embeddings get a constant feature (dim 0) and a price feature (dim 1); the head's query
    reads the constant, its KV group's key reads the price feature, both in the slowest RoPE
    pair so positions barely matter. The other head of the group is silenced (uniform).
    """
    tok, hf = model.tokenizer, model.hf
    d_head, n_heads, n_kv = model.shape.d_head, model.shape.n_heads, model.shape.n_kv_heads
    price_ids = [i for i, p in enumerate(tok.batch_decode([[i] for i in range(len(tok))])) if p.strip().isdigit() or p.strip() == "$"]
    slow = d_head // 2 - 1  # the lowest-frequency rotary dimension
    with torch.no_grad():
        emb = hf.get_input_embeddings().weight
        emb[:, :2] = 0.0
        emb[:, 0] = 1.0
        emb[price_ids, 1] = 1.0
        attn = hf.model.layers[0].self_attn
        group = head // (n_heads // n_kv)
        for h in range(n_heads):
            if h // (n_heads // n_kv) == group:
                attn.q_proj.weight[h * d_head : (h + 1) * d_head] = 0.0
        attn.q_proj.weight[head * d_head + slow, 0] = 3.0
        attn.k_proj.weight[group * d_head : (group + 1) * d_head] = 0.0
        attn.k_proj.weight[group * d_head + slow, 1] = 3.0


def plant_copy_head(model) -> None:
    """Layer 0 head 0 attends to price tokens (see :func:`plant_price_head`) and copies their
    price feature into the decision position; the unembedding reads it as "accept" over
    "counter". Head 1 (same KV group) is made inert: its output projection is zeroed."""
    from torch import nn

    plant_price_head(model, head=0)
    hf, d = model.hf, model.shape.d_head
    accept = model.tokenizer.encode(" accept", add_special_tokens=False)[0]
    counter = model.tokenizer.encode(" counter", add_special_tokens=False)[0]
    with torch.no_grad():
        attn = hf.model.layers[0].self_attn
        attn.v_proj.weight[0:d] = 0.0
        attn.v_proj.weight[0, 1] = 3.0  # value: the price feature
        attn.o_proj.weight[:, 0:d] = 0.0
        attn.o_proj.weight[2, 0] = 5.0  # head 0 writes it to residual dim 2
        attn.o_proj.weight[:, d : 2 * d] = 0.0  # head 1: inert
        hf.lm_head.weight = nn.Parameter(hf.lm_head.weight.detach().clone())  # untie
        hf.config.tie_word_embeddings = False
        hf.lm_head.weight[accept, 2] += 2.0
        hf.lm_head.weight[counter, 2] -= 2.0
