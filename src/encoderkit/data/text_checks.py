"""What every loader checks before a value can reach a tokenizer, a JSON writer or an error line.

Two kinds of hostile input pass `json.loads` and break later, far from the file and line at fault:
a lone UTF-16 surrogate escape ("\\ud800"), which the Rust tokenizers and UTF-8 writers refuse,
and a text so long that tokenizing it takes minutes and gigabytes.
"""

from __future__ import annotations

import re
from typing import Any

from encoderkit.errors import UserError

# An encoder reads a few thousand characters per window; 1M characters is already ~2000 QA
# windows. Measured on this project's CPU box: a 5 MB text takes ~6 s and ~1 GB to tokenize, so
# a 50 MB line would take minutes and ~10 GB before anything could fail.
MAX_TEXT_CHARS = 1_000_000

_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON can only produce a surrogate from a \uD800-\uDFFF escape; when the raw text has none,
# there is nothing to look for and the walk below is skipped.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def check_text(value: str, where: str) -> str:
    """`value` unchanged, or a UserError at `where` when it is too long or not valid Unicode."""
    if len(value) > MAX_TEXT_CHARS:
        raise UserError(
            f"{where}: text of {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,} "
            "(an encoder reads only the first few thousand)"
        )
    match = _SURROGATE.search(value)
    if match:
        raise UserError(f"{where}: {_surrogate_message(match.group())}")
    return value


def may_hold_surrogates(raw_json: str) -> bool:
    """Cheap test on JSON source text: could parsing it have produced a lone surrogate?"""
    return _SURROGATE_ESCAPE.search(raw_json) is not None


def find_surrogate(value: Any) -> str | None:
    """The JSON path (`a[2].b`) of the first string or key in `value` holding a lone surrogate.

    Iterative, not recursive: `json.loads` accepts nesting close to the recursion limit, and a
    recursive walk from deeper in the stack would overflow it.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if _SURROGATE.search(key):
                    return path
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


def reject_surrogates(value: Any, raw_json: str, where: str) -> None:
    """Raise a UserError naming `where` and the field if parsed JSON holds a lone surrogate."""
    if not may_hold_surrogates(raw_json):
        return
    path = find_surrogate(value)
    if path is not None:
        raise UserError(f"{where}: {path or 'value'}: {_surrogate_message()}")


def _surrogate_message(char: str = "") -> str:
    escape = f" \\u{ord(char):04x}" if char else ""
    return f"a lone UTF-16 surrogate{escape} (half of a pair, not valid Unicode)"
