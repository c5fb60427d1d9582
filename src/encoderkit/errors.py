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


def brief(value: object, limit: int = 60) -> str:
    """`repr(value)` cut to about `limit` characters, for quoting bad input in a one-line error.

    A hostile file can hold a 50 MB label or an integer too long for `repr` (CPython refuses to
    print ints over 4300 digits), and neither may turn an error message into a crash or a flood.
    """
    try:
        text = repr(value)
    except ValueError:
        text = f"<{type(value).__name__} too long to print>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
