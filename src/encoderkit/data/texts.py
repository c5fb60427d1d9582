"""Raw text for masked-language modelling: plain text, a column of a table, or SQuAD contexts.

- `.txt` (optionally `.gz`): one document per line; where blank lines separate paragraphs, each
  paragraph is a document (its lines joined). `line_by_line` keeps every non-blank line apart.
- JSONL / CSV / TSV / a Hub dataset: the text column (`--text-column`, else `text`, `sentence`,
  ..., then `context`).
- SQuAD / KorQuAD JSON (and encoderkit's QA JSONL): each context once, in file order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from encoderkit.data.columns import TEXT_DEFAULTS
from encoderkit.data.files import read_text
from encoderkit.data.squad import read_squad_file
from encoderkit.data.tables import Table, read_table
from encoderkit.errors import UserError, at


@dataclass(frozen=True)
class Texts:
    source: str
    texts: list[str]
    kind: str  # how they were read, for the data check: "lines", "paragraphs", "column 'text'", ...


def read_texts(source: str, text_column: str | None = None, line_by_line: bool = False) -> Texts:
    """The non-empty texts of `source`.

    Raises:
        UserError: the file is missing or malformed, the column is missing, or it holds no text.
    """
    path = Path(source)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if path.exists() and suffix in (".txt", ""):
        found = plain_texts(read_text(path), line_by_line)
    elif path.exists() and suffix == ".json" and _is_squad(read_text(path)):
        found = Texts(source, _unique(e.context for e in read_squad_file(path)), "SQuAD contexts")
    else:
        found = _column_texts(source, text_column)
    if not found.texts:
        raise UserError(f"{source}: no text found (every line or value is empty)")
    return Texts(source, found.texts, found.kind)


def located_texts(source: str, text_column: str | None = None) -> list[tuple[str, str]]:
    """(where, text) for each non-empty line of a text file or text value of a table, `where`
    being `file:line`, so that a bad input can be named (fill-mask inputs, one per line)."""
    path = Path(source)
    if path.exists() and [s.lower() for s in path.suffixes if s.lower() != ".gz"][-1:] in ([".txt"], []):
        lines = read_text(path).splitlines()
        found = [(at(source, n), line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    else:
        table = read_table(source)
        column = _text_column(table, text_column)
        values = [(table.where(i), str(row.get(column) or "").strip()) for i, row in enumerate(table.rows)]
        found = [(where, text) for where, text in values if text]
    if not found:
        raise UserError(f"{source}: no text found (every line or value is empty)")
    return found


def plain_texts(text: str, line_by_line: bool) -> Texts:
    """Documents of a plain-text file: lines, or paragraphs when blank lines separate them."""
    lines = [line.strip() for line in text.splitlines()]
    if line_by_line or "" not in lines[: max(0, len(lines) - 1)]:
        return Texts("", [line for line in lines if line], "lines")
    paragraphs, current = [], []
    for line in [*lines, ""]:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return Texts("", paragraphs, "paragraphs (split by blank lines)")


def _column_texts(source: str, text_column: str | None) -> Texts:
    table = read_table(source)
    column = _text_column(table, text_column)
    values = [str(row.get(column) or "").strip() for row in table.rows]
    texts = _unique(values) if column == "context" else [v for v in values if v]
    return Texts(
        source, texts, f"column '{column}'" + (" (each context once)" if column == "context" else "")
    )


def _text_column(table: Table, text_column: str | None) -> str:
    source = table.source
    if text_column and text_column not in table.columns:
        raise UserError(f"{source}: column '{text_column}' (--text-column) not found")
    candidates = (text_column,) if text_column else (*TEXT_DEFAULTS, "context")
    column = next((c for c in candidates if c in table.columns), None)
    if column is None:
        raise UserError(
            f"{source}: no text column (looked for {', '.join(candidates)}); name it with --text-column"
        )
    return column


def _is_squad(text: str) -> bool:
    head = text[:5000]
    return text.lstrip()[:1] == "{" and '"paragraphs"' in head and '"data"' in head


def _unique(texts: Iterable[str]) -> list[str]:
    """Non-empty texts, each once, in first-seen order (QA files repeat a context per question)."""
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))
