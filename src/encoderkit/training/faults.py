"""Fault injection for the reliability tests: environment variables that make a run fail on cue.

Never set in normal use. Each names an exact place in a run, so a test can kill, poison, starve or
pause a run there and then check what the run folder holds and what `--resume` makes of it.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Callable

# "<point>:<step>" (points: step, eval, best, checkpoint, publish) or "finish": the process kills
# itself there with SIGKILL, as `kill -9` would. See the call sites of `kill_point`. `tune`:
# "trial:<k>", at trial k's first evaluation (mid-run: its folder holds a checkpoint-less run).
KILL_AT_ENV = "ENCODERKIT_KILL_AT"
KILL_AT_STEP_ENV = "ENCODERKIT_KILL_AT_STEP"  # N: the same as ENCODERKIT_KILL_AT=step:N
NAN_AT_STEP_ENV = "ENCODERKIT_NAN_AT_STEP"  # the loss of optimizer step N becomes nan
# From the checkpoint of step N on, every file write past 16 KiB fails (RLIMIT_FSIZE) as it would on
# a full disk: torch and safetensors fail in their own words, which is what must be handled.
DISK_FULL_AT_STEP_ENV = "ENCODERKIT_DISK_FULL_AT_STEP"
DISK_FULL_BYTES = 16 * 1024
PAUSE_AT_STEP_ENV = "ENCODERKIT_PAUSE_AT_STEP"  # after step N, wait (at most PAUSE_S) for a signal
PAUSE_S = 120.0


def _at(name: str, step: int) -> bool:
    return os.environ.get(name) == str(step)


def kill_point(point: str, step: int | None = None) -> None:
    """Die here, at once and without cleanup, when ENCODERKIT_KILL_AT names this point."""
    here = point if step is None else f"{point}:{step}"
    legacy = point == "step" and step is not None and _at(KILL_AT_STEP_ENV, step)
    if os.environ.get(KILL_AT_ENV) == here or legacy:
        os.kill(os.getpid(), signal.SIGKILL)


def nan_loss_at(step: int) -> bool:
    return _at(NAN_AT_STEP_ENV, step)


def fill_disk_at(step: int) -> None:
    """From here on, file writes past DISK_FULL_BYTES fail with EFBIG (the signal is ignored)."""
    if _at(DISK_FULL_AT_STEP_ENV, step):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (DISK_FULL_BYTES, hard))


def pause_at(step: int, released: Callable[[], bool]) -> None:
    """Hold the run after `step` until `released()` (a stop signal arrived) or PAUSE_S passed."""
    if _at(PAUSE_AT_STEP_ENV, step):
        deadline = time.monotonic() + PAUSE_S
        while not released() and time.monotonic() < deadline:
            time.sleep(0.02)
