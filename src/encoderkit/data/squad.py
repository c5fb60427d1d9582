"""Read extractive-QA data (SQuAD v1.1 / v2.0 / KorQuAD 1.0 JSON, or JSONL) and check its answers.

Two input shapes are accepted, either optionally gzipped:

* SQuAD JSON: `{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
  "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}], "version"?}`.
* JSONL (`.jsonl`, `.jsonl.gz`): one object per line with `id`, `question`, `context`,
  optional `title`, and optional `answers: {"text": [...], "answer_start": [...]}` (leave it
  out for predict-only input).

Every problem is a `UserError` that names the file and either the line (JSONL, or where the
JSON does not parse) or the JSON path of the bad field, e.g. `data[3].paragraphs[0].qas[2].id`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoderkit.data.files import loads_json, read_text
from encoderkit.data.qa_types import QAExample
from encoderkit.data.text_checks import check_text, reject_surrogates
from encoderkit.errors import UserError, at, brief


def read_squad_file(path: str | Path) -> list[QAExample]:
    """Read every question of a SQuAD-format JSON file or a JSONL file, in file order.

    The format follows the name: `*.jsonl` or `*.jsonl.gz` is JSONL, anything else is SQuAD
    JSON. Gzip is recognised by a `.gz` suffix or by its magic bytes; text is UTF-8 with or
    without a BOM. `is_impossible: true` questions get empty answer lists (their answers and
    any v2 `plausible_answers` are ignored). JSONL examples carry their 1-based `line`; SQuAD
    JSON examples have `line=None`.

    Raises:
        UserError: the file is missing or unreadable, is not valid JSON/JSONL, does not have the
            shape above, holds no questions, repeats an id, or has an empty context or question,
            answers that are not lists, or an `answer_start` that is not an int.
    """
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv", ".txt", ".conll")):  # what another task reads, not a parse error
        kind = name.rsplit(".", 1)[-1].upper()
        raise UserError(
            f"{path}: a {kind} file; QA reads SQuAD-format JSON, or JSONL with question, context "
            "and answers (is --task right?)"
        )
    text = read_text(path)
    examples = _parse_jsonl(text, path) if name.endswith(".jsonl") else _parse_squad_json(text, path)
    if not examples:
        raise UserError(f"{path}: no questions found")
    return examples


# --- fields -------------------------------------------------------------------------------------
# Field helpers take `where`, the location of the object being read, already formatted and ending
# where a key name can follow: "file: data[0].paragraphs[2].qas[1]." for SQuAD JSON, or
# "file:7: " for a JSONL line. Messages then read "file: data[0]...qas[1].id: missing".


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    """Return `value` if it is a `kind` (a bool never stands in for an int), else raise."""
    if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
        return value
    raise UserError(f"{where}: expected {what}, got {type(value).__name__}")


def _required_text(obj: dict[str, Any], key: str, where: str) -> str:
    """The non-blank string `obj[key]`."""
    if obj.get(key) is None:
        raise UserError(f"{where}{key}: missing")
    value = _expect(obj[key], str, f"{where}{key}", "a string")
    if not value.strip():
        raise UserError(f"{where}{key}: empty")
    return check_text(value, f"{where}{key}")


def _question_id(obj: dict[str, Any], where: str) -> str:
    """The question id as a string; ints are accepted because some datasets number questions."""
    if obj.get("id") is None:
        raise UserError(f"{where}id: missing")
    qid = _expect(obj["id"], (str, int), f"{where}id", "a string")
    if isinstance(qid, str) and not qid.strip():
        raise UserError(f"{where}id: empty")
    return str(qid)


def _title(obj: dict[str, Any], where: str) -> str:
    # `is None`, not `or ""`: a falsy wrong type (0, {}, []) is still the wrong type.
    title = obj.get("title")
    return "" if title is None else _expect(title, str, f"{where}title", "a string")


# --- SQuAD JSON ---------------------------------------------------------------------------------


def _squad_answers(qa: dict[str, Any], where: str) -> tuple[list[str], list[int]]:
    """The (texts, starts) of one `qas` entry; empty for is_impossible or without `answers`."""
    impossible = _expect(qa.get("is_impossible", False), bool, f"{where}is_impossible", "true or false")
    answers = qa.get("answers")
    if impossible or answers is None:
        return [], []
    _expect(answers, list, f"{where}answers", "a list")
    texts: list[str] = []
    starts: list[int] = []
    for k, answer in enumerate(answers):
        here = f"{where}answers[{k}]"
        _expect(answer, dict, here, "an object")
        for key in ("text", "answer_start"):
            if key not in answer:
                raise UserError(f"{here}.{key}: missing")
        texts.append(_expect(answer["text"], str, f"{here}.text", "a string"))
        starts.append(_expect(answer["answer_start"], int, f"{here}.answer_start", "an int"))
    return texts, starts


def _parse_squad_json(text: str, path: Path) -> list[QAExample]:
    doc = loads_json(text, path)
    reject_surrogates(doc, text, str(path))
    if not isinstance(doc, dict) or "data" not in doc:
        raise UserError(f'{path}: not SQuAD format: expected an object with a "data" list at the top')
    examples: list[QAExample] = []
    seen: dict[str, str] = {}  # id -> JSON path of the question that first used it
    for i, article in enumerate(_expect(doc["data"], list, f"{path}: data", "a list")):
        where = f"{path}: data[{i}]"
        _expect(article, dict, where, "an object")
        title = _title(article, f"{where}.")
        if "paragraphs" not in article:
            raise UserError(f"{where}.paragraphs: missing")
        for j, paragraph in enumerate(_expect(article["paragraphs"], list, f"{where}.paragraphs", "a list")):
            here = f"{where}.paragraphs[{j}]"
            _expect(paragraph, dict, here, "an object")
            context = _required_text(paragraph, "context", f"{here}.")
            if "qas" not in paragraph:
                raise UserError(f"{here}.qas: missing")
            for k, qa in enumerate(_expect(paragraph["qas"], list, f"{here}.qas", "a list")):
                field = f"{here}.qas[{k}]"
                _expect(qa, dict, field, "an object")
                qid = _question_id(qa, f"{field}.")
                if qid in seen:
                    first = seen[qid].removeprefix(f"{path}: ")
                    raise UserError(f"{field}.id: duplicate id {brief(qid)}, first used at {first}.id")
                seen[qid] = field
                question = _required_text(qa, "question", f"{field}.")
                texts, starts = _squad_answers(qa, f"{field}.")
                examples.append(QAExample(qid, question, context, texts, starts, title=title))
    return examples


# --- JSONL --------------------------------------------------------------------------------------


def _jsonl_answers(obj: dict[str, Any], where: str) -> tuple[list[str], list[int]]:
    """The (texts, starts) of a record's `{"text": [...], "answer_start": [...]}`; empty if absent."""
    answers = obj.get("answers")
    if answers is None:
        return [], []
    _expect(answers, dict, f"{where}answers", '{"text": [...], "answer_start": [...]}')
    texts = _expect(answers.get("text"), list, f"{where}answers.text", "a list")
    starts = _expect(answers.get("answer_start"), list, f"{where}answers.answer_start", "a list")
    if len(texts) != len(starts):
        raise UserError(f"{where}answers: {len(texts)} texts but {len(starts)} answer_start values")
    for k, (answer, start) in enumerate(zip(texts, starts, strict=True)):
        _expect(answer, str, f"{where}answers.text[{k}]", "a string")
        _expect(start, int, f"{where}answers.answer_start[{k}]", "an int")
    return list(texts), list(starts)


