"""The training loop: one function, read top to bottom.

Accelerate places tensors, runs autocast and the fp16 grad scaler, clips, and saves/restores the
full state (model, optimizer, scheduler, RNG, LoopState). Gradient accumulation is done here by
hand: each optimizer step takes `grad_accum` micro-batches and weights each micro-batch loss by
its share of the step's examples, so a step means the same whatever the micro-batch size.
Side effects (logs, progress bar, evaluation, checkpoints, early stopping) are callbacks.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from accelerate import Accelerator

from encoderkit.training.batching import Encoded, collate, length_grouped_batches
from encoderkit.training.callbacks import Callback
from encoderkit.training.state import LoopState, Plan

# Fault injection for the resume tests: the process kills itself (as `kill -9` would) right after
# this optimizer step and its callbacks. Never set in normal use.
KILL_AT_STEP_ENV = "ENCODERKIT_KILL_AT_STEP"


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
    batch_size: int,
    grad_accum: int,
    seed: int,
    group_by_length: bool,
    max_grad_norm: float,
    pad_id: int,
    pad_left: bool,
) -> LoopState:
    """Train until `plan.total_steps` or a callback sets `state.should_stop`; return the state."""
    micro_size = batch_size // grad_accum
    multiple_of = 8 if accelerator.device.type == "cuda" else 1
    kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "0"))
    for cb in callbacks:
        cb.on_train_begin(state)
    model.train()
    while state.global_step < plan.total_steps and not state.should_stop:
        batches = length_grouped_batches(data.lengths, micro_size, seed, state.epoch, group_by_length)
        # Resume mid-epoch: the order is recomputed from (seed, epoch); skip what was done.
        for first in range(state.batch_in_epoch, len(batches), grad_accum):
            group = batches[first : first + grad_accum]
            started = time.perf_counter()
            loss = _optimizer_step(
                accelerator,
                model,
                optimizer,
                scheduler,
                data,
                group,
                max_grad_norm,
                pad_id,
                pad_left,
                multiple_of,
            )
            state.train_time_s += time.perf_counter() - started
            state.global_step += 1
            state.batch_in_epoch = first + len(group)
            state.examples_seen += sum(len(b) for b in group)
            for cb in callbacks:
                cb.on_step_end(state, loss, scheduler.get_last_lr()[0])
            if state.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if state.global_step >= plan.total_steps or state.should_stop:
                break
        else:  # the epoch ran to its end
            state.epoch += 1
            state.batch_in_epoch = 0
            for cb in callbacks:
                cb.on_epoch_end(state)
    for cb in callbacks:
        cb.on_train_end(state)
    return state


def _optimizer_step(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    data: Encoded,
    group: list[list[int]],
    max_grad_norm: float,
    pad_id: int,
    pad_left: bool,
    multiple_of: int,
) -> float:
    """Forward/backward over the micro-batches of one step, then clip, step and zero. Returns the loss."""
    total = sum(len(b) for b in group)
    step_loss = 0.0
    for i, indices in enumerate(group):
        batch = collate(data, indices, pad_id, pad_left, multiple_of)
        batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
        # Only the last micro-batch synchronises gradients across processes.
        sync = accelerator.no_sync(model) if i < len(group) - 1 else nullcontext()
        with sync:
            loss = model(**batch).loss * (len(indices) / total)
            accelerator.backward(loss)
        step_loss += loss.detach().float().item()
    if max_grad_norm > 0:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss
