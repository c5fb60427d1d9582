"""What the loop trains: the model and its loss, over a padded or a packed batch.

One module, so that Accelerate wraps (DDP, autocast, torch.compile) the whole forward + loss,
whichever path the batch takes. The losses are ours rather than the HF heads' for one reason:
HF's QA loss takes the softmax over the padded positions too, so an example's loss depends on
how long the other examples of its batch are; here pad positions get -inf, and a padded, a
packed and a differently padded batch all give each example the same loss.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from encoderkit import packing

TARGETS = ("labels", "start_positions", "end_positions")


class TrainingModel(torch.nn.Module):
    """`model` (a transformers model, or PEFT around one) plus the task loss; forward returns the loss."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        targets = {k: batch[k] for k in TARGETS if k in batch}
        if packing.is_packed(batch):
            logits = packing.packed_logits(self.model, batch)
        else:
            inputs = {k: v for k, v in batch.items() if k not in TARGETS}
            out = self.model(**inputs)
            logits = {k: getattr(out, k) for k in ("logits", "start_logits", "end_logits") if k in out}
            if "start_logits" in logits:
                pad = inputs["attention_mask"] == 0
                logits = {k: v.masked_fill(pad, float("-inf")) for k, v in logits.items()}
        if "start_positions" in targets:
            return span_loss(
                logits["start_logits"],
                logits["end_logits"],
                targets["start_positions"],
                targets["end_positions"],
            )
        return sequence_loss(logits["logits"], targets["labels"])


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error for one output (regression), else cross-entropy, as HF's heads compute them."""
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


def span_loss(
    start_logits: torch.Tensor, end_logits: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> torch.Tensor:
    """Mean of the start and end cross-entropies over each sequence's own positions (pads: -inf)."""
    return (F.cross_entropy(start_logits.float(), start) + F.cross_entropy(end_logits.float(), end)) / 2
