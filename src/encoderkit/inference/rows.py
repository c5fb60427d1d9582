"""In-memory inputs (the server's JSON, the Python API's dicts) -> the examples the tasks decode.

Pure checks, no model: every problem is a UserError naming the field as `inputs[i].name`, the way
a client sees it in its request body. Files go through `data/` instead; both end in the same
examples, so a served answer equals `encoderkit predict`'s answer for the same input.
"""

from __future__ import annotations

from typing import Any

from encoderkit.data.qa_types import QAExample
from encoderkit.data.text_checks import check_text
from encoderkit.errors import UserError
from encoderkit.tasks.classification import TextExample

# The fields each task reads from a row; `id` is optional everywhere and copied to the output.
FIELDS = {
    "qa": ("question", "context"),
    "classification": ("text", "text_pair"),
    "regression": ("text", "text_pair"),
    "fill-mask": ("text", "top_k"),
}


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


def check_rows(rows: Any, task: str) -> list[dict[str, Any]]:
    """A non-empty list of objects holding only the task's fields (and `id`)."""
    if not isinstance(rows, list) or not rows:
        raise UserError("inputs: expected a non-empty list of objects")
    allowed = {"id", *FIELDS[task]}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"inputs[{i}]: expected an object, got {type(row).__name__}")
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise UserError(
                f"inputs[{i}].{unknown[0]}: unknown field for a {task} model (fields: {sorted(allowed)})"
            )
    return rows


def qa_examples(rows: list[dict[str, Any]]) -> list[QAExample]:
    """One QAExample per row; internal ids are positions, so clients may repeat or omit ids."""
    examples = []
    for i, row in enumerate(rows):
        where = f"inputs[{i}]"
        question = text_field(row, "question", where)
        context = text_field(row, "context", where)
        examples.append(QAExample(str(i), str(question), str(context)))
    return examples


def text_examples(rows: list[dict[str, Any]], pairs: bool) -> list[TextExample]:
    """One TextExample per row; `pairs`: the model was trained on (text, text_pair)."""
    examples = []
    for i, row in enumerate(rows):
        where = f"inputs[{i}]"
        text = text_field(row, "text", where)
        pair = text_field(row, "text_pair", where, required=pairs)
        if pair is not None and not pairs:
            raise UserError(f"{where}.text_pair: this model was trained on single texts, not pairs")
        examples.append(TextExample(str(text), pair, None, where))
    return examples


def with_ids(rows: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each output with its row's `id` first when the row had one (and without an internal one)."""
    merged = []
    for row, out in zip(rows, outputs, strict=True):
        body = {k: v for k, v in out.items() if k != "id"}
        merged.append({"id": row["id"], **body} if row.get("id") is not None else body)
    return merged
