"""The one exception type that means "the user's input is wrong".

The CLI turns a UserError into exit code 2 and a single `error: ...` line on stderr, with no
traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input or bad usage. The message names the file and line, or the field, at fault."""


def at(path: str | Path, line: int | None = None) -> str:
    """Format a location the way compilers do: `file:line`, or just `file`."""
    return f"{path}:{line}" if line is not None else str(path)
