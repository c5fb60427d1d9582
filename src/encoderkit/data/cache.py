"""Tokenized data cached on disk, one file per (data, tokenizer, settings).

Tokenizing SST-2 or SQuAD takes seconds to tens of seconds, paid again by every run and by every
process of a distributed run. `prepare_cached` keys a task's `prepare` result by everything it
depends on (the data files' contents, the tokenizer, the config fields `prepare` reads, and
encoderkit's own code) and keeps it as a pickle in `cache_dir()`. The cache only ever saves time:
a file that does not load is a miss, a folder that cannot be written costs one warning, and bad
input raises from `prepare` before anything is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from encoderkit import __version__
from encoderkit.tasks import PreparedData, Task
from encoderkit.training.fingerprint import data_source

CACHE_FORMAT = 1  # bump when `CacheEntry` changes shape

# Every config field a task's `prepare` reads; a field left out would let a changed setting be
# served stale data (tests/unit/test_token_cache.py fails when `prepare` reads one not listed).
PREPARE_FIELDS = (
    "task",
    "train",
    "eval",
    "text_column",  # classification / regression
    "text_pair_column",
    "label_column",
    "max_length",
    "doc_stride",  # qa
    "max_query_length",
    "qa_metric",
)


@dataclass
class CacheEntry:
    key: str
    data: PreparedData
    printed: str  # what `prepare` printed (QA: the data check), printed again on a hit
    task_state: dict[str, Any]  # attributes `prepare` set on the task (QA: the training data's metric)


def cache_dir() -> Path:
    """`$ENCODERKIT_CACHE`, else `$XDG_CACHE_HOME/encoderkit/tokens`, else `~/.cache/encoderkit/tokens`."""
    if os.environ.get("ENCODERKIT_CACHE"):
        return Path(os.environ["ENCODERKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "encoderkit" / "tokens"


def prepare_cached(
    task: Task, config: Any, tokenizer: Any, model_limit: int, echo: Callable[[str], None]
) -> PreparedData:
    """`task.prepare(config, tokenizer, model_limit)`, read from the cache when it holds the same key.

    With `config.cache` off, or when the inputs cannot be keyed by content (a Hub dataset), this is
    plain `prepare`: nothing is read or written.

    Raises:
        UserError: bad input, from `prepare` (never from the cache).
    """
    key = cache_key(task.name, config, tokenizer, model_limit) if config.cache else None
    if key is None:
        return task.prepare(config, tokenizer, model_limit)
    path = cache_dir() / f"{key}.pkl"
    entry = _load(path, key)
    if entry is None:
        # The processes of a torchrun launch (or runs started together) miss together: the first to
        # take the key's lock tokenizes and stores, the others wait and then read its entry, so
        # the data is tokenized once, not once per process.
        with _key_lock(path.with_name(f".{key}.lock")):
            entry = _load(path, key)
            if entry is None:
                return _prepare_and_store(task, config, tokenizer, model_limit, path, key, echo)
    sys.stdout.write(entry.printed)  # where `prepare` printed it, so the console looks the same
    _restore_task(task, entry.task_state, config)
    echo(f"tokenized data: from cache ({key[:12]})")
    return entry.data


def _prepare_and_store(
    task: Task,
    config: Any,
    tokenizer: Any,
    model_limit: int,
    path: Path,
    key: str,
    echo: Callable[[str], None],
) -> PreparedData:
    with _tee_stdout() as printed:
        data = task.prepare(config, tokenizer, model_limit)
    problem = _store(path, CacheEntry(key, data, printed.getvalue(), _task_state(task)))
    if problem:
        echo(f"warning: tokenized data not cached: could not write to {path.parent} ({problem})")
    else:
        echo(f"tokenized data: cached for next time ({key[:12]})")
    return data


def cache_key(task_name: str, config: Any, tokenizer: Any, model_limit: int) -> str | None:
    """sha256 of everything `prepare`'s result depends on; None when the data is a Hub dataset
    (known by name only, its content may change) or the tokenizer has no serialized form."""
    identity = tokenizer_identity(tokenizer)
    data = {role: data_source(getattr(config, role)) for role in ("train", "eval")}
    if identity is None or any(d is not None and "sha256" not in d for d in data.values()):
        return None
    material = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "code": code_digest(),
        "task": task_name,
        "config": {name: getattr(config, name) for name in PREPARE_FIELDS},
        "data": data,  # path, size and sha256 of each file
        "tokenizer": identity,
        "model_limit": model_limit,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


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
    root = Path(__file__).resolve().parents[1]
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
    """Write `entry` to `path`; the reason it could not be written, or None.

    The entry goes to a temporary file in the same folder, renamed into place, so processes writing
    the same key at once (torchrun ranks) and a kill mid-write never leave a half-written entry.
    """
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".", suffix=".tmp", delete=False) as f:
            tmp = Path(f.name)
            pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        return None
    except Exception as exc:  # a read-only folder, a full disk, ...: the cache never fails a run
        return getattr(exc, "strerror", None) or str(exc)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # after os.replace it is gone already


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


def _task_state(task: Task) -> dict[str, Any]:
    """The attributes `prepare` left on the task for later calls, without the config: a hit sets
    the current one, whose fields outside the key (QA decoding: n_best) may differ."""
    return {name: value for name, value in vars(task).items() if name != "config"}


def _restore_task(task: Task, state: dict[str, Any], config: Any) -> None:
    vars(task).update(state)
    if "config" in vars(task):  # QA keeps the config for decoding and the saved settings
        vars(task)["config"] = config


class _Tee(io.StringIO):
    """A copy of everything written, passed on to `out` as it comes."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self._out = out

    def write(self, text: str) -> int:
        self._out.write(text)
        return super().write(text)

    def flush(self) -> None:
        self._out.flush()


@contextlib.contextmanager
def _tee_stdout() -> Iterator[_Tee]:
    """Print as usual and keep a copy of what was printed."""
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield tee
