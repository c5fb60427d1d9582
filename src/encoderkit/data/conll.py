"""Token-level data: CoNLL column files and JSONL `{"tokens": [...], "tags": [...]}` rows.

CoNLL files (`.conll`, `.txt`, `.iob`, `.tsv`, optionally gzipped) hold one token per line in
whitespace- or tab-separated columns, a blank line (or one holding only whitespace) between
sentences, and `-DOCSTART-` lines between documents, which are skipped. Every problem is a
UserError naming `file:line`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoderkit.data.files import loads_json, read_text
from encoderkit.data.tables import is_hub_name
from encoderkit.errors import UserError, at, brief


@dataclass(frozen=True)
class Sentence:
    tokens: list[str]
    tags: list[str] | None  # None for unlabelled input
    where: str  # `file:line` of its first token


def read_sentences(
    source: str, token_column: str | None, tag_column: str | None, need_tags: bool
) -> list[Sentence]:
    """The sentences of a CoNLL or JSONL file.

    Args:
        token_column: CoNLL: the token column's index (default 0); JSONL: the field (`tokens`).
        tag_column: CoNLL: an index or `last` (default); JSONL: the field (`tags`, then `ner_tags`).
        need_tags: labelled data (train, eval): every sentence must have its tags.

    Raises:
        UserError: the file is missing or malformed, naming `file:line`.
    """
    path = Path(source)
    if is_hub_name(source):
        return _hub(source, token_column or "tokens", tag_column, need_tags)
    if not path.is_file():
        raise UserError(f"{source}: {'is a folder' if path.is_dir() else 'file not found'}")
    text = read_text(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        sentences = _jsonl(source, text, token_column or "tokens", tag_column, need_tags)
    else:
        sentences = _columns(source, text, token_column, tag_column, need_tags)
    if not sentences:
        raise UserError(f"{source}: no sentences")
    return sentences


def _hub(source: str, token_field: str, tag_field: str | None, need_tags: bool) -> list[Sentence]:
    """A Hub split (`conll2003:train`): its integer tags named by the dataset's ClassLabel."""
    from encoderkit.data.hub import class_names, load_hub_split  # `datasets` imports slowly

    dataset = load_hub_split(source)
    field = tag_field or ("tags" if "tags" in dataset.column_names else "ner_tags")
    names = class_names(dataset, field)
    sentences = []
    for i, row in enumerate(dataset):
        if names and row.get(field) is not None:
            row = {**row, field: [names[t] if isinstance(t, int) else t for t in row[field]]}
        sentences.append(_sentence(row, f"{source}: row {i}", token_field, field, need_tags))
    if not sentences:
        raise UserError(f"{source}: no sentences")
    return sentences


def _index(value: str | None, default: int | None, what: str) -> int | None:
    if value is None or value == "last":
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"field '{what}': {value!r} is not a column index (0, 1, ... or 'last')") from None


def _columns(
    source: str, text: str, token_column: str | None, tag_column: str | None, need_tags: bool
) -> list[Sentence]:
    token_at = _index(token_column, 0, "text_column")
    tag_at = _index(tag_column, None, "label_column")  # None: the last column
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first, width = 0, 0

    def close() -> None:
        if tokens:
            sentences.append(Sentence(list(tokens), list(tags) if width > 1 else None, at(source, first)))
        tokens.clear()
        tags.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        cells = line.split()
        if not cells:
            close()
            continue
        if cells[0] == "-DOCSTART-":
            close()
            continue
        if not tokens:
            first = number
            if not sentences:
                width = len(cells)
        if len(cells) != width:
            raise UserError(
                f"{at(source, number)}: {len(cells)} columns, the file's first token line has {width}"
            )
        if token_at is None or not 0 <= token_at < width:
            raise UserError(f"{at(source, number)}: no column {token_at} for the tokens")
        tokens.append(cells[token_at])
        if width > 1:
            index = width - 1 if tag_at is None else tag_at
            if not 0 <= index < width:
                raise UserError(f"{at(source, number)}: no column {index} for the tags")
            tags.append(cells[index])
    close()
    if need_tags and sentences and sentences[0].tags is None:
        raise UserError(f"{sentences[0].where}: one column only; labelled data needs a tag column")
    return sentences


def _jsonl(
    source: str, text: str, token_field: str, tag_field: str | None, need_tags: bool
) -> list[Sentence]:
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = at(source, number)
        row = loads_json(line, source, number)
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
        field = tag_field or ("tags" if "tags" in row else "ner_tags")
        sentences.append(_sentence(row, where, token_field, field, need_tags))
    return sentences


def _sentence(row: dict[str, Any], where: str, token_field: str, tag_field: str, need_tags: bool) -> Sentence:
    """One JSONL row or Hub example as a Sentence: tokens, and as many tags (or none)."""
    tokens = _strings(row.get(token_field), where, token_field)
    raw_tags = row.get(tag_field)
    if raw_tags is None:
        if need_tags:
            raise UserError(f"{where}: no '{tag_field}' field")
        return Sentence(tokens, None, where)
    tags = _tags(raw_tags, where, tag_field)
    if len(tags) != len(tokens):
        raise UserError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
    return Sentence(tokens, tags, where)


def _strings(value: Any, where: str, field: str) -> list[str]:
    if not isinstance(value, list):
        raise UserError(f"{where}: field '{field}' must be a list of strings, got {brief(value)}")
    if not value:
        raise UserError(f"{where}: empty sentence (field '{field}' is an empty list)")
    for token in value:
        if not isinstance(token, str):
            raise UserError(f"{where}: field '{field}' holds {brief(token)}, expected strings")
    return list(value)


def _tags(value: Any, where: str, field: str) -> list[str]:
    """Tags as strings; integer tags are kept as their decimal spelling (names come from --labels)."""
    if not isinstance(value, list):
        raise UserError(f"{where}: field '{field}' must be a list, got {brief(value)}")
    if not all(isinstance(t, str) or (isinstance(t, int) and not isinstance(t, bool)) for t in value):
        raise UserError(f"{where}: field '{field}' must hold strings or integers")
    return [str(t) for t in value]
