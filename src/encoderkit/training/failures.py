"""A started run that fails for a reason outside the code (the loss diverged, the disk is full or
read-only) ends with one `error:` line that says what survived and how to go on from it.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from encoderkit.errors import UserError
from encoderkit.training import checkpoints
from encoderkit.training.loop import Diverged

STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)


@contextmanager
def explained(run_dir: Path, lr: float | None) -> Iterator[None]:
    """Turn a diverged loss or a failed write inside the block into a UserError.

    The run folder keeps its checkpoints and gets no metrics.json: it stays an unfinished run.
    """
    try:
        yield
    except Diverged as exc:
        checkpoint = checkpoints.latest_checkpoint(run_dir)
        advice = f"try a lower --lr (this run: {lr:g})" if lr else "try a lower --lr"
        if checkpoint is None:
            raise UserError(f"{exc}, before any checkpoint; {advice} and --overwrite") from None
        raise UserError(
            f"{exc}; the last good checkpoint is kept: {checkpoint}; {advice} and add --resume "
            "--resume-force to continue from it, or --overwrite to start again"
        ) from None
    except Exception as exc:
        cause = storage_failure(exc, run_dir)
        if cause is None:
            raise
        checkpoint = checkpoints.latest_checkpoint(run_dir)
        kept = f"the last good checkpoint is kept: {checkpoint}" if checkpoint else "no checkpoint yet"
        raise UserError(
            f"{cause.filename or run_dir}: {cause.strerror} while writing the run; {kept}; make room "
            "(or fix the folder), then add --resume to the same command"
        ) from None


def storage_failure(exc: Exception, run_dir: Path) -> OSError | None:
    """The OSError behind `exc` when it is a storage problem (full disk, quota, read-only), else None."""
    if isinstance(exc, OSError):
        return exc if exc.errno in STORAGE_ERRNOS else None
    # torch (RuntimeError) and safetensors (SafetensorError) put a write failure in their own words.
    if isinstance(exc, RuntimeError) or type(exc).__name__ == "SafetensorError":
        cause = checkpoints.storage_error(run_dir)
        return cause if cause is not None and cause.errno in STORAGE_ERRNOS else None
    return None
