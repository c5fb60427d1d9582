"""The run folder: whether this run may use it, room on its disk, and emptying it for --overwrite.

A run is finished exactly when `metrics.json` exists; it is written atomically after everything it
reports on, so a folder left by a crash never looks finished. What lives under `checkpoints/`
while a run trains is the business of checkpoints.py; the lock, of lock.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from encoderkit.errors import UserError
from encoderkit.training.lock import LOCK_FILE

CHECKPOINTS = "checkpoints"
WEIGHT_BYTES = 4  # fp32 weights and optimizer moments


def claim(output: str | Path, resume: bool, overwrite: bool, existed: bool = True) -> Path:
    """Check that the folder may be used for this run; changes nothing (see `prepare`).

    `existed`: whether the folder was there before this command (its lock may have just made it).
    A `--resume` of an unfinished folder without a checkpoint starts again from step 0.
    """
    run_dir = Path(output)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: --output exists and is not a folder")
    finished = (run_dir / "metrics.json").exists()
    if resume:
        if finished:
            raise UserError(f"{run_dir}: the run already finished; nothing to resume")
        if not existed:
            raise UserError(f"{run_dir}: no checkpoint to resume from (--resume)")
        return run_dir
    if _has_content(run_dir) and not overwrite:
        state = "a finished run" if finished else "an unfinished run (try --resume)"
        raise UserError(f"{run_dir}: --output already holds {state}; pass --overwrite to replace it")
    return run_dir


def prepare(run_dir: Path, overwrite: bool, need_bytes: int) -> None:
    """Make the claimed folder ready: room on its disk for the run, writable, emptied for --overwrite.

    Raises:
        UserError: the folder cannot be written, or its disk lacks the room the run needs.
    """
    # What --overwrite deletes, or the checkpoints a resumed run replaces, makes room too.
    reclaimable = _tree_bytes(run_dir if overwrite else run_dir / CHECKPOINTS)
    check_free_space(run_dir, need_bytes, reclaimable)
    if overwrite:
        for entry in run_dir.iterdir():
            if entry.name != LOCK_FILE:
                remove(entry)
    ensure_writable(run_dir)


def ensure_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot write the run folder ({exc.strerror})") from None


def space_needed(total_params: int, trainable_params: int, keep: int) -> int:
    """Bytes a run needs on disk at its peak, when a new checkpoint is being published.

    Then the `keep` kept checkpoints and the new one coexist, each with the best weights it refers
    to, and the final model comes on top. A checkpoint holds the weights and AdamW's two moments
    of the trainable ones.
    """
    weights = WEIGHT_BYTES * total_params
    checkpoint = weights + 2 * WEIGHT_BYTES * trainable_params
    return (keep + 1) * (checkpoint + weights) + weights


def check_free_space(run_dir: Path, need_bytes: int, reclaimable: int = 0) -> None:
    free = shutil.disk_usage(run_dir).free
    if free + reclaimable < need_bytes:
        raise UserError(
            f"{run_dir}: not enough free disk space: the run needs about {_mb(need_bytes)} for its "
            f"checkpoints and model, {_mb(free + reclaimable)} is free"
        )


def _has_content(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir())


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
