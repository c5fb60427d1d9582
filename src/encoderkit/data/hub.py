"""Hugging Face Hub datasets by name (`glue/mrpc:train`), through the `datasets` library.

Needs the network (or a warm local cache); offline, the failure becomes one clear error line.
"""

from __future__ import annotations

from typing import Any

from encoderkit.errors import UserError


def parse_hub_name(source: str) -> list[tuple[str, str | None, str]]:
    """The (path, config, split) readings of a name, most likely first.

    `glue/mrpc:train` is ambiguous: a repository `glue/mrpc`, or the repository `glue` with the
    config `mrpc`. Both readings are returned; `org/name/config` has only one.
    """
    name, _, split = source.partition(":")
    split = split or "train"
    parts = name.split("/")
    if len(parts) == 3:
        return [(f"{parts[0]}/{parts[1]}", parts[2], split)]
    if len(parts) == 2:
        return [(name, None, split), (parts[0], parts[1], split)]
    return [(name, None, split)]


def read_hub_rows(source: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows) of a Hub dataset split; `data.tables.read_table` makes a Table of them."""
    dataset = load_hub_split(source)
    return list(dataset.column_names), [dict(row) for row in dataset]


def class_names(dataset: Any, column: str) -> list[str] | None:
    """The names of a ClassLabel column, or of a sequence of them (`ner_tags`); None otherwise."""
    feature = dataset.features.get(column)
    feature = getattr(feature, "feature", feature)  # Sequence(ClassLabel) -> ClassLabel
    names = getattr(feature, "names", None)
    return list(names) if names else None


def load_hub_split(source: str) -> Any:
    """The `datasets.Dataset` of a Hub split such as `conll2003:validation`."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise UserError(f"{source}: not a file, and the `datasets` package is not installed") from None
    last_error: Exception | None = None
    for path, config, split in parse_hub_name(source):
        try:
            return datasets.load_dataset(path, config, split=split)
        except Exception as exc:  # datasets raises many types (offline, not found, bad split)
            last_error = exc
            continue
    reason = str(last_error).splitlines()[0][:200] if last_error else "unknown error"
    raise UserError(f"{source}: not a local file, and loading it from the Hugging Face Hub failed: {reason}")
