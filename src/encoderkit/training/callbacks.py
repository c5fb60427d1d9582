"""Side effects of training as small callbacks with named hooks.

Order matters and is fixed by `default_callbacks`: log the step, then evaluate (which may stop
early and save the best weights), then checkpoint (so a checkpoint includes that evaluation).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from encoderkit.atomic import write_atomic
from encoderkit.training.state import LoopState, Plan


class Callback:
    """No-op hooks; subclasses override what they need."""

    def on_train_begin(self, state: LoopState) -> None: ...
    def on_step_end(self, state: LoopState, loss: float, lr: float) -> None: ...
    def on_epoch_end(self, state: LoopState) -> None: ...
    def on_train_end(self, state: LoopState) -> None: ...
    def on_interrupt(self, state: LoopState) -> None: ...  # a signal stops the run after this step


class RunLog:
    """Append-only `log.jsonl`; its line count is kept in LoopState so resume can cut it back."""

    def __init__(
        self,
        path: Path,
        state: LoopState,
        write: bool = True,
        sink: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = path
        self.state = state
        # Off on the non-main processes of a distributed run (only the main process's LoopState
        # goes into checkpoints; the others count lines too, to keep theirs alike).
        self.enabled = write
        self.sink = sink  # --report-to: each entry to the trackers as well

    def write(self, entry: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
            if self.sink is not None:
                self.sink(entry)
        self.state.log_lines += 1

    def truncate(self, lines: int) -> None:
        """Drop entries written after the checkpoint being resumed from."""
        if self.path.exists():
            kept = self.path.read_text(encoding="utf-8").splitlines()[:lines]
            # Atomic: a crash while cutting must not lose the lines a checkpoint still counts on.
            write_atomic(self.path, "".join(line + "\n" for line in kept))


def epoch_of(state: LoopState, plan: Plan) -> float:
    return round(state.global_step / plan.steps_per_epoch, 4)


class LossLogger(Callback):
    """Every `logging_steps`: mean loss since the last entry, learning rate, throughput."""

    def __init__(self, log: RunLog, plan: Plan) -> None:
        self.log, self.plan = log, plan
        self.mark = (0, 0.0)  # (examples_seen, train_time_s) at the last entry

    def on_train_begin(self, state: LoopState) -> None:
        self.mark = (state.examples_seen, state.train_time_s)

    def on_step_end(self, state: LoopState, loss: float, lr: float) -> None:
        # Summed in LoopState, not here: a run resumed between two entries must log the same mean.
        state.loss_sum += loss
        state.loss_count += 1
        if state.global_step % self.plan.logging_steps and state.global_step != self.plan.total_steps:
            return
        examples, seconds = state.examples_seen - self.mark[0], state.train_time_s - self.mark[1]
        self.log.write(
            {
                "step": state.global_step,
                "epoch": epoch_of(state, self.plan),
                "loss": state.loss_sum / state.loss_count,
                "lr": lr,
                "examples_per_s": round(examples / seconds, 2) if seconds > 0 else None,
            }
        )
        state.loss_sum, state.loss_count = 0.0, 0
        self.mark = (state.examples_seen, state.train_time_s)


class ProgressBar(Callback):
    """A tqdm bar with loss, lr and examples/s on a terminal; elsewhere (a log file, CI) one plain
    line at every tenth of the run, which a log can hold."""

    LINES = 10

    def __init__(
        self,
        plan: Plan,
        enabled: bool = True,
        echo: Callable[[str], None] = print,
        terminal: bool | None = None,
    ) -> None:
        self.plan, self.enabled, self.echo = plan, enabled, echo
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bar: Any = None

    def on_train_begin(self, state: LoopState) -> None:
        if self.enabled and self.terminal:
            self.bar = tqdm(
                total=self.plan.total_steps, initial=state.global_step, unit="step", dynamic_ncols=True
            )

    def on_step_end(self, state: LoopState, loss: float, lr: float) -> None:
        speed = state.examples_seen / state.train_time_s if state.train_time_s else 0.0
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", ex_s=f"{speed:.0f}", refresh=False)
            self.bar.update(1)
            return
        total, step = self.plan.total_steps, state.global_step
        every = max(1, -(-total // self.LINES))
        if self.enabled and (step % every == 0 or step == total):
            self.echo(
                f"step {step}/{total} ({100 * step // total}%): loss {loss:.4f}, lr {lr:.2e}, "
                f"{speed:.0f} examples/s"
            )

    def on_train_end(self, state: LoopState) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_interrupt(self, state: LoopState) -> None:
        self.on_train_end(state)


class Evaluator(Callback):
    """Evaluate on schedule, track the best checkpoint by one metric, stop early on patience."""

    def __init__(
        self,
        evaluate: Callable[[], dict[str, float]],
        save_best: Callable[[], None],
        log: RunLog,
        plan: Plan,
        metric: str,
        greater_is_better: bool = True,
        patience: int | None = None,
        echo: Callable[[str], None] = print,
        at_start: bool = False,
        judge: Callable[[int, float], bool] | None = None,
    ) -> None:
        self.evaluate, self.save_best, self.log, self.plan = evaluate, save_best, log, plan
        self.metric, self.greater, self.patience, self.echo = metric, greater_is_better, patience, echo
        self.at_start = at_start
        self.judge = judge  # (step, value) -> stop: a search's pruner

    def on_train_begin(self, state: LoopState) -> None:
        # Step 0: the untrained head, the start of every eval curve. Logged, never "best".
        if self.at_start and state.global_step == 0 and state.last_eval_step < 0:
            self._run(state, select=False)

    def on_step_end(self, state: LoopState, loss: float, lr: float) -> None:
        if self.plan.eval_steps and state.global_step % self.plan.eval_steps == 0:
            self._run(state)

    def on_epoch_end(self, state: LoopState) -> None:
        if not self.plan.eval_steps:
            self._run(state)

    def on_train_end(self, state: LoopState) -> None:
        # The final weights are always a candidate, whatever the schedule.
        if state.last_eval_step != state.global_step:
            self._run(state)

    def _run(self, state: LoopState, select: bool = True) -> None:
        started = time.perf_counter()
        metrics = self.evaluate()
        seconds = time.perf_counter() - started
        state.last_eval_step = state.global_step
        entry = {"step": state.global_step, "epoch": epoch_of(state, self.plan)}
        entry.update({f"eval_{k}": v for k, v in metrics.items()})
        entry["eval_runtime_s"] = round(seconds, 3)
        self.log.write(entry)
        value = metrics.get(self.metric)
        if value is None or math.isnan(value):
            raise KeyError(f"metric '{self.metric}' not among the eval metrics {sorted(metrics)}")
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.echo(f"step {state.global_step} eval: {shown}")
        if not select:
            return
        if self._improves(value, state.best_metric):
            state.best_metric, state.best_step = value, state.global_step
            state.evals_without_improvement = 0
            self.save_best()
        else:
            state.evals_without_improvement += 1
            if self.patience and state.evals_without_improvement >= self.patience:
                self.echo(f"early stopping: {self.metric} did not improve in {self.patience} evaluations")
                state.should_stop = True
        if self.judge is not None and self.judge(state.global_step, value):
            self.echo(
                f"stopped at step {state.global_step}: the search's pruner judged {self.metric} too low"
            )
            state.should_stop = True

    def _improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.greater else value < best


class Checkpointer(Callback):
    """Resumable checkpoints every `save_steps`, at each epoch end, and when a signal stops the run.

    Never twice for one step: rewriting a published checkpoint would leave a moment without it.
    (A checkpoint saved just before an epoch end resumes into that epoch end, which is replayed.)
    """

    def __init__(self, save: Callable[[int], None], plan: Plan) -> None:
        self.save, self.plan = save, plan
        self.last_saved = -1

    def on_train_begin(self, state: LoopState) -> None:
        self.last_saved = state.global_step  # a resumed run starts from a saved step

    def on_step_end(self, state: LoopState, loss: float, lr: float) -> None:
        if self.plan.save_steps and state.global_step % self.plan.save_steps == 0:
            self._save(state)

    def on_epoch_end(self, state: LoopState) -> None:
        self._save(state)

    def on_interrupt(self, state: LoopState) -> None:
        self._save(state, final_too=True)

    def _save(self, state: LoopState, final_too: bool = False) -> None:
        if not final_too and (state.global_step >= self.plan.total_steps or state.should_stop):
            return  # training ends here; the final model is saved by the caller
        if self.last_saved != state.global_step:
            self.save(state.global_step)
            self.last_saved = state.global_step