def _jsonl_record(obj: Any, where: str, line: int) -> QAExample:
    """One JSONL line's object as a QAExample; `where` is "file:line: "."""
    _expect(obj, dict, where.removesuffix(": "), "a JSON object")
    qid = _question_id(obj, where)
    question = _required_text(obj, "question", where)
    context = _required_text(obj, "context", where)
    texts, starts = _jsonl_answers(obj, where)
    return QAExample(qid, question, context, texts, starts, title=_title(obj, where), line=line)


def _parse_jsonl(text: str, path: Path) -> list[QAExample]:
    examples: list[QAExample] = []
    seen: dict[str, int] = {}  # id -> line where it first appeared
    # Split on "\n" only: str.splitlines also breaks at U+2028 and friends, which JSON strings may hold.
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue  # blank lines (a trailing newline, spacing) carry no record
        # A BOM starting a line: files saved with one (Windows tools), concatenated with `cat`.
        obj = loads_json(raw.removeprefix("\ufeff"), path, line)
        reject_surrogates(obj, raw, at(path, line))
        example = _jsonl_record(obj, f"{at(path, line)}: ", line)
        if example.id in seen:
            first = at(path, seen[example.id])
            raise UserError(f"{at(path, line)}: duplicate id {brief(example.id)}, first used at {first}")
        seen[example.id] = line
        examples.append(example)
    return examples


