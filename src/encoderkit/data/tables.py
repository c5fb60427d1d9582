"""Read tabular examples (JSONL, CSV, TSV, gzipped or not, or a Hub dataset) into rows.

Every row keeps the line of the file it came from, so a later check can say `file:line`.
GLUE TSVs contain unbalanced quotes, so TSV is read with quoting off; CSV keeps standard quoting.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoderkit.data.files import loads_json, read_text
from encoderkit.data.text_checks import reject_surrogates
from encoderkit.errors import UserError, at, brief

# `glue/mrpc:train`, `imdb:test`, `org/name/config:validation[:10%]`
HUB_NAME = re.compile(r"^[\w.-]+(/[\w.-]+){0,2}(:[\w.\[\]%:+-]+)?$")


@dataclass
class Table:
    """Rows of one data source. `lines[i]` is the 1-based source line of `rows[i]` (None for hub)."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int | None]

    def where(self, index: int) -> str:
        return at(self.source, self.lines[index])


def read_table(source: str) -> Table:
    """Read a local file by its extension, or a Hub dataset name when no such file exists."""
    path = Path(source)
    if is_hub_name(source):
        return read_hub_table(source)
    if not path.exists():
        raise UserError(f"{source}: file not found")
    if path.is_dir():
        raise UserError(f"{source}: is a folder, expected a data file")
    text = read_text(path)
    kind = _kind(path, text)
    if kind == "squad":
        raise UserError(f"{source}: SQuAD-format JSON holds QA data; use --task qa")
    if kind == "jsonl":
        table = _parse_jsonl(source, text)
    elif kind == "json":
        table = _parse_json_array(source, text)
    else:
        table = _parse_delimited(source, text, delimiter="\t" if kind == "tsv" else ",")
    if not table.rows:
        raise UserError(f"{source}: empty file (no data rows)")
    return table


def is_hub_name(source: str) -> bool:
    """No such local path, and the name reads as a Hub dataset (`glue/mrpc:train`), not a file."""
    return not Path(source).exists() and bool(HUB_NAME.match(source)) and not _looks_like_file(source)


def read_hub_table(source: str) -> Table:
    """A Hub dataset split as a Table (no source lines: errors name the row index)."""
    from encoderkit.data.hub import read_hub_rows  # `datasets` is slow to import: only when asked

    columns, rows = read_hub_rows(source)
    return Table(source, columns, rows, [None] * len(rows))


def _looks_like_file(source: str) -> bool:
    name = source.split(":")[0].lower()
    return name.endswith((".json", ".jsonl", ".csv", ".tsv", ".txt", ".gz", ".ndjson"))


def _kind(path: Path, text: str) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        head = text.lstrip()[:1]
        if head == "[":
            return "json"
        if head == "{" and '"paragraphs"' in text[:5000] and '"data"' in text[:5000]:
            return "squad"
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix in (".tsv", ".txt", ""):
        return "tsv"
    raise UserError(f"{path}: unknown file type '{suffix}' (expected .jsonl, .json, .csv or .tsv)")


def _parse_jsonl(source: str, text: str) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int | None] = []
    # Split on "\n" only: str.splitlines() also breaks at U+2028, U+0085, ..., which JSON strings
    # may hold raw (json.dumps(ensure_ascii=False) writes them so), and that shifts line numbers.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        # A BOM starting a line: files saved with one (Windows tools), concatenated with `cat`.
        row = loads_json(line.removeprefix("\ufeff"), source, number)
        if not isinstance(row, dict):
            raise UserError(f"{source}:{number}: expected a JSON object, got {type(row).__name__}")
        reject_surrogates(row, line, at(source, number))
        rows.append(row)
        lines.append(number)
    return Table(source, _columns(rows), rows, lines)


def _parse_json_array(source: str, text: str) -> Table:
    data = loads_json(text, source)
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise UserError(f"{source}: item [{i}] is a {type(row).__name__}, expected a JSON object")
    reject_surrogates(data, text, source)
    return Table(source, _columns(data), data, [None] * len(data))


def _parse_delimited(source: str, text: str, delimiter: str) -> Table:
    stream = io.StringIO(text, newline="")
    if delimiter == "\t":
        reader = csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
    else:
        reader = csv.reader(stream, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{source}: empty file") from None
    except csv.Error as exc:
        raise UserError(f"{source}:1: {exc}") from None
    header = [h.strip() for h in header]
    if not any(header):  # a blank first line would make every data row "too many fields"
        raise UserError(f"{source}:1: the header line (column names) is empty")
    if len(set(header)) != len(header):
        raise UserError(f"{source}:1: duplicate column names in header {brief(header, 200)}")
    rows: list[dict[str, Any]] = []
    lines: list[int | None] = []
    while True:
        start = reader.line_num + 1  # a quoted CSV field may span lines: name the row's first line
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # at the row's first line: an unclosed quote fails at the end of file
            raise UserError(f"{source}:{start}: {exc}") from None
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        if len(values) != len(header):
            raise UserError(
                f"{source}:{start}: expected {len(header)} fields as in the header, "
                f"found {len(values)} (is the delimiter {'tab' if delimiter == chr(9) else 'comma'} right?)"
            )
        rows.append(dict(zip(header, values, strict=True)))
        lines.append(start)
    return Table(source, header, rows, lines)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows[:1000]:
        seen.update(dict.fromkeys(row))
    return list(seen)
