"""What the loop knows about its own progress, and the step arithmetic of a run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass
class LoopState:
    """Everything besides model/optimizer/scheduler/RNG that a checkpoint must restore.

    Registered with `accelerator.register_for_checkpointing`, so it is saved inside each checkpoint.
    """

    global_step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # micro-batches of the current epoch already trained on
    examples_seen: int = 0
    train_time_s: float = 0.0  # time in forward/backward/step only (no eval, no checkpoint I/O)
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    last_eval_step: int = -1
    log_lines: int = 0  # lines of log.jsonl written so far (resume cuts the file back to this)
    loss_sum: float = 0.0  # step losses since the last log entry (their mean is logged next)
    loss_count: int = 0
    should_stop: bool = False

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass(frozen=True)
class Plan:
    """Step counts derived once from the data size and the config."""

    batches_per_epoch: int
    steps_per_epoch: int  # optimizer steps
    total_steps: int
    num_epochs: int  # epochs started (the last may be cut short by max_steps / fractional epochs)
    logging_steps: int
    eval_steps: int | None  # None: evaluate at the end of each epoch
    save_steps: int | None


AUTO_EPOCHS_MAX = 3
AUTO_EXAMPLES_SEEN = 60_000
# Fewer optimizer steps than this rarely move a new head far from chance (training/watch.py).
MIN_STEPS = 30
AUTO_EPOCHS_SMALL_MAX = 20  # how far `auto` goes to reach MIN_STEPS on a tiny set
AUTO_RULE = (
    f"3, fewer past ~{AUTO_EXAMPLES_SEEN:,} examples seen, more (up to {AUTO_EPOCHS_SMALL_MAX}) "
    f"to reach {MIN_STEPS} steps"
)


AUTO_BATCH_SIZES = (32, 16, 8)
AUTO_BATCHES_PER_EPOCH = 10
AUTO_BATCH_RULE = f"32, or 16 / 8 when an epoch would have fewer than {AUTO_BATCHES_PER_EPOCH} batches"


def auto_batch_size(num_examples: int, unit: int = 1) -> int:
    """`--batch-size auto`: 32 (the common fine-tuning batch), or the largest of 16 and 8 that
    still gives an epoch 10 batches on a small set (else 8): 200 examples train at 16, 40 at 8.
    Below 8 a step's gradient is mostly noise, and a tiny set gets its steps from more epochs
    (`auto_epochs`). Rounded up to a multiple of `unit` (grad_accum x processes), which must
    divide the global batch."""
    fits = [b for b in AUTO_BATCH_SIZES if math.ceil(num_examples / b) >= AUTO_BATCHES_PER_EPOCH]
    size = fits[0] if fits else AUTO_BATCH_SIZES[-1]
    return math.ceil(size / unit) * unit


def auto_epochs(num_examples: int, steps_per_epoch: int | None = None) -> int:
    """`--epochs auto`: 3 epochs for small sets (GLUE-style fine-tuning), fewer for large ones so a
    run sees at most ~60k examples (SST-2's 67k rows: 1 epoch), and always at least one epoch.
    A set so small that 3 epochs are fewer than MIN_STEPS optimizer steps gets the epochs that
    reach them (at most 20): 40 examples at batch 32, 2 steps an epoch, train 15 epochs."""
    epochs = max(1, min(AUTO_EPOCHS_MAX, AUTO_EXAMPLES_SEEN // max(1, num_examples)))
    if steps_per_epoch and epochs * steps_per_epoch < MIN_STEPS:
        epochs = min(AUTO_EPOCHS_SMALL_MAX, math.ceil(MIN_STEPS / steps_per_epoch))
    return epochs


def make_plan(
    num_examples: int,
    batch_size: int,
    grad_accum: int,
    epochs: float | str,
    max_steps: int | None,
    logging_steps: int | None,
    eval_steps: int | None,
    save_steps: int | None,
    batches_per_epoch: int | None = None,
) -> Plan:
    """Step counts of a run; `batches_per_epoch` (micro-batches) when the batches are not a fixed
    number of examples (`--batch-tokens`), else from the data size and the micro-batch size."""
    micro = max(1, batch_size // grad_accum)
    batches = batches_per_epoch or math.ceil(num_examples / micro)
    steps_per_epoch = math.ceil(batches / grad_accum)
    if epochs == "auto":
        epochs = auto_epochs(num_examples, steps_per_epoch)
    total = max_steps if max_steps else math.ceil(float(epochs) * steps_per_epoch)
    return Plan(
        batches_per_epoch=batches,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        num_epochs=math.ceil(total / steps_per_epoch),
        logging_steps=logging_steps or max(1, total // 50),
        eval_steps=eval_steps,
        save_steps=save_steps,
    )
