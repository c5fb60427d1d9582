"""What a checkpoint was trained with: the resolved config and the data files, hashed.

Each checkpoint stores the fingerprint of its run; `--resume` compares it with the fingerprint of
the command at hand and refuses to continue a run with other settings or other data (the result
would match neither run), unless `--resume-force`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from encoderkit.config import TrainConfig
from encoderkit.data.sources import data_source
from encoderkit.errors import UserError

# Fields that may differ on --resume because they do not change what is computed: where the run
# folder is and how the command was started; how often checkpoints are written and how many are
# kept (saving draws no random numbers); the data paths, since the data is compared by content; and
# whether tokenized data came from the disk cache (the same features either way); the trackers.
IGNORED_FIELDS = frozenset(
    {"output", "resume", "resume_force", "overwrite", "save_steps", "keep_checkpoints", "train", "eval"}
    | {"cache"}
    | {"report_to", "run_name", "tracking_dir"}  # where the run is watched, not what it computes
)


def fingerprint(config: TrainConfig) -> dict[str, Any]:
    """The run's fingerprint: `config` (resolved), its sha256, and `data` (one entry per source)."""
    fields = json.loads(json.dumps(config_fields(config)))  # as it reads back from JSON
    return {
        "config_sha256": hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest(),
        "config": fields,
        "data": {"train": data_source(config.train), "eval": data_source(config.eval)},
    }


def config_fields(config: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in IGNORED_FIELDS}


def differences(saved: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(data sources that changed, config fields that changed as `name: old -> new`)."""
    saved_data = saved.get("data") or {}
    data = [
        f"{role}: {_where(current['data'][role] or saved_data.get(role))}"
        for role in ("train", "eval")
        if not _same_data(saved_data.get(role), current["data"][role])
    ]
    old, new = saved.get("config", {}), current["config"]
    fields = [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]
    return data, fields


def compare(saved: dict[str, Any] | None, current: dict[str, Any], force: bool) -> list[str]:
    """Raise UserError when the checkpoint's run differs from this one, unless `force`.

    Returns:
        What differs (empty when nothing does), for a warning under --resume-force.
    """
    if saved is None:
        data: list[str] = []
        fields = ["the checkpoint records no fingerprint (config and data unknown)"]
        what = fields[0]
    else:
        data, fields = differences(saved, current)
        role = "training" if any(d.startswith("train:") for d in data) else "evaluation"
        if data:
            what = f"the {role} data changed since the checkpoint ({', '.join(data)})"
        else:
            what = f"the config changed since the checkpoint ({', '.join(fields)})"
    if (data or fields) and not force:
        raise UserError(f"--resume: {what}; use --resume-force to continue anyway")
    return data + fields


def _same_data(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    if old is None or new is None:
        return old is new
    keys = ("bytes", "sha256") if "sha256" in new else ("name",)
    return all(old.get(k) == new.get(k) for k in keys)


def _where(source: dict[str, Any] | None) -> str:
    if source is None:
        return "none"
    return str(source.get("file") or source.get("name"))
