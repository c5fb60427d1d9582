"""In-memory inputs (the server's JSON, the Python API's dicts): the checks every task shares.

Pure checks, no model: every problem is a UserError naming the field as `inputs[i].name`, the way
a client sees it in its request body. Files go through `data/` instead; both end in the same
examples, so a served answer equals `encoderkit predict`'s answer for the same input.
"""

from __future__ import annotations

from typing import Any

from encoderkit.data.text_checks import check_text
from encoderkit.errors import UserError


def text_field(row: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    """`row[key]` as a non-blank string (None when absent and not required)."""
    value = row.get(key)
    if value is None:
        if required:
            raise UserError(f"{where}.{key}: missing")
        return None
    if not isinstance(value, str):
        raise UserError(f"{where}.{key}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise UserError(f"{where}.{key}: empty")
    # The loaders' checks: a lone surrogate would crash the tokenizer, a huge text would stall it.
    return check_text(value, f"{where}.{key}")


def check_rows(rows: Any, task: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """A non-empty list of objects holding only the task's `fields` (and `id`, optional everywhere)."""
    if not isinstance(rows, list) or not rows:
        raise UserError("inputs: expected a non-empty list of objects")
    allowed = {"id", *fields}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"inputs[{i}]: expected an object, got {type(row).__name__}")
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise UserError(
                f"inputs[{i}].{unknown[0]}: unknown field for a {task} model (fields: {sorted(allowed)})"
            )
    return rows


def with_ids(rows: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each output with its row's `id` first when the row had one (and without an internal one)."""
    merged = []
    for row, out in zip(rows, outputs, strict=True):
        body = {k: v for k, v in out.items() if k != "id"}
        merged.append({"id": row["id"], **body} if row.get("id") is not None else body)
    return merged
