"""Reading a data file's text: gzip by magic bytes or suffix, UTF-8 with or without a BOM."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from encoderkit.errors import UserError, at

GZIP_MAGIC = b"\x1f\x8b"


def read_text(path: Path) -> str:
    """The whole text of `path`, gunzipped when needed.

    Raises:
        UserError: missing file, a folder, unreadable, corrupt gzip, or not UTF-8 (with the line).
    """
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if raw.startswith(GZIP_MAGIC) or path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"{path}: corrupt gzip data ({exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{at(path, line)}: not valid UTF-8 (byte {raw[exc.start]:#04x})") from None
