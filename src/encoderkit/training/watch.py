"""Say so when a run is not learning, the most common silent failure of fine-tuning, and only then.

Three checks, each a pure function:

- up front, `steps_warning`: a plan with too few optimizer steps to move a new head;
- at the end, with an eval set, `eval_warning`: the metric never beat the untrained model's
  (the step-0 evaluation); the eval metric is what the user cares about, so when there is one it
  alone decides;
- at the end, without one, `loss_warning`: the smoothed loss after warm-up did not fall below
  90% of where it started (the first epoch is mostly warm-up on a short run, so a check there
  would fire on runs that go on to learn).

Warnings are echoed and written to log.jsonl (`{"step": N, "warning": "..."}`), from where the
report picks them up, so a resumed run keeps the warnings of its first part.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from encoderkit.training.callbacks import Callback, RunLog
from encoderkit.training.state import MIN_STEPS, LoopState, Plan

# The smoothed loss at the end must fall below this share of its start to count as learning.
LEARNING_RATIO = 0.9
ADVICE = "check the learning rate, the labels and the number of steps"


def steps_warning(total_steps: int, examples: int, batch_size: int, epochs: float) -> str | None:
    if total_steps >= MIN_STEPS:
        return None
    return (
        f"only {total_steps} optimizer steps ({examples} examples, batch {batch_size}, {epochs:g} epochs): "
        f"too few to learn much; aim for {MIN_STEPS}+ with a higher --epochs or a lower --batch-size"
    )


def loss_warning(losses: Sequence[tuple[int, float]], warmup_steps: int) -> str | None:
    """(step, loss) pairs -> a warning when the mean of the last quarter after warm-up is not below
    LEARNING_RATIO x the mean of the first quarter after warm-up (4 points at least)."""
    after = [loss for step, loss in losses if step > warmup_steps]
    if len(after) < 4:
        return None
    quarter = len(after) // 4
    start, end = sum(after[:quarter]) / quarter, sum(after[-quarter:]) / quarter
    if end < LEARNING_RATIO * start:
        return None
    return (
        f"training loss barely fell after warm-up ({start:.4f} -> {end:.4f}): the model may not be "
        f"learning; {ADVICE}"
    )


def eval_warning(evals: Sequence[tuple[int, float]], metric: str, greater: bool) -> str | None:
    """(step, value) of the eval metric -> a warning when no evaluation after step 0 beat step 0."""
    start = [value for step, value in evals if step == 0]
    later = [value for step, value in evals if step > 0]
    if not start or not later:
        return None  # no untrained baseline (--no-eval-at-start) or no evaluation after it
    best = max(later) if greater else min(later)
    if (best > start[0]) if greater else (best < start[0]):
        return None
    return (
        f"eval {metric} never beat the untrained model's ({start[0]:.4f} at step 0, best {best:.4f}): "
        f"the model may not be learning; {ADVICE}"
    )


class LearningWatch(Callback):
    """Writes the up-front warnings at the start, and checks the run at its end (after the final
    evaluation: it comes after the Evaluator in the callback list)."""

    def __init__(
        self,
        log: RunLog,
        plan: Plan,
        upfront: list[str],
        echo: Callable[[str], None],
        metric: tuple[str, bool] | None = None,  # (eval metric, greater is better); None: no eval set
        warmup_steps: int = 0,
    ) -> None:
        self.log, self.plan, self.upfront, self.echo = log, plan, upfront, echo
        self.metric, self.warmup_steps = metric, warmup_steps

    def on_train_begin(self, state: LoopState) -> None:
        if state.global_step == 0:  # a resumed run has them in its log already
            for text in self.upfront:
                self._warn(state, text)

    def on_train_end(self, state: LoopState) -> None:
        if not self.log.enabled or not self.log.path.exists():  # a non-main process: the main one warns
            return
        # Read back from the log, so a resumed run sees the losses and evaluations of its first part.
        entries = [json.loads(line) for line in self.log.path.read_text(encoding="utf-8").splitlines()]
        if self.metric is not None:
            name, greater = self.metric
            evals = [(e["step"], e[f"eval_{name}"]) for e in entries if f"eval_{name}" in e]
            text = eval_warning(evals, name, greater)
        else:
            text = loss_warning([(e["step"], e["loss"]) for e in entries if "loss" in e], self.warmup_steps)
        if text:
            self._warn(state, text)

    def _warn(self, state: LoopState, text: str) -> None:
        self.echo(f"warning: {text}")
        self.log.write({"step": state.global_step, "warning": text})
