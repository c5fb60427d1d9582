"""What the loop trains: the model and its task's loss, over a padded or a packed batch.

One module, so that Accelerate wraps (DDP, autocast, torch.compile) the whole forward + loss,
whichever path the batch takes. The loss is the task's (`Task.loss`), not the HF head's: HF's QA
loss takes the softmax over padded positions too, so an example's loss would depend on how long
the other examples of its batch are.
"""

from __future__ import annotations

from typing import Any

import torch

from encoderkit import packing
from encoderkit.tasks import Task


class TrainingModel(torch.nn.Module):
    """`model` (a transformers model, or PEFT around one) plus `task`'s loss; forward returns the loss."""

    def __init__(self, model: torch.nn.Module, task: Task) -> None:
        super().__init__()
        self.model = model
        self.loss = task.loss
        self.forward_loss = task.forward_loss
        self.target_keys = task.target_keys

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        targets = {k: batch[k] for k in self.target_keys if k in batch}
        if packing.is_packed(batch):  # per-token logits come back -inf past each sequence's end
            return self.loss(packing.packed_logits(self.model, batch), targets, None)
        inputs = {k: v for k, v in batch.items() if k not in self.target_keys}
        return self.forward_loss(self.model, inputs, targets)
