"""data/tables.py `read_table` (formats, encodings, errors with file:line) and hub-name parsing."""

from __future__ import annotations

import gzip
import importlib.util
import json
import time
from pathlib import Path

import pytest

from encoderkit.data.hub import parse_hub_name
from encoderkit.data.tables import read_table
from encoderkit.errors import UserError

ROWS = [{"text": "good film", "label": 1}, {"text": "bad film", "label": 0}]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def put(path: Path, content: str | bytes) -> str:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return str(path)


def error_of(source: str) -> str:
    with pytest.raises(UserError) as info:
        read_table(source)
    return str(info.value)


# --- formats ------------------------------------------------------------------------------------


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    text = json.dumps(ROWS[0]) + "\n\n   \n" + json.dumps(ROWS[1]) + "\n\n"
    table = read_table(put(tmp_path / "a.jsonl", text))
    assert table.rows == ROWS
    assert table.lines == [1, 4]
    assert table.columns == ["text", "label"]
    assert table.where(1) == f"{tmp_path / 'a.jsonl'}:4"


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    # json.dumps(ensure_ascii=False) writes U+2028 / U+0085 raw; they are not line breaks in JSONL.
    rows = [{"text": "one\u2028two\x85three", "label": 1}, {"text": "four", "label": 0}]
    table = read_table(put(tmp_path / "u.jsonl", jsonl(rows)))
    assert table.rows == rows
    assert table.lines == [1, 2]


def test_json_array(tmp_path: Path) -> None:
    table = read_table(put(tmp_path / "a.json", json.dumps(ROWS, indent=2)))
    assert table.rows == ROWS
    assert table.columns == ["text", "label"]


def test_json_extension_with_one_object_per_line_is_jsonl(tmp_path: Path) -> None:
    table = read_table(put(tmp_path / "lines.json", jsonl(ROWS)))
    assert table.rows == ROWS and table.lines == [1, 2]


def test_csv_with_quoted_commas_and_quotes(tmp_path: Path) -> None:
    text = 'text,label\n"hello, world",1\n"a ""quoted"" word",0\nplain,1\n'
    table = read_table(put(tmp_path / "a.csv", text))
    assert [r["text"] for r in table.rows] == ["hello, world", 'a "quoted" word', "plain"]
    assert [r["label"] for r in table.rows] == ["1", "0", "1"]
    assert table.lines == [2, 3, 4]


def test_csv_row_spanning_lines_is_located_at_its_first_line(tmp_path: Path) -> None:
    text = 'text,label\n"two\nlines",1\nplain,0\n'
    table = read_table(put(tmp_path / "multi.csv", text))
    assert table.rows[0]["text"] == "two\nlines"
    assert table.lines == [2, 4]


def test_tsv_reads_quotes_literally(tmp_path: Path) -> None:
    # GLUE SST-2/MRPC rows hold unbalanced quotes; with CSV quoting they would swallow lines.
    text = 'sentence\tlabel\n" it \'s a charming film\t1\nshe said "no\t0\nplain\t1\n'
    table = read_table(put(tmp_path / "glue.tsv", text))
    assert [r["sentence"] for r in table.rows] == ["\" it 's a charming film", 'she said "no', "plain"]
    assert [r["label"] for r in table.rows] == ["1", "0", "1"]
    assert table.lines == [2, 3, 4]


@pytest.mark.parametrize("name", ["bom.tsv", "bom.csv", "bom.jsonl"])
def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path, name: str) -> None:
    if name.endswith(".jsonl"):
        body = jsonl(ROWS)
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        body = f"text{sep}label\ngood film{sep}1\nbad film{sep}0\n"
    table = read_table(put(tmp_path / name, "\ufeff" + body))
    assert table.columns == ["text", "label"]
    assert [r["text"] for r in table.rows] == ["good film", "bad film"]


@pytest.mark.parametrize("name", ["train.jsonl.gz", "train.jsonl", "train.tsv.gz"])
def test_gzip_by_suffix_or_magic_bytes(tmp_path: Path, name: str) -> None:
    body = "text\tlabel\ngood film\t1\nbad film\t0\n" if ".tsv" in name else jsonl(ROWS)
    table = read_table(put(tmp_path / name, gzip.compress(body.encode())))
    assert [r["text"] for r in table.rows] == ["good film", "bad film"]
    assert table.lines == ([2, 3] if ".tsv" in name else [1, 2])


