"""The training loop: one function, read top to bottom.

Accelerate places tensors, runs autocast and the fp16 grad scaler, clips, and saves/restores the
full state (model, optimizer, scheduler, RNG, LoopState). Gradient accumulation is done here by
hand: each optimizer step takes `grad_accum` micro-batches and weights each micro-batch loss by
its share of the step's examples, so a step means the same whatever the micro-batch size.
Under DDP (torchrun / accelerate launch) `batch_size` stays the global batch: each process trains
on its token-balanced share of the same global step (sharding.py), so the step, the schedule and
the logged loss mean the same at any world size.
Side effects (logs, progress bar, evaluation, checkpoints, early stopping) are callbacks.
A nan/inf loss stops the run before the weights change; SIGINT/SIGTERM stop it at a step boundary
with a checkpoint (signals.py); faults.py holds the hooks the reliability tests use.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from accelerate import Accelerator

from encoderkit.features.encoded import Encoded
from encoderkit.training import faults
from encoderkit.training.callbacks import Callback
from encoderkit.training.sharding import shard_step
from encoderkit.training.signals import Interrupted, stop_between_steps
from encoderkit.training.state import LoopState, Plan

# (feature indices, width to pad to or None) -> a batch for the model: padded or packed (run.py).
MakeBatch = Callable[[list[int], "int | None"], dict[str, Any]]
# Feature indices -> what the task's loss averages over in them: examples, or labelled tokens.
LossUnits = Callable[[Sequence[int]], int]
# epoch -> that epoch's micro-batches (feature indices), a pure function of the epoch (run.py).
EpochBatches = Callable[[int], list[list[int]]]


class Diverged(Exception):
    """The loss or the gradient norm of an optimizer step is nan or inf."""

    def __init__(self, step: int, what: str, value: float) -> None:
        super().__init__(f"training {what} is {value} at step {step}")
        self.step = step


def fit(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    data: Encoded,
    plan: Plan,
    state: LoopState,
    callbacks: Sequence[Callback],
    *,
    epoch_batches: EpochBatches,
    grad_accum: int,
    max_grad_norm: float,
    make_batch: MakeBatch,
    loss_units: LossUnits,
) -> LoopState:
    """Train until `plan.total_steps` or a callback sets `state.should_stop`; return the state.

    Raises:
        Diverged: a nan/inf loss or gradient norm, found before it reached the weights.
        Interrupted: SIGINT/SIGTERM; the step in progress was finished and a checkpoint saved.
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    lengths = data.lengths  # a property that walks every feature: once, not once per step
    for cb in callbacks:
        cb.on_train_begin(state)
    model.train()
    with stop_between_steps() as stop:
        interrupted = _anyone(accelerator, stop.requested)
        while state.global_step < plan.total_steps and not state.should_stop and not interrupted:
            batches = epoch_batches(state.epoch)
            # Resume mid-epoch: the order is recomputed from the epoch; skip what was done.
            for first in range(state.batch_in_epoch, len(batches), grad_accum):
                group = batches[first : first + grad_accum]
                started = time.perf_counter()
                mine = shard_step(group, lengths, rank, world)
                loss = _optimizer_step(
                    accelerator,
                    model,
                    optimizer,
                    scheduler,
                    make_batch,
                    loss_units,
                    mine,
                    loss_units([i for b in group for i in b]),
                    max_grad_norm,
                    step=state.global_step + 1,
                    spare=group[0][0],
                )
                state.train_time_s += time.perf_counter() - started
                state.global_step += 1
                state.batch_in_epoch = first + len(group)
                state.examples_seen += sum(len(b) for b in group)
                for cb in callbacks:
                    cb.on_step_end(state, loss, scheduler.get_last_lr()[0])
                faults.kill_point("step", state.global_step)
                faults.pause_at(state.global_step, lambda: stop.requested)
                interrupted = _anyone(accelerator, stop.requested)
                if state.global_step >= plan.total_steps or state.should_stop or interrupted:
                    break
            else:  # the epoch ran to its end
                state.epoch += 1
                state.batch_in_epoch = 0
                for cb in callbacks:
                    cb.on_epoch_end(state)
                interrupted = _anyone(accelerator, stop.requested)
    if interrupted:
        for cb in callbacks:
            cb.on_interrupt(state)  # the checkpointer saves this step
        # A process the signal did not reach stops with the others, as if it had had SIGTERM.
        raise Interrupted(stop.signum or signal.SIGTERM, state.global_step)
    for cb in callbacks:
        cb.on_train_end(state)
    return state


def _optimizer_step(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    make_batch: MakeBatch,
    loss_units: LossUnits,
    group: list[tuple[list[int], int | None]],
    total: int,
    max_grad_norm: float,
    step: int,
    spare: int,
) -> float:
    """Forward/backward over this process's micro-batches of one step, then clip, step and zero.

    `total`: the loss units (examples, or labelled tokens for a per-token loss) in the whole
    (global) step; each micro-batch's mean loss is weighted by its share of them, so the step's
    loss is the mean over the step whatever the micro-batches and processes. Returns the step's
    loss over all processes.
    """
    world = accelerator.num_processes
    # A process without an example in the last, uneven step still joins DDP's gradient all-reduce
    # (or the others would wait forever): one real example with weight 0.
    micro = [(indices, width, loss_units(indices)) for indices, width in group] or [([spare], None, 0)]
    total = max(total, 1)  # a step with nothing to score (no token masked) adds nothing
    step_loss = 0.0
    for i, (indices, width, weight) in enumerate(micro):
        batch = {k: _to(v, accelerator.device) for k, v in make_batch(indices, width).items()}
        # Only the last micro-batch synchronises gradients across processes.
        sync = accelerator.no_sync(model) if i < len(micro) - 1 else nullcontext()
        with sync:
            # x world: DDP averages the processes' gradients, the 1-process step sums them.
            loss = model(batch) * (weight * world / total)  # a TrainingModel: forward is the loss
            if faults.nan_loss_at(step):
                loss = loss * math.nan
            accelerator.backward(loss)
        step_loss += loss.detach().float().item() / world
    if world > 1:  # every process logs, and checks for nan, the same global loss
        step_loss = float(accelerator.reduce(torch.tensor(step_loss, device=accelerator.device), "sum"))
    norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm) if max_grad_norm > 0 else None
    # fp16: an overflowing gradient is routine (the grad scaler skips that step), so only the loss counts.
    grad_norm = float(norm) if norm is not None and accelerator.scaler is None else None
    # Checked before the update, so no checkpoint ever holds weights that a nan/inf step produced.
    _check_finite(step, step_loss, grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss


def _to(value: Any, device: torch.device) -> Any:
    """Tensors to the device (on CUDA they come pinned, so the copy does not block); ints stay."""
    return value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value


def _anyone(accelerator: Accelerator, flag: bool) -> bool:
    """Whether `flag` is set on any process: a signal may reach the processes at different steps,
    and they must all stop after the same one (the checkpoint is saved together)."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor(int(flag), device=accelerator.device), "sum") > 0)


def _check_finite(step: int, loss: float, grad_norm: float | None) -> None:
    if not math.isfinite(loss):
        raise Diverged(step, "loss", loss)
    if grad_norm is not None and not math.isfinite(grad_norm):
        raise Diverged(step, "gradient norm", grad_norm)
