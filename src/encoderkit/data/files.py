"""Reading a data file's text: gzip by magic bytes or suffix, UTF-8 with or without a BOM, and JSON.

Everything a hostile file can do here ends in a UserError naming the file (and the line where
there is one): a corrupt or bomb-sized gzip, bad UTF-8, NUL bytes, and JSON that is invalid,
nested too deeply or holds a number too long to convert.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any

from encoderkit.errors import UserError, at

GZIP_MAGIC = b"\x1f\x8b"
# Data is read into memory, so a gzip that expands past this is refused rather than allowed to
# exhaust it: a few MB of gzipped zeros expand to gigabytes ("gzip bomb"). 2 GiB of text is far
# more than any fine-tuning set in common use (MNLI is ~80 MB).
MAX_GUNZIPPED_BYTES = 2 * 1024**3


def read_text(path: Path) -> str:
    """The whole text of `path`, gunzipped when needed.

    Raises:
        UserError: missing file, a folder, unreadable, corrupt or oversized gzip, a NUL byte, or
            not UTF-8 (with the line).
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
        raw = _gunzip(raw, path)
    # No text format accepted here holds a raw NUL (JSON escapes it as \u0000); one means a binary
    # or UTF-16 file, whose NULs would otherwise pass as text into CSV cells and the tokenizer.
    nul = raw.find(b"\x00")
    if nul != -1:
        line = raw.count(b"\n", 0, nul) + 1
        raise UserError(f"{at(path, line)}: NUL byte in the text (a binary or UTF-16 file?); expected UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{at(path, line)}: not valid UTF-8 (byte {raw[exc.start]:#04x})") from None


def _gunzip(raw: bytes, path: Path) -> bytes:
    """Decompress all gzip members in chunks, stopping once the output passes MAX_GUNZIPPED_BYTES."""
    chunks: list[bytes] = []
    size = 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            while chunk := stream.read(1 << 24):
                size += len(chunk)
                if size > MAX_GUNZIPPED_BYTES:
                    raise UserError(
                        f"{path}: expands to more than {MAX_GUNZIPPED_BYTES:,} bytes when unzipped "
                        "(data is read into memory; split the file)"
                    )
                chunks.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: corrupt gzip data ({exc})") from None
    return b"".join(chunks)


def loads_json(text: str, path: Path | str, line: int | None = None) -> Any:
    """`json.loads(text)`, every failure on bad input turned into a UserError at `file:line`.

    Args:
        text: a whole file (`line` None: error lines come from the parser) or one JSONL line.
        line: the file line `text` is on, for a JSONL line.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = at(path, exc.lineno if line is None else line)
        hint = ""
        if exc.msg == "Extra data" and line is None:
            hint = "; if this is one object per line, name the file .jsonl"  # the usual cause
        raise UserError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno}){hint}") from None
    except RecursionError:
        # The parser recurses once per level: ~1000 nested `[` overflow it. No real data nests so.
        raise UserError(f"{at(path, line)}: not valid JSON: nested too deeply") from None
    except ValueError as exc:
        # CPython refuses int literals over 4300 digits (a denial-of-service guard), as ValueError.
        raise UserError(f"{at(path, line)}: not valid JSON: {exc}".split("; use sys.")[0]) from None
