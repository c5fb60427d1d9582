"""A task's features for this run: from the on-disk token cache when the same inputs were seen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from encoderkit.config import TrainConfig
from encoderkit.data.cache import cache_key, cached, tokenizer_identity
from encoderkit.data.sources import data_source
from encoderkit.tasks import PreparedData, Task


def prepare_cached(
    task: Task, config: TrainConfig, tokenizer: Any, model_limit: int, echo: Callable[[str], None]
) -> PreparedData:
    """`task.prepare(config, tokenizer, model_limit)`, read from the cache when it holds the same key,
    then the task's messages (its data check) echoed, the same on a hit as on a miss.

    With `config.cache` off, or when the inputs cannot be keyed by content (a Hub dataset), this is
    plain `prepare`: nothing is read or written.

    Raises:
        UserError: bad input, from `prepare` (never from the cache).
    """
    key = prepare_key(task, config, tokenizer, model_limit) if config.cache else None
    data = cached(key, lambda: task.prepare(config, tokenizer, model_limit), echo)
    for line in data.messages:
        echo(line)
    return data


def prepare_key(task: Task, config: TrainConfig, tokenizer: Any, model_limit: int) -> str | None:
    """The cache key of `prepare`'s result: the task, the config fields it declares it reads, the
    data files' contents, the tokenizer and the model's limit. None when the data is a Hub dataset
    (known by name only, its content may change) or the tokenizer has no serialized form."""
    identity = tokenizer_identity(tokenizer)
    data = {role: data_source(getattr(config, role)) for role in ("train", "eval")}
    if identity is None or any(d is not None and "sha256" not in d for d in data.values()):
        return None
    return cache_key(
        {
            "task": task.name,
            "config": {name: getattr(config, name) for name in task.prepare_fields},
            "data": data,  # path, size and sha256 of each file
            # A hold-out is drawn with the seed: another seed, other examples (tasks key eval_split).
            "split_seed": config.seed if config.eval_split else None,
            "class_weights": data_source(config.class_weights),  # a weights file: by content
            "tokenizer": identity,
            "model_limit": model_limit,
        }
    )
