"""The one way encoderkit writes a file that others may read at any moment.

The content goes to a temporary file in the same folder (same file system, so the rename is
atomic), then replaces the target: a reader, a crash or a second process writing the same path
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: Path, data: str | bytes | Callable[[IO[bytes]], Any], mode: int = 0o644) -> None:
    """Write `data` to `path` atomically, readable by others (`mode`).

    `data` is text (written as UTF-8), bytes, or a function that writes into the open binary
    file (a pickle streamed without a second copy in memory).

    Raises:
        OSError: the folder cannot be written (the temporary file is removed); and whatever a
            writer function raises.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            os.fchmod(f.fileno(), mode)  # mkstemp makes it private (0600); outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON with a final newline, written atomically."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")
