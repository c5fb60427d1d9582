"""The run folder: who may write it, atomic files, and where checkpoints live.

A run is finished exactly when `metrics.json` exists; it is written atomically after everything it
reports on, so a folder left by a crash never looks finished.

While a run trains:
    .lock                                 held by the running process (lock.py)
    checkpoints/step-N/                   resumable state + checkpoint.json; the newest `keep` stay
    checkpoints/best/step-B.safetensors   best weights, kept while a checkpoint refers to them
    checkpoints/.tmp-*                    being written; renamed into place only when complete
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from encoderkit.errors import UserError
from encoderkit.training import faults
from encoderkit.training.lock import LOCK_FILE

CHECKPOINTS = "checkpoints"
BEST = "best"  # best weights so far, under checkpoints/
STEP_PREFIX = "step-"
TMP_PREFIX = ".tmp-"
META_FILE = "checkpoint.json"  # step, best step and fingerprint of a checkpoint
WEIGHT_BYTES = 4  # fp32 weights and optimizer moments
PROBE_BYTES = 1 << 20


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
                _remove(entry)
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


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"{STEP_PREFIX}{step}"


def best_weights(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / BEST / f"{STEP_PREFIX}{step}.safetensors"


def latest_checkpoint(run_dir: Path) -> Path | None:
    steps = _step_dirs(run_dir / CHECKPOINTS)
    return steps[-1] if steps else None


def read_meta(checkpoint: Path) -> dict[str, Any] | None:
    """The checkpoint.json of a checkpoint, or None for a checkpoint written without one."""
    try:
        meta = json.loads((checkpoint / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def discard_checkpoints(run_dir: Path) -> None:
    """Before a run starts again from step 0: what an earlier attempt left is of no use."""
    _remove(run_dir / CHECKPOINTS)


def save_checkpoint(
    run_dir: Path,
    step: int,
    write: Callable[[Path], None],
    meta: dict[str, Any],
    keep: int = 1,
    main: bool = True,
    barrier: Callable[[], None] = lambda: None,
) -> Path:
    """`write(folder)` into a temporary folder, add checkpoint.json, sync, rename into place, prune.

    A crash at any moment leaves the previous checkpoint complete. A failed write removes the
    temporary folder and raises; a full disk as OSError, whatever the writer called it.
    Distributed: every process calls this and `write`s (each its own RNG state); only the `main`
    one prepares, completes and publishes, with `barrier`s so no process writes into a folder
    being removed or renamed.
    """
    root = run_dir / CHECKPOINTS
    tmp = root / f"{TMP_PREFIX}{STEP_PREFIX}{step}"
    if main:
        root.mkdir(exist_ok=True)
        for stale in root.glob(f"{TMP_PREFIX}*"):  # left by a crash during an earlier save
            _remove(stale)
    barrier()
    if not main:
        write(tmp)
        barrier()  # the main process completes and publishes it
        barrier()
        return checkpoint_dir(run_dir, step)
    with _removed_on_failure(tmp):
        faults.fill_disk_at(step)
        write(tmp)
        barrier()  # every process's part is in `tmp`
        write_json(tmp / META_FILE, {"step": step, **meta})
        _fsync_tree(tmp)
        faults.kill_point("checkpoint", step)
    final = publish_checkpoint(tmp, run_dir, step, keep)
    barrier()
    return final


def publish_checkpoint(tmp: Path, run_dir: Path, step: int, keep: int = 1) -> Path:
    """Move a complete checkpoint into place, then prune the older ones and unreferenced best weights."""
    final = checkpoint_dir(run_dir, step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(final.parent)
    faults.kill_point("publish", step)
    steps = _step_dirs(run_dir / CHECKPOINTS)
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    referred = {(read_meta(kept) or {}).get("best_step") for kept in steps[-keep:]}
    for weights in (run_dir / CHECKPOINTS / BEST).glob(f"{STEP_PREFIX}*.safetensors"):
        if _step(weights.name.removesuffix(".safetensors")) not in referred:
            weights.unlink(missing_ok=True)
    return final


def save_best(run_dir: Path, step: int, write: Callable[[Path], None]) -> Path:
    """`write(file)` the best weights of `step` to a temporary file, then rename it into place."""
    path = best_weights(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    with _removed_on_failure(tmp):
        write(tmp)
        faults.kill_point("best", step)
    os.replace(tmp, path)
    return path


def storage_error(folder: Path) -> OSError | None:
    """The error that writing a little (PROBE_BYTES) into `folder` gives now, if any.

    torch and safetensors report a full disk in their own words ("unexpected pos 576 vs 534"),
    so after a failed write the OS is asked directly: ENOSPC, EDQUOT, EFBIG, EROFS, ...
    """
    probe = folder / f"{TMP_PREFIX}probe"
    try:
        with probe.open("wb") as f:
            f.write(bytes(PROBE_BYTES))
    except OSError as exc:
        return exc
    finally:
        with suppress(OSError):
            probe.unlink(missing_ok=True)
    return None


@contextmanager
def _removed_on_failure(tmp: Path) -> Iterator[None]:
    """Remove a half-written `tmp` when its writer fails; re-raise a full disk as its OSError."""
    try:
        yield
    except Exception as exc:
        # Asked before removing `tmp`, which frees the space again.
        cause = None if isinstance(exc, OSError) else storage_error(tmp.parent)
        _remove(tmp)
        if cause is not None:
            raise OSError(cause.errno, cause.strerror, str(tmp)) from exc
        raise


def _step(name: str) -> int | None:
    digits = name.removeprefix(STEP_PREFIX)
    return int(digits) if name.startswith(STEP_PREFIX) and digits.isdigit() else None


def _step_dirs(root: Path) -> list[Path]:
    """The published checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    steps = [p for p in root.iterdir() if p.is_dir() and _step(p.name) is not None]
    return sorted(steps, key=lambda p: _step(p.name) or 0)


def _has_content(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _fsync_tree(folder: Path) -> None:
    """Flush a checkpoint to the disk before its rename publishes it: after a power cut, a
    published checkpoint must not turn out to hold empty files."""
    for path in folder.rglob("*"):
        if path.is_file():
            _fsync(path)
    _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"
