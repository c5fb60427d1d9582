"""Losses several tasks share."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from encoderkit.features.collate import IGNORE


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled positions (IGNORE elsewhere) of per-token logits
    [..., C]; 0 with a gradient of 0 when none is labelled (torch's mean would be nan: a short
    batch can hold no masked token). The count stays on the device: no host sync."""
    summed = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return summed / (labels != IGNORE).sum().clamp(min=1)
