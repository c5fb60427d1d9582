"""Checkpoints and resume, in one place: what a checkpoint holds, how it is written, how a run resumes.

While a run trains, its folder holds:
    checkpoints/step-N/                   resumable state (Accelerate's save_state: model, optimizer,
                                          scheduler, loop state, RNG of every process) + checkpoint.json
    checkpoints/best/step-B.safetensors   best weights, kept while a checkpoint refers to them
    checkpoints/.tmp-*                    being written; renamed into place only when complete

The life of a checkpoint: `save_checkpoint` (every `--save-steps` and each epoch, from the
Checkpointer callback) writes it beside its final name and `publish_checkpoint` renames it into
place, then prunes to the newest `keep`; `save_best` writes the best weights the same way. On
`--resume`, `check_resume` refuses a checkpoint of another config or data (fingerprint.py), and
`restore` loads the newest one and cuts log.jsonl back to the lines it had logged. The loop then
recomputes the epoch's batch order (a pure function of seed and epoch) and skips the batches
already trained on, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from encoderkit.atomic import write_json
from encoderkit.training import faults
from encoderkit.training.fingerprint import compare
from encoderkit.training.run_folder import CHECKPOINTS, remove

BEST = "best"  # best weights so far, under checkpoints/
STEP_PREFIX = "step-"
TMP_PREFIX = ".tmp-"
META_FILE = "checkpoint.json"  # step, best step and fingerprint of a checkpoint
PROBE_BYTES = 1 << 20


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
    remove(run_dir / CHECKPOINTS)


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
            remove(stale)
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
        remove(tmp)
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


def check_resume(run_dir: Path, current: dict[str, Any], force: bool, echo: Callable[[str], None]) -> None:
    """Refuse to resume from a checkpoint of another config or data (say what differs under `force`)."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is not None:  # none: the run starts again from step 0, nothing to compare
        for change in compare(read_meta(checkpoint), current, force):
            echo(f"warning: --resume-force: {change}")


def restore(
    run_dir: Path, load_state: Callable[[str], Any], world_size: int, barrier: Callable[[], None],
    truncate_log: Callable[[], None] | None, reset: Callable[[], None] | None, echo: Callable[[str], None],
) -> Path | None:  # fmt: skip
    """Load the newest checkpoint with `load_state` (Accelerate's); its path, or None without one.

    Without a checkpoint yet (stopped early), the run starts again from step 0: `reset` discards
    what an earlier attempt left. `truncate_log` cuts log.jsonl back to what the checkpoint had
    logged. Both are None on the processes that do not own the folder.
    """
    checkpoint = latest_checkpoint(run_dir)
    barrier()  # all processes have looked before the main one changes anything
    if checkpoint is None:
        if reset is not None:
            discard_checkpoints(run_dir)
            reset()
        echo(f"no checkpoint in {run_dir} yet: starting again from step 0")
        return None
    saved_world = (read_meta(checkpoint) or {}).get("world_size", 1)
    if saved_world != world_size:
        # The steps are global, so this is still a valid run; only the processes' random
        # streams (dropout) cannot all be restored, so it is no longer exact.
        echo(
            f"warning: {checkpoint} was saved by {saved_world} process(es), resumed with "
            f"{world_size}: the random state is not restored exactly"
        )
    load_state(str(checkpoint))
    if truncate_log is not None:
        truncate_log()
    return checkpoint
