"""Say so, while it runs, when a run is not learning: the most common silent failure of fine-tuning.

Warnings are echoed and written to log.jsonl (`{"step": N, "warning": "..."}`), from where the
report picks them up, so a resumed run keeps the warnings of its first part.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from encoderkit.training.callbacks import Callback, RunLog
from encoderkit.training.state import LoopState, Plan

# Loss after the first epoch must fall below this share of its start to count as learning.
LEARNING_RATIO = 0.9


def loss_warning(losses: list[float], ratio: float = LEARNING_RATIO) -> str | None:
    """A warning when the mean of the last tenth of `losses` is not below `ratio` x the first tenth."""
    if len(losses) < 4:
        return None
    tenth = max(1, len(losses) // 10)
    start, end = sum(losses[:tenth]) / tenth, sum(losses[-tenth:]) / tenth
    if end < ratio * start:
        return None
    return (
        f"training loss barely moved in the first epoch ({start:.4f} -> {end:.4f}): the model may not be "
        "learning; check the learning rate, the labels and the number of steps"
    )


class LearningWatch(Callback):
    """Writes up-front warnings at the start, and checks the loss curve after the first epoch."""

    def __init__(self, log: RunLog, plan: Plan, upfront: list[str], echo: Callable[[str], None]) -> None:
        self.log, self.plan, self.upfront, self.echo = log, plan, upfront, echo
        self.checked = False

    def on_train_begin(self, state: LoopState) -> None:
        self.checked = state.global_step >= self.plan.steps_per_epoch
        if state.global_step == 0:  # a resumed run has them in its log already
            for text in self.upfront:
                self._warn(state, text)

    def on_epoch_end(self, state: LoopState) -> None:
        self._check(state)

    def on_train_end(self, state: LoopState) -> None:
        self._check(state)  # runs shorter than an epoch

    def _check(self, state: LoopState) -> None:
        if self.checked:
            return
        self.checked = True
        if not self.log.enabled:  # a non-main process of a distributed run: the main one warns
            return
        # Read back from the log so a run resumed mid-epoch sees the losses of its first part too.
        # No log yet: nothing logged in the first epoch (a short run with a long logging interval).
        lines = self.log.path.read_text(encoding="utf-8").splitlines() if self.log.path.exists() else []
        entries = [json.loads(line) for line in lines]
        losses = [e["loss"] for e in entries if "loss" in e and e["step"] <= self.plan.steps_per_epoch]
        text = loss_warning(losses)
        if text:
            self._warn(state, text)

    def _warn(self, state: LoopState, text: str) -> None:
        self.echo(f"warning: {text}")
        self.log.write({"step": state.global_step, "warning": text})
