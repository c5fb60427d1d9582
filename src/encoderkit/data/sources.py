"""What a data source is, by content: a local file's size and sha256, or a Hub dataset's name."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def data_source(source: str | None) -> dict[str, Any] | None:
    """Size and sha256 of a local file (streamed); a Hub dataset is known by its name only."""
    if source is None:
        return None
    path = Path(source)
    if not path.is_file():
        return {"name": source}
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return {"file": source, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
