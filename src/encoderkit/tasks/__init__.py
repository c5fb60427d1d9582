"""Tasks behind one interface (`base.Task`), found through the registry (`encoderkit/registry.py`)."""

from __future__ import annotations

import importlib

from encoderkit import registry
from encoderkit.errors import UserError
from encoderkit.tasks.base import CardText, Evaluation, LoadedModel, Outputs, PreparedData, Task

__all__ = ["CardText", "Evaluation", "LoadedModel", "Outputs", "PreparedData", "Task", "get_task"]


def get_task(name: str) -> Task:
    """The task registered under `name` (or an alias of it).

    Raises:
        UserError: no task has that name.
    """
    found = registry.entry(name)
    if found is None:
        known = ", ".join(e.name for e in registry.REGISTRY)
        raise UserError(f"field 'task': '{name}' is not a task encoderkit knows ({known})")
    task_class = getattr(importlib.import_module(found.module), found.cls)
    task: Task = task_class(found)
    return task
