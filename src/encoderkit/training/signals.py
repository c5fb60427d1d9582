"""SIGINT/SIGTERM: finish the optimizer step, save a checkpoint, exit with 130/143 (128 + signal).

During the training steps a first signal only asks the loop to stop at the next step boundary; a
second one stops at once (the newest complete checkpoint stays on disk either way). Outside the
steps SIGTERM raises like Ctrl-C does, so the run folder lock and cleanup still run. A signal the
parent set to be ignored (`nohup`, `cmd &` in a script) stays ignored.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], None]


class Interrupted(KeyboardInterrupt):
    """Ends the command after a signal; the CLI prints it and exits with `exit_code`."""

    def __init__(self, signum: int, step: int | None = None) -> None:
        self.signum, self.step = signum, step
        name = signal.Signals(signum).name
        where = "" if step is None else f" after step {step}, checkpoint saved"
        super().__init__(f"stopped by {name}{where}; add --resume to the same command to continue")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class StopRequest:
    """Set by the signal handler; read by the loop between optimizer steps."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_between_steps() -> Iterator[StopRequest]:
    """While active, SIGINT/SIGTERM set the returned request instead of stopping the process."""
    request = StopRequest()

    def handle(signum: int, frame: FrameType | None) -> None:
        if request.requested:
            raise Interrupted(signum)
        request.signum = signum
        name = signal.Signals(signum).name
        print(f"{name}: saving a checkpoint after this step (send it again to stop at once)", file=sys.stderr)

    with _handlers(handle, STOP_SIGNALS):
        yield request


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Interrupted (as SIGINT raises KeyboardInterrupt) instead of killing outright."""

    def handle(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    with _handlers(handle, (signal.SIGTERM,)):
        yield


@contextmanager
def _handlers(handler: Handler, signums: tuple[signal.Signals, ...]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a run in a thread keeps the defaults
        return
    previous = {}
    for signum in signums:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
