"""Callbacks whose state must survive a resume: checkpoint cadence and the logged loss window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoderkit.training.callbacks import Checkpointer, LossLogger, RunLog
from encoderkit.training.loop import Diverged, _check_finite
from encoderkit.training.state import LoopState, make_plan

# 40 examples, batch 8: 5 steps an epoch, 10 in all.
PLAN = make_plan(40, 8, 1, 2, None, 2, None, 2)


def test_checkpoints_every_save_steps_and_epoch_end_never_twice_for_one_step() -> None:
    saved: list[int] = []
    checkpointer, state = Checkpointer(saved.append, PLAN), LoopState()
    checkpointer.on_train_begin(state)
    for step in range(1, PLAN.total_steps + 1):
        state.global_step = step
        checkpointer.on_step_end(state, 0.5, 1e-3)
        if step % PLAN.steps_per_epoch == 0:
            checkpointer.on_epoch_end(state)
    # 10 is the end: the final model is saved instead.
    assert saved == [2, 4, 5, 6, 8]


def test_a_signal_checkpoints_even_the_last_step_but_not_a_saved_one_again() -> None:
    saved: list[int] = []
    checkpointer, state = Checkpointer(saved.append, PLAN), LoopState(global_step=4)
    checkpointer.on_train_begin(state)  # resumed from step 4
    checkpointer.on_interrupt(state)
    state.global_step = PLAN.total_steps
    checkpointer.on_interrupt(state)
    assert saved == [PLAN.total_steps]


def test_the_loss_window_between_log_entries_survives_a_resume(tmp_path: Path) -> None:
    losses = [0.9, 0.7, 0.6, 0.4]

    def log_steps(state: LoopState, steps: range) -> None:
        logger = LossLogger(RunLog(tmp_path / "log.jsonl", state), PLAN)
        logger.on_train_begin(state)
        for step in steps:
            state.global_step = step
            logger.on_step_end(state, losses[step - 1], 1e-3)

    state = LoopState()
    log_steps(state, range(1, 4))  # logs step 2; step 3 is pending when the run stops
    resumed = LoopState()
    resumed.load_state_dict(json.loads(json.dumps(state.state_dict())))  # as a checkpoint keeps it
    log_steps(resumed, range(4, 5))
    entries = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(e["step"], e["loss"]) for e in entries] == [(2, (0.9 + 0.7) / 2), (4, (0.6 + 0.4) / 2)]


def test_a_non_finite_loss_or_gradient_norm_stops_with_its_step() -> None:
    _check_finite(3, 0.5, 1.0)
    _check_finite(3, 0.5, None)
    with pytest.raises(Diverged, match=r"^training loss is nan at step 3$"):
        _check_finite(3, float("nan"), 1.0)
    with pytest.raises(Diverged, match=r"^training gradient norm is inf at step 4$"):
        _check_finite(4, 0.5, float("inf"))


# --- the learning check (training/watch.py) ---------------------------------------------------------


def test_the_learning_check_is_silent_on_runs_that_learn() -> None:
    from encoderkit.training.watch import eval_warning, loss_warning, steps_warning

    # The demo: flat through its warm-up-heavy first epoch, then the loss falls and accuracy rises.
    assert eval_warning([(0, 0.5), (20, 0.5), (40, 0.76), (80, 0.825)], "accuracy", greater=True) is None
    assert eval_warning([(0, 0.45), (6, 1.0)], "accuracy", greater=True) is None  # 40 rows reaching 1.0
    assert eval_warning([(0, 3.1), (10, 2.2)], "perplexity", greater=False) is None
    first_epoch_flat = [(s, 0.694 + 0.01 * (s % 2)) for s in range(1, 21)] + [
        (s, 0.06) for s in range(21, 81)
    ]
    assert loss_warning(first_epoch_flat, warmup_steps=8) is None
    assert steps_warning(80, 320, 16, 4) is None


def test_the_learning_check_is_loud_on_a_run_too_short_to_learn() -> None:
    """40 rows with the defaults: 6 steps, loss 0.697 -> 0.641, every review `negative`."""
    from encoderkit.training.watch import eval_warning, loss_warning, steps_warning

    steps = steps_warning(6, 40, 32, 3)
    assert steps is not None and "only 6 optimizer steps (40 examples, batch 32, 3 epochs)" in steps
    assert "--epochs" in steps and "--batch-size" in steps
    text = eval_warning([(0, 0.5), (2, 0.5), (4, 0.5), (6, 0.5)], "accuracy", greater=True)
    assert text is not None and "never beat the untrained model's (0.5000 at step 0, best 0.5000)" in text
    losses = list(zip(range(1, 7), [0.697, 0.69, 0.70, 0.66, 0.65, 0.641], strict=True))
    text = loss_warning(losses, warmup_steps=1)
    assert text is not None and "barely fell after warm-up" in text
    assert eval_warning([(5, 0.5)], "accuracy", greater=True) is None  # no step-0 baseline: no verdict


def test_progress_off_a_terminal_is_one_line_a_tenth() -> None:
    from encoderkit.training.callbacks import ProgressBar

    lines: list[str] = []
    plan = make_plan(25 * 8, 8, 1, 1, None, None, None, None)  # 25 steps
    bar = ProgressBar(plan, echo=lines.append, terminal=False)
    state = LoopState()
    bar.on_train_begin(state)
    for step in range(1, 26):
        state.global_step, state.examples_seen, state.train_time_s = step, 8 * step, 0.5 * step
        bar.on_step_end(state, loss=1.0 / step, lr=1e-4)
    assert [line.split(":")[0] for line in lines] == [
        f"step {s}/25 ({4 * s}%)" for s in (3, 6, 9, 12, 15, 18, 21, 24, 25)
    ]
    assert lines[-1] == "step 25/25 (100%): loss 0.0400, lr 1.00e-04, 16 examples/s"
    silent: list[str] = []
    other = ProgressBar(plan, enabled=False, echo=silent.append, terminal=False)  # a non-main process
    other.on_step_end(state, loss=0.1, lr=1e-4)
    assert silent == []
