"""Reading SQuAD JSON / JSONL files, their error messages, and answer-offset checks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from encoderkit.data.qa_types import QAExample
from encoderkit.data.squad import check_answers, gold_answers, read_squad_file
from encoderkit.errors import UserError

CONTEXT = "Denver Broncos won Super Bowl 50 in 2016."


def qa(qid: str = "q1", question: str = "Who won?", **extra: Any) -> dict[str, Any]:
    return {
        "id": qid,
        "question": question,
        "answers": [{"text": "Denver Broncos", "answer_start": 0}],
        **extra,
    }


def squad_doc(*paragraph_qas: list[dict[str, Any]], context: str = CONTEXT) -> dict[str, Any]:
    """One article per entry of `paragraph_qas`, each with one paragraph."""
    return {
        "version": "1.1",
        "data": [
            {"title": f"T{i}", "paragraphs": [{"context": context, "qas": qas}]}
            for i, qas in enumerate(paragraph_qas)
        ],
    }


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_error(path: Path) -> str:
    with pytest.raises(UserError) as info:
        read_squad_file(path)
    message = str(info.value)
    assert path.name in message
    return message


# --- reading good files ----------------------------------------------------------------------


def test_reads_squad_v1(tmp_path: Path) -> None:
    doc = squad_doc(
        [qa("q1"), qa("q2", "Which year?", answers=[{"text": "2016", "answer_start": 36}])], [qa("q3")]
    )
    examples = read_squad_file(write_json(tmp_path / "train.json", doc))
    assert [e.id for e in examples] == ["q1", "q2", "q3"]
    first = examples[0]
    assert (first.question, first.context, first.title, first.line) == ("Who won?", CONTEXT, "T0", None)
    assert (first.answer_texts, first.answer_starts) == (["Denver Broncos"], [0])
    assert examples[1].answer_texts == ["2016"] and examples[1].answer_starts == [36]
    assert examples[2].title == "T1"


def test_reads_squad_v2_is_impossible(tmp_path: Path) -> None:
    impossible = qa("q2", is_impossible=True, plausible_answers=[{"text": "Denver", "answer_start": 0}])
    impossible["answers"] = [{"text": "ignored", "answer_start": 3}]
    doc = squad_doc([qa("q1", is_impossible=False), impossible])
    examples = read_squad_file(write_json(tmp_path / "dev-v2.0.json", doc))
    assert examples[0].answer_texts == ["Denver Broncos"] and not examples[0].is_impossible
    assert (examples[1].answer_texts, examples[1].answer_starts) == ([], [])
    assert examples[1].is_impossible


def test_reads_korquad_utf8_with_bom(tmp_path: Path) -> None:
    context = "임진왜란은 1592년에 일어났다."
    doc = squad_doc(
        [{"id": "6566495-0-0", "question": "언제?", "answers": [{"text": "1592년", "answer_start": 6}]}]
    )
    doc["data"][0]["paragraphs"][0]["context"] = context
    path = tmp_path / "KorQuAD_v1.0_dev.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8-sig")
    (example,) = read_squad_file(path)
    assert example.context == context
    assert context[6 : 6 + len("1592년")] == example.answer_texts[0]


def test_reads_gzip_by_suffix_and_by_magic_bytes(tmp_path: Path) -> None:
    payload = json.dumps(squad_doc([qa("q1")])).encode()
    by_suffix = tmp_path / "train.json.gz"
    by_magic = tmp_path / "train.json"  # gzipped but not named so
    by_suffix.write_bytes(gzip.compress(payload))
    by_magic.write_bytes(gzip.compress(payload))
    assert [e.id for e in read_squad_file(by_suffix)] == ["q1"]
    assert [e.id for e in read_squad_file(str(by_magic))] == ["q1"]


def test_reads_jsonl_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    lines = [
        json.dumps({"id": "a", "question": "Who?", "context": CONTEXT, "title": "T",
                    "answers": {"text": ["Denver Broncos"], "answer_start": [0]}}),
        "",  # a blank line is skipped but still counted
        json.dumps({"id": "b", "question": "Which year?", "context": CONTEXT}),  # predict input
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    a, b = read_squad_file(path)
    assert (a.id, a.line, a.title, a.answer_texts, a.answer_starts) == ("a", 1, "T", ["Denver Broncos"], [0])
    assert (b.id, b.line, b.title, b.answer_texts) == ("b", 3, "", [])


def test_reads_gzipped_jsonl(tmp_path: Path) -> None:
    record = {"id": "a", "question": "Who?", "context": CONTEXT}
    path = tmp_path / "predict.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(record) + "\n").encode()))
    assert [(e.id, e.line) for e in read_squad_file(path)] == [("a", 1)]


def test_gold_answers() -> None:
    examples = [QAExample("a", "q", "c", ["x", "y"], [0, 1]), QAExample("b", "q", "c")]
    assert gold_answers(examples) == {"a": ["x", "y"], "b": []}


# --- SQuAD JSON errors -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in read_error(tmp_path / "nope.json")


def test_invalid_json_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "data": [\n    {"title": "x",,}\n  ]\n}\n', encoding="utf-8")
    assert f"{path}:3:" in read_error(path)


def test_jsonl_content_in_a_json_file_gets_a_hint(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.json", [{"id": "a"}, {"id": "b"}])
    message = read_error(path)
    assert f"{path}:2:" in message and ".jsonl" in message


@pytest.mark.parametrize("doc", [[1, 2], {"version": "1.1"}, {"data": {"title": "x"}}])
def test_not_squad_shape(tmp_path: Path, doc: Any) -> None:
    assert "data" in read_error(write_json(tmp_path / "shape.json", doc))


def test_no_questions(tmp_path: Path) -> None:
    assert "no questions" in read_error(write_json(tmp_path / "empty.json", {"data": []}))


def test_question_without_id(tmp_path: Path) -> None:
    bad = qa()
    del bad["id"]
    message = read_error(write_json(tmp_path / "noid.json", squad_doc([qa("q0"), bad])))
    assert "data[0].paragraphs[0].qas[1].id: missing" in message


def test_duplicate_ids_name_both_places(tmp_path: Path) -> None:
    message = read_error(write_json(tmp_path / "dup.json", squad_doc([qa("q1")], [qa("q2"), qa("q1")])))
    assert "data[1].paragraphs[0].qas[1].id" in message
    assert "data[0].paragraphs[0].qas[0].id" in message
    assert "'q1'" in message


@pytest.mark.parametrize(
    ("level", "change", "field"),
    [
        ("paragraph", {"context": "  "}, "data[0].paragraphs[0].context: empty"),
        ("qa", {"question": ""}, "data[0].paragraphs[0].qas[0].question: empty"),
        ("qa", {"answers": "Denver"}, "qas[0].answers: expected a list"),
        ("qa", {"is_impossible": "no"}, "qas[0].is_impossible: expected true or false"),
        ("answer", {"answer_start": "0"}, "qas[0].answers[0].answer_start: expected an int, got str"),
        ("answer", {"answer_start": True}, "qas[0].answers[0].answer_start: expected an int, got bool"),
        ("answer", {"text": None}, "qas[0].answers[0].text: expected a string"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, level: str, change: dict[str, Any], field: str) -> None:
    doc = squad_doc([qa()])
    paragraph = doc["data"][0]["paragraphs"][0]
    target = {"paragraph": paragraph, "qa": paragraph["qas"][0], "answer": paragraph["qas"][0]["answers"][0]}
    target[level].update(change)
    assert field in read_error(write_json(tmp_path / "bad_field.json", doc))


def test_not_gzip_despite_suffix(tmp_path: Path) -> None:
    path = tmp_path / "train.json.gz"
    path.write_text("{}", encoding="utf-8")
    assert "gzip" in read_error(path)


def test_not_utf8_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{\n"data": [\n"caf\xe9"]}'.encode("latin-1"))
    assert f"{path}:3:" in read_error(path)


# --- JSONL errors ----------------------------------------------------------------------------


def good_record(qid: str = "a") -> dict[str, Any]:
    return {
        "id": qid,
        "question": "Who?",
        "context": CONTEXT,
        "answers": {"text": ["Denver"], "answer_start": [0]},
    }


def test_jsonl_invalid_json_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good_record()) + '\n{"id": "b",\n', encoding="utf-8")
    assert f"{path}:2:" in read_error(path)


def test_jsonl_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [good_record("a"), good_record("b"), good_record("a")])
    message = read_error(path)
    assert f"{path}:3:" in message and f"{path}:1" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"id": None}, "id: missing"),
        ({"question": " "}, "question: empty"),
        ({"context": ""}, "context: empty"),
        ({"answers": {"text": "Denver", "answer_start": [0]}}, "answers.text: expected a list"),
        (
            {"answers": {"text": ["Denver"], "answer_start": ["0"]}},
            "answers.answer_start[0]: expected an int",
        ),
        ({"answers": {"text": ["Denver", "Broncos"], "answer_start": [0]}}, "answers: 2 texts but 1"),
        ({"answers": [{"text": "Denver", "answer_start": 0}]}, "answers: expected"),
    ],
)
def test_jsonl_bad_fields_name_the_line(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [good_record("a"), {**good_record("b"), **change}])
    message = read_error(path)
    assert f"{path}:2: {expected}" in message


def test_jsonl_line_must_be_an_object(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "list.jsonl", [good_record(), ["not", "an", "object"]])
    assert f"{path}:2: expected a JSON object" in read_error(path)


# --- check_answers ---------------------------------------------------------------------------


def example(
    texts: list[str], starts: list[int], context: str = CONTEXT, qid: str = "q", line: int | None = None
):
    return QAExample(qid, "question?", context, texts, starts, line=line)


def test_good_answers_are_kept_as_new_objects() -> None:
    original = example(["Broncos", "2016"], [7, 36])
    result = check_answers([original])
    assert (result.repaired, result.skipped, result.messages) == (0, 0, [])
    (kept,) = result.examples
    assert kept == original and kept is not original
    assert kept.answer_texts is not original.answer_texts


def test_small_offset_is_repaired_to_the_nearest_occurrence() -> None:
    context = "cat dog cat dog cat"  # "cat" at 0, 8 and 16
    result = check_answers([example(["cat", "cat"], [9, 13], context)])
    assert result.repaired == 2 and result.skipped == 0
    assert result.examples[0].answer_starts == [8, 16]


def test_input_is_not_modified() -> None:
    original = example(["Broncos"], [5])
    check_answers([original])
    assert original.answer_starts == [5]


def test_occurrence_beyond_the_window_is_dropped() -> None:
    context = "Paris" + " filler" * 30  # 215 characters; "Paris" only at 0
    far = example(["Paris"], [150], context, qid="far")
    dropped = check_answers([far], window=100)
    assert (dropped.repaired, dropped.skipped, dropped.examples) == (0, 1, [])
    assert any("'far'" in m and "150" in m for m in dropped.messages)
    repaired = check_answers([far], window=150)
    assert repaired.repaired == 1 and repaired.examples[0].answer_starts == [0]


def test_missing_and_empty_answers_are_dropped_but_the_question_kept_while_one_remains() -> None:
    result = check_answers([example(["Broncos", "Seahawks", "  "], [7, 0, 3], qid="mixed", line=4)])
    assert (result.repaired, result.skipped) == (0, 2)
    (kept,) = result.examples
    assert (kept.answer_texts, kept.answer_starts) == (["Broncos"], [7])
    assert len(result.messages) == 2
    assert all("'mixed' (line 4)" in m for m in result.messages)


def test_question_that_loses_all_answers_is_removed_not_made_unanswerable() -> None:
    no_answer = example([], [], qid="v2-null")
    lost = example(["Seahawks"], [0], qid="lost")
    result = check_answers([no_answer, lost])
    assert [e.id for e in result.examples] == ["v2-null"]
    assert result.skipped == 1
    assert any("'lost'" in m and "removed" in m for m in result.messages)


def test_a_table_file_for_qa_says_what_qa_reads(tmp_path: Path) -> None:
    path = tmp_path / "reviews_train.csv"
    path.write_text("text,label\ngood,1\n")
    with pytest.raises(
        UserError, match=r"reviews_train.csv: a CSV file; QA reads SQuAD-format JSON, or JSONL"
    ):
        read_squad_file(path)
