"""Supervised losses on the target tokens only: the loss SFT trains on and its held-out value."""

from __future__ import annotations

import torch

from negolens.training.data import IGNORE, Example, collate
from negolens.training.devices import check_device, is_sharded, model_device, to_device

__all__ = ["target_loss", "eval_loss"]


def target_loss(hf, ids, labels, mask) -> torch.Tensor:
    """Mean next-token cross-entropy over target tokens, logits computed only there.

    Parameters
    ----------
    hf : transformers.PreTrainedModel or peft.PeftModel
        A transformers causal LM (its decoder trunk and output embedding are used).
    ids, labels, mask : torch.Tensor
        ``[batch, tokens]``; ``labels`` is ``IGNORE`` outside the targets.

    Returns
    -------
    torch.Tensor
        A scalar, equal to the loss of the full logits with ``ignore_index=IGNORE``.

    Raises
    ------
    NegolensError
        When the batch is not on the model's device (:func:`check_device`).
    """
    check_device(hf, ids, labels, mask)
    pred_at = labels[:, 1:] != IGNORE  # position t predicts token t+1
    if is_sharded(hf):  # FSDP gathers the head's weights in the root forward only: full logits there
        logits = hf(input_ids=ids, attention_mask=mask).logits[:, :-1][pred_at].float()
        return torch.nn.functional.cross_entropy(logits, labels[:, 1:][pred_at])
    base = hf.get_base_model() if hasattr(hf, "get_base_model") else hf
    hidden = base.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, T, D]
    h = hidden[:, :-1][pred_at]  # [N, D]
    logits = base.get_output_embeddings()(h).float()
    return torch.nn.functional.cross_entropy(logits, labels[:, 1:][pred_at])


@torch.no_grad()
def eval_loss(hf, examples: list[Example], pad_id: int, batch_size: int = 8) -> float:
    """Mean target-token loss over ``examples`` (the model is left in training mode)."""
    hf.eval()
    total, n = 0.0, 0
    device = model_device(hf)
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        ids, labels, mask = to_device(collate(chunk, pad_id), device)
        count = int((labels[:, 1:] != IGNORE).sum())
        total += float(target_loss(hf, ids, labels, mask)) * count
        n += count
    hf.train()
    return total / max(n, 1)
