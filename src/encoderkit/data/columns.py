"""Which columns of a table hold the text, the optional second text, and the label."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from encoderkit.data.tables import Table
from encoderkit.errors import UserError, brief

# Defaults cover the common public formats: plain JSONL, GLUE (SST-2, MRPC, QQP, MNLI), HF datasets.
TEXT_DEFAULTS = ("text", "sentence", "sentence1", "#1 String", "question1", "premise", "review")
PAIR_FOR_TEXT = {
    "text": "text_pair",
    "sentence1": "sentence2",
    "#1 String": "#2 String",
    "question1": "question2",
    "premise": "hypothesis",
}
LABEL_DEFAULTS = ("label", "labels", "Quality", "gold_label")


@dataclass(frozen=True)
class Columns:
    text: str
    text_pair: str | None
    label: str | None


def resolve_columns(
    table: Table,
    text: str | None = None,
    text_pair: str | None = None,
    label: str | None = None,
    need_label: bool = True,
) -> Columns:
    """Pick the columns, from the flags when given, else from the defaults; explain what is missing."""
    text = _require(table, text, "--text-column") if text else _first(table, TEXT_DEFAULTS, "text")
    if text_pair:
        text_pair = _require(table, text_pair, "--text-pair-column")
    else:
        partner = PAIR_FOR_TEXT.get(text)
        text_pair = partner if partner in table.columns else None
    if label:
        label = _require(table, label, "--label-column") if need_label or label in table.columns else None
    elif need_label:
        label = _first(table, LABEL_DEFAULTS, "label")
    else:
        label = next((c for c in LABEL_DEFAULTS if c in table.columns), None)
    return Columns(text, text_pair, label)


def _require(table: Table, name: str, flag: str) -> str:
    if name in table.columns:
        return name
    close = difflib.get_close_matches(name, table.columns, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    columns = brief(table.columns, 200)  # a header can be any line of a file: quote it briefly
    raise UserError(f"{table.source}: column '{name}' ({flag}) not found; columns are {columns}{hint}")


def _first(table: Table, candidates: tuple[str, ...], role: str) -> str:
    for name in candidates:
        if name in table.columns:
            return name
    flag = {"text": "--text-column", "label": "--label-column"}[role]
    hint = ""
    if len(table.columns) == 1 and any(sep in table.columns[0] for sep in ("\t", ";", ",")):
        hint = " (one column only: is the delimiter right for this file type?)"
    raise UserError(
        f"{table.source}: no {role} column found among {brief(table.columns, 200)}{hint}; name it with {flag}"
    )