@pytest.mark.parametrize("name", ["crlf.csv", "crlf.tsv", "crlf.jsonl"])
def test_crlf_line_endings(tmp_path: Path, name: str) -> None:
    if name.endswith(".jsonl"):
        body = jsonl(ROWS)
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        body = f"text{sep}label\ngood film{sep}1\nbad film{sep}0\n"
    table = read_table(put(tmp_path / name, body.replace("\n", "\r\n")))
    assert table.columns == ["text", "label"]
    assert [r["text"] for r in table.rows] == ["good film", "bad film"]
    assert [str(r["label"]) for r in table.rows] == ["1", "0"]  # no stray "\r"
    assert table.lines == ([1, 2] if name.endswith(".jsonl") else [2, 3])


# --- errors -------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    source = str(tmp_path / "nope.jsonl")
    assert error_of(source) == f"{source}: file not found"


def test_folder(tmp_path: Path) -> None:
    assert error_of(str(tmp_path)).startswith(f"{tmp_path}: is a folder")


def test_bad_json_line_names_line_3(tmp_path: Path) -> None:
    text = jsonl(ROWS) + '{"text": "c", label: 1}\n' + jsonl(ROWS)
    source = put(tmp_path / "bad.jsonl", text)
    assert error_of(source).startswith(f"{source}:3: not valid JSON")


def test_non_object_json_line(tmp_path: Path) -> None:
    source = put(tmp_path / "list.jsonl", jsonl(ROWS[:1]) + '["good film", 1]\n')
    message = error_of(source)
    assert message.startswith(f"{source}:2:") and "expected a JSON object" in message


def test_non_object_in_json_array(tmp_path: Path) -> None:
    source = put(tmp_path / "a.json", json.dumps([ROWS[0], "stray"]))
    assert "item [1]" in error_of(source)


@pytest.mark.parametrize(("name", "sep"), [("rows.csv", ","), ("rows.tsv", "\t")])
def test_wrong_field_count_names_the_line(tmp_path: Path, name: str, sep: str) -> None:
    lines = [f"text{sep}label", f"good{sep}1", f"bad{sep}0", f"odd{sep}1{sep}extra", f"fine{sep}1"]
    source = put(tmp_path / name, "\n".join(lines) + "\n")
    message = error_of(source)
    assert message.startswith(f"{source}:4: expected 2 fields")
    assert "found 3" in message


def test_bad_utf8_names_the_line(tmp_path: Path) -> None:
    raw = jsonl(ROWS).encode() + b'{"text": "caf\xe9", "label": 1}\n'
    source = put(tmp_path / "latin1.jsonl", raw)
    message = error_of(source)
    assert message.startswith(f"{source}:3: not valid UTF-8")


def test_bad_utf8_in_gzip_names_the_line(tmp_path: Path) -> None:
    raw = b"text\tlabel\nok\t1\nalso ok\t0\ncaf\xe9\t1\n"
    source = put(tmp_path / "latin1.tsv.gz", gzip.compress(raw))
    assert error_of(source).startswith(f"{source}:4: not valid UTF-8")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.jsonl", ""),
        ("e.csv", ""),
        ("e.tsv", ""),
        ("blank.jsonl", "\n\n  \n"),
        ("header.csv", "text,label\n"),
    ],
)
def test_empty_file(tmp_path: Path, name: str, content: str) -> None:
    source = put(tmp_path / name, content)
    message = error_of(source)
    assert message.startswith(source) and "empty" in message


def test_squad_json_given_to_classification(tmp_path: Path) -> None:
    squad = {
        "version": "1.1",
        "data": [{"title": "t", "paragraphs": [{"context": "Denver won.", "qas": []}]}],
    }
    source = put(tmp_path / "dev-v1.1.json", json.dumps(squad))
    message = error_of(source)
    assert message.startswith(source) and "--task qa" in message


def test_unknown_extension(tmp_path: Path) -> None:
    source = put(tmp_path / "data.xlsx", "text,label\na,1\n")
    message = error_of(source)
    assert message.startswith(source) and "'.xlsx'" in message


# --- hub names ----------------------------------------------------------------------------------


def test_parse_hub_name_gives_both_readings_of_two_parts() -> None:
    assert parse_hub_name("glue/mrpc:train") == [("glue/mrpc", None, "train"), ("glue", "mrpc", "train")]


def test_parse_hub_name_with_config_and_split() -> None:
    assert parse_hub_name("org/name/config:validation") == [("org/name", "config", "validation")]
    assert parse_hub_name("imdb") == [("imdb", None, "train")]
    assert parse_hub_name("glue/sst2:validation[:10%]")[1] == ("glue", "sst2", "validation[:10%]")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs the `datasets` package")
def test_hub_name_offline_fails_fast_with_a_user_error() -> None:
    started = time.perf_counter()
    message = error_of("no-such-org/no-such-dataset:train")
    assert message.startswith("no-such-org/no-such-dataset:train: ")
    assert "Hugging Face Hub" in message and "\n" not in message
    assert time.perf_counter() - started < 20, "offline must not wait on network retries"
