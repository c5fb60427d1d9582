"""Values computed from data, cached on disk by content: one file per key.

Tokenizing SST-2 or SQuAD takes seconds to tens of seconds, paid again by every run and by every
process of a distributed run. `cached(key, compute)` keeps `compute()`'s result as a pickle in
`cache_dir()` under a key that names everything the result depends on (`cache_key`: the data
files' contents, the tokenizer, the settings, and encoderkit's own code; training/prepare.py
builds it for a task's features). The cache only ever saves time: a file that does not load is a
miss, a folder that cannot be written costs one warning, and bad input raises from `compute`
before anything is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from encoderkit.atomic import write_atomic
from encoderkit.version import __version__

T = TypeVar("T")

CACHE_FORMAT = 2  # bump when `CacheEntry` changes shape


@dataclass
class CacheEntry:
    key: str
    value: Any


def cache_dir() -> Path:
    """`$ENCODERKIT_CACHE`, else `$XDG_CACHE_HOME/encoderkit/tokens`, else `~/.cache/encoderkit/tokens`."""
    if os.environ.get("ENCODERKIT_CACHE"):
        return Path(os.environ["ENCODERKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "encoderkit" / "tokens"


def cached(key: str | None, compute: Callable[[], T], echo: Callable[[str], None]) -> T:
    """`compute()`, read from the cache when it holds `key`; a None key means plain `compute()`.

    Raises:
        whatever `compute` raises (never an error of the cache itself).
    """
    if key is None:
        return compute()
    path = cache_dir() / f"{key}.pkl"
    entry = _load(path, key)
    if entry is None:
        # The processes of a torchrun launch (or runs started together) miss together: the first to
        # take the key's lock computes and stores, the others wait and then read its entry, so
        # the data is tokenized once, not once per process.
        with _key_lock(path.with_name(f".{key}.lock")):
            entry = _load(path, key)
            if entry is None:
                return _compute_and_store(compute, path, key, echo)
    echo(f"tokenized data: from cache ({key[:12]})")
    value: T = entry.value
    return value


def _compute_and_store(compute: Callable[[], T], path: Path, key: str, echo: Callable[[str], None]) -> T:
    value = compute()
    problem = _store(path, CacheEntry(key, value))
    if problem:
        echo(f"warning: tokenized data not cached: could not write to {path.parent} ({problem})")
    else:
        echo(f"tokenized data: cached for next time ({key[:12]})")
    return value


def cache_key(material: dict[str, Any]) -> str:
    """sha256 of `material` (JSON-able: settings, data digests, tokenizer identity) and of the code."""
    keyed = {"format": CACHE_FORMAT, "version": __version__, "code": code_digest(), **material}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()


def tokenizer_identity(tokenizer: Any) -> dict[str, Any] | None:
    """What makes two tokenizers tokenize alike: the full Rust tokenizer, special tokens, sides.

    None for a tokenizer without a Rust backend (nothing complete to hash).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    # Each HF call sets truncation and padding on the backend: what the last call left, not identity.
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return {
        "class": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}",
        "padding_side": tokenizer.padding_side,
        "truncation_side": tokenizer.truncation_side,
        "model_max_length": tokenizer.model_max_length,
        "special_tokens": tokenizer.special_tokens_map,
        "backend_sha256": hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest(),
    }


def code_digest() -> str:
    """sha256 of encoderkit's source files.

    The version number is rarely bumped during development, and a fix in windowing or labelling (or
    a new field of `Encoded`) must not be served features made by the old code.
    """
    root = Path(__file__).resolve().parents[1]  # the encoderkit package
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _load(path: Path, key: str) -> CacheEntry | None:
    """The entry stored under `key`, or None: no file, or one that does not load (a miss)."""
    try:
        with path.open("rb") as f:
            entry = pickle.load(f)
    except Exception:  # missing, truncated, corrupt, or an older format: unpickling raises many types
        return None
    return entry if isinstance(entry, CacheEntry) and entry.key == key else None


def _store(path: Path, entry: CacheEntry) -> str | None:
    """Write `entry` to `path` atomically; the reason it could not be written, or None.

    Processes writing the same key at once (torchrun ranks) and a kill mid-write never leave a
    half-written entry.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda f: pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL))
        return None
    except Exception as exc:  # a read-only folder, a full disk, ...: the cache never fails a run
        return getattr(exc, "strerror", None) or str(exc)


@contextlib.contextmanager
def _key_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block; the OS frees it if the
    process dies. Where no lock can be had (no fcntl, a read-only folder) the block runs unlocked:
    the worst case is tokenizing twice, as without the lock."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield
