"""Who this process is in a `torchrun` / `accelerate launch` job, read before anything starts.

The launchers export RANK, WORLD_SIZE and LOCAL_RANK; a plain `encoderkit train` has none and is
world 1, rank 0. Reading them from the environment (rather than from an Accelerator) lets `train()`
reject an inconsistent launch, and let only rank 0 take the run-folder lock, before the process
group exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from encoderkit.errors import UserError


@dataclass(frozen=True)
class Launch:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_from_env(env: dict[str, str] | None = None) -> Launch:
    env = dict(os.environ) if env is None else env
    return Launch(rank=int(env.get("RANK", 0)), world=int(env.get("WORLD_SIZE", 1)))


def check_launch(batch_size: int, grad_accum: int, world: int) -> None:
    """The global-batch rule: `batch_size` examples per optimizer step at any world size, each
    process taking batch_size / world of them in `grad_accum` micro-batches.

    Raises:
        UserError: the batch cannot be split evenly over the processes and micro-batches.
    """
    if batch_size % (world * grad_accum):
        raise UserError(
            f"field 'batch_size': {batch_size} is not divisible by world size {world} x "
            f"grad_accum {grad_accum} (each process takes batch_size / world examples per step)"
        )


def check_data(num_train: int, world: int) -> None:
    """Raises UserError when some process would have no training example at all."""
    if num_train < world:
        raise UserError(
            f"field 'train': {num_train} training example(s) for world size {world}: "
            "every process needs at least one"
        )


def check_world(processes: int, world: int) -> None:
    """Raises UserError when Accelerate did not join the launcher's process group."""
    if processes != world:
        raise UserError(
            f"launched as {world} processes (WORLD_SIZE) but Accelerate set up {processes}: "
            "start with `torchrun` or `accelerate launch` on a machine whose devices it can use"
        )