# --- answer checks ------------------------------------------------------------------------------


@dataclass
class AnswerCheck:
    """What `check_answers` did: answers moved, answers dropped, the kept examples, and why."""

    repaired: int
    skipped: int
    examples: list[QAExample]
    messages: list[str]


def _describe(example: QAExample) -> str:
    return f"question {brief(example.id)}" + (f" (line {example.line})" if example.line is not None else "")


def _nearest_occurrence(context: str, text: str, start: int) -> int | None:
    """Start of the occurrence of `text` in `context` closest to `start` (earlier wins a tie)."""
    best: int | None = None
    pos = context.find(text)
    while pos != -1:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        pos = context.find(text, pos + 1)
    return best


def _check_one(text: str, start: int, context: str, window: int) -> tuple[int | None, str]:
    """(start to keep, "") for a good or repairable answer; (None, why) for one to drop."""
    if not text.strip():
        return None, "answer text is empty"
    if start >= 0 and context[start : start + len(text)] == text:
        return start, ""
    nearest = _nearest_occurrence(context, text, start)
    if nearest is None:
        return None, f"answer {brief(text)} does not occur in the context"
    if abs(nearest - start) > window:
        return None, (
            f"answer {brief(text)} is not at {brief(start)}; its nearest occurrence, at {nearest}, is more "
            f"than {window} characters away"
        )
    return nearest, ""


def check_answers(examples: list[QAExample], window: int = 100) -> AnswerCheck:
    """Check that each answer's text is found at its `answer_start`, repairing small offsets.

    An answer whose text is not at its start is moved to the occurrence of the text nearest
    to the start when that is at most `window` characters away (`repaired`); otherwise, or
    when the text is empty or whitespace, it is dropped (`skipped`, with a message naming the
    question). An example that had answers and lost them all is removed, not turned into a
    no-answer example; examples that never had answers are kept as they are. The input is not
    modified: returned examples are new objects.
    """
    repaired = skipped = 0
    kept: list[QAExample] = []
    messages: list[str] = []
    for example in examples:
        texts: list[str] = []
        starts: list[int] = []
        for text, start in zip(example.answer_texts, example.answer_starts, strict=True):
            new_start, reason = _check_one(text, start, example.context, window)
            if new_start is None:
                skipped += 1
                messages.append(f"{_describe(example)}: {reason}; answer dropped")
                continue
            repaired += new_start != start
            texts.append(text)
            starts.append(new_start)
        if example.answer_texts and not texts:
            messages.append(f"{_describe(example)}: no valid answer left; question removed")
            continue
        kept.append(dataclasses.replace(example, answer_texts=texts, answer_starts=starts))
    return AnswerCheck(repaired=repaired, skipped=skipped, examples=kept, messages=messages)


def gold_answers(examples: list[QAExample]) -> dict[str, list[str]]:
    """`{id: answer texts}` for the metrics in `encoderkit.evaluation.squad_metrics`."""
    return {example.id: list(example.answer_texts) for example in examples}
