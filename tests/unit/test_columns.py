"""data/columns.py: default column names, explicit flags, and the hints when a column is missing."""

from __future__ import annotations

import pytest

from encoderkit.data.columns import Columns, resolve_columns
from encoderkit.data.tables import Table
from encoderkit.errors import UserError


def table(*columns: str, source: str = "data.tsv") -> Table:
    row = {c: "x" for c in columns}
    return Table(source, list(columns), [row], [2])


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (("text", "label"), Columns("text", None, "label")),
        (("label", "text", "id"), Columns("text", None, "label")),
        (("sentence", "label", "idx"), Columns("sentence", None, "label")),
        (("idx", "sentence1", "sentence2", "label"), Columns("sentence1", "sentence2", "label")),
        (("text", "text_pair", "labels"), Columns("text", "text_pair", "labels")),
        (
            ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),  # GLUE MRPC
            Columns("#1 String", "#2 String", "Quality"),
        ),
        (("premise", "hypothesis", "gold_label"), Columns("premise", "hypothesis", "gold_label")),
    ],
)
def test_defaults(columns: tuple[str, ...], expected: Columns) -> None:
    assert resolve_columns(table(*columns)) == expected


def test_explicit_flags_win_over_defaults() -> None:
    t = table("text", "label", "review", "title", "stars")
    assert resolve_columns(t, "review", "title", "stars") == Columns("review", "title", "stars")


def test_explicit_text_column_brings_its_usual_partner() -> None:
    assert resolve_columns(table("sentence1", "sentence2", "y"), "sentence1", label="y") == Columns(
        "sentence1", "sentence2", "y"
    )


def test_single_text_does_not_grab_an_unrelated_pair() -> None:
    assert resolve_columns(table("sentence", "sentence2", "label")).text_pair is None


@pytest.mark.parametrize(
    ("flags", "flag", "wrong", "suggestion"),
    [
        ({"label": "lable"}, "--label-column", "lable", "label"),
        ({"text": "txt"}, "--text-column", "txt", "text"),
        ({"text_pair": "text_pairs"}, "--text-pair-column", "text_pairs", "text_pair"),
    ],
)
def test_misspelled_flag_suggests_the_close_name(
    flags: dict[str, str], flag: str, wrong: str, suggestion: str
) -> None:
    with pytest.raises(UserError) as info:
        resolve_columns(table("text", "text_pair", "label", source="train.jsonl"), **flags)
    message = str(info.value)
    assert message.startswith("train.jsonl: ")
    assert f"'{wrong}'" in message and flag in message
    assert f"did you mean '{suggestion}'?" in message


def test_no_close_name_no_suggestion() -> None:
    with pytest.raises(UserError) as info:
        resolve_columns(table("text", "label"), label="zzzzzz")
    assert "did you mean" not in str(info.value) and "'zzzzzz'" in str(info.value)


def test_missing_default_label_asks_for_the_flag() -> None:
    with pytest.raises(UserError, match=r"^data\.tsv: no label column found.*--label-column"):
        resolve_columns(table("text", "stars"))


def test_missing_default_text_asks_for_the_flag() -> None:
    with pytest.raises(UserError, match=r"no text column found.*--text-column"):
        resolve_columns(table("body", "label"))


@pytest.mark.parametrize("header", ["text\tlabel", "text;label"])
def test_one_column_with_a_separator_hints_at_the_delimiter(header: str) -> None:
    with pytest.raises(UserError) as info:
        resolve_columns(table(header, source="train.csv"))
    message = str(info.value)
    assert message.startswith("train.csv: ") and "delimiter" in message
    assert "\n" not in message and "\t" not in message  # still one printable line


def test_many_columns_no_delimiter_hint() -> None:
    with pytest.raises(UserError) as info:
        resolve_columns(table("body", "label,x"))
    assert "delimiter" not in str(info.value)


def test_no_label_needed() -> None:
    assert resolve_columns(table("text"), need_label=False) == Columns("text", None, None)
    # A label flag for a file without it (predict input) is ignored rather than an error.
    assert resolve_columns(table("text"), label="label", need_label=False).label is None
    assert resolve_columns(table("text", "label"), need_label=False).label == "label"
