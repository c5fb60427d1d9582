"""One writer per run folder: an exclusive `flock` on DIR/.lock, held for the life of a run.

The kernel drops a flock when its process dies, however it dies (`kill -9` included), so a crashed
run never leaves a stale lock behind; the file it leaves is unlocked and harmless.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from encoderkit.errors import UserError

LOCK_FILE = ".lock"


class RunFolderLock:
    """`with RunFolderLock(run_dir):` creates the folder if needed and holds its lock.

    On exit the lock is released, and the folders the lock created are removed again if they hold
    nothing, so input rejected before training leaves no run folder behind.

    Raises:
        UserError: the folder is a file, cannot be created, or another run holds it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_FILE
        self.created: list[Path] = []  # folders made here, deepest first
        self.fd: int | None = None

    @property
    def existed(self) -> bool:
        """Whether the run folder was there before this lock."""
        return not self.created

    def __enter__(self) -> RunFolderLock:
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise UserError(f"{self.run_dir}: --output exists and is not a folder")
        self.created = _missing_folders(self.run_dir)
        try:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"{self.run_dir}: cannot create the run folder ({exc.strerror})") from None
            self.fd = _lock(self.path)
        except BaseException:
            self._remove_created()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fd is not None:
            # Unlinked while still held: a waiting process then finds a new file (see `_lock`).
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in self.created:
            try:
                folder.rmdir()  # only when empty: never removes what a run wrote
            except OSError:
                break


def _missing_folders(path: Path) -> list[Path]:
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _lock(path: Path) -> int:
    """Open and flock `path` without waiting; write our pid into it. Returns the descriptor."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"{path.parent}: cannot write the run folder ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(
                f"{path.parent}: another encoderkit run is writing this folder (pid {holder})"
            ) from None
        if _is_current(fd, path):
            break
        os.close(fd)  # its holder unlinked it between our open and flock: lock the new file
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _is_current(fd: int, path: Path) -> bool:
    try:
        held, named = os.fstat(fd), path.stat()
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
