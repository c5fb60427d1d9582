"""The run folder: who may write it, atomic files, and where checkpoints live.

A run is finished exactly when `metrics.json` exists; it is written last and atomically, so a
folder left by a crash never looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from encoderkit.errors import UserError

CHECKPOINTS = "checkpoints"
BEST = "best"  # best weights so far, under checkpoints/
STEP_PREFIX = "step-"


def claim(output: str, resume: bool, overwrite: bool) -> Path:
    """Check that the folder may be used for this run; clear it for --overwrite. Creates nothing."""
    run_dir = Path(output)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: --output exists and is not a folder")
    has_content = run_dir.is_dir() and any(run_dir.iterdir())
    if resume:
        if latest_checkpoint(run_dir) is None:
            raise UserError(f"{run_dir}: no checkpoint to resume from (--resume)")
        if (run_dir / "metrics.json").exists():
            raise UserError(f"{run_dir}: the run already finished; nothing to resume")
        return run_dir
    if has_content and not overwrite:
        state = (
            "a finished run" if (run_dir / "metrics.json").exists() else "an unfinished run (try --resume)"
        )
        raise UserError(f"{run_dir}: --output already holds {state}; pass --overwrite to replace it")
    if has_content:
        shutil.rmtree(run_dir)
    return run_dir


def ensure_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot write the run folder ({exc.strerror})") from None


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"{STEP_PREFIX}{step}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return None
    steps = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)]
    steps = [p for p in steps if p.name[len(STEP_PREFIX) :].isdigit()]
    return max(steps, key=lambda p: int(p.name[len(STEP_PREFIX) :]), default=None)


def publish_checkpoint(tmp: Path, run_dir: Path, step: int, keep: int = 1) -> Path:
    """Move a fully written checkpoint into place, then prune older ones (the newest `keep` stay)."""
    final = checkpoint_dir(run_dir, step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    steps = sorted(
        (p for p in (run_dir / CHECKPOINTS).iterdir() if p.name.startswith(STEP_PREFIX) and p.is_dir()),
        key=lambda p: int(p.name[len(STEP_PREFIX) :]) if p.name[len(STEP_PREFIX) :].isdigit() else -1,
    )
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final
