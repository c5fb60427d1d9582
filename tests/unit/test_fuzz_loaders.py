"""Property-based fuzzing of every loader and of the QA windows (hypothesis).

Loaders get random bytes, random table text and random SQuAD-like structures that mix valid and
invalid shapes at every level; each must return a well-formed result or raise a UserError whose
message starts with the file it read. Any other exception is a crash the CLI would print as a
traceback. The QA windows get random contexts (CJK, whitespace runs, punctuation, emoji) with
random answer spans, on a WordPiece and a byte-level BPE tokenizer: the windows must cover the
context, and each window's label must be exactly the tokens of the answer, or CLS when the window
does not hold all of them. Every property is bounded to a few seconds (max_examples, no deadline).
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from encoderkit.data.columns import Columns
from encoderkit.data.files import read_text
from encoderkit.data.qa_types import QAExample
from encoderkit.data.squad import check_answers, read_squad_file
from encoderkit.data.tables import Table, read_table
from encoderkit.errors import UserError
from encoderkit.tasks import classification as cls
from encoderkit.tasks.qa_features import build_features, context_offsets, label_window, truncate_question
from tests.unit.test_qa_features import KOREAN_SENTENCES, _wordpiece, bpe_tokenizer


def fuzz(examples: int) -> settings:
    """`examples` random cases, no per-example deadline (the machine is shared and slow)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every example's file (each example overwrites its own name)."""
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _assert_names_the_file(error: UserError, path: Path | str) -> None:
    message = str(error)
    assert message.startswith(str(path)), message
    assert "\n" not in message, message
    assert len(message) < 1000, "bad input is quoted briefly"


# --- building blocks ------------------------------------------------------------------------------

# Characters that trouble text handling: CJK, Hangul, accents, emoji, every kind of whitespace and
# line break, quotes, delimiters, a BOM, control characters and a lone surrogate.
TRICKY = "中文字한국어éüñ😀 \t\n\r\u3000\u2028\x85\ufeff\"',;\\{}[]:=+-@\x01\x7f\ud800\udc00"
tricky_text = st.text(alphabet=st.sampled_from(TRICKY) | st.characters(), max_size=12)

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | tricky_text
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=8,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The valid shape most of the time, any JSON value otherwise."""
    return st.one_of(valid, valid, valid, json_values)


def dump(value: Any, ascii_only: bool) -> str:
    """JSON text; NaN and Infinity are written as Python writes them (json.loads reads them back)."""
    return json.dumps(value, ensure_ascii=ascii_only)


def encode(text: str) -> bytes:
    # surrogatepass: a lone surrogate written raw becomes bytes that are not valid UTF-8
    return text.encode("utf-8", errors="surrogatepass")


# --- read_text ------------------------------------------------------------------------------------

raw_bytes = st.binary(max_size=200) | tricky_text.map(encode) | st.text(max_size=50).map(str.encode)


@fuzz(300)
@given(raw=raw_bytes, wrapping=st.sampled_from(["plain", "gzip", "gzip-suffix-only", "truncated-gzip"]))
def test_read_text_returns_the_text_or_names_the_file(scratch: Path, raw: bytes, wrapping: str) -> None:
    data = {
        "plain": raw,
        "gzip": gzip.compress(raw),
        "gzip-suffix-only": raw,
        "truncated-gzip": gzip.compress(raw)[:-5],
    }[wrapping]
    path = _write(scratch, "text.gz" if wrapping.startswith("gzip") else "text.txt", data)
    try:
        text = read_text(path)
    except UserError as error:
        _assert_names_the_file(error, path)
        return
    assert wrapping != "truncated-gzip", "a truncated gzip must not pass as complete"
    assert b"\x00" not in raw
    assert text == raw.decode("utf-8-sig")  # decoded exactly, or refused


# --- read_table -----------------------------------------------------------------------------------

ROW_KEYS = st.sampled_from(["text", "label", "text_pair", "id", "x"]) | tricky_text
row_objects = st.dictionaries(ROW_KEYS, json_values, max_size=4)
csv_cells = st.sampled_from(['"', '""', ",", "\t", "=cmd|' /C calc'!A0", "1", "-1.0", ""]) | tricky_text


@st.composite
def table_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, text): JSON lines, a JSON array, or delimited rows, each possibly damaged."""
    suffix = draw(st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt", ".jsonl.gz", ".csv.gz"]))
    ascii_only = draw(st.booleans())
    if "json" in suffix and draw(st.booleans()):
        rows = draw(st.lists(maybe(row_objects), max_size=5))
        if suffix == ".json" and draw(st.booleans()):
            text = dump(rows, ascii_only)
        else:
            text = "\n".join(dump(r, ascii_only) for r in rows)
    else:
        width = draw(st.integers(1, 3))
        lines = st.lists(csv_cells, min_size=width, max_size=width + 1)
        cells = draw(st.lists(lines, max_size=5))
        delimiter = draw(st.sampled_from([",", "\t"]))
        text = "\n".join(delimiter.join(row) for row in cells)
    if draw(st.booleans()):  # damage: cut it anywhere, or splice in something hostile
        cut = draw(st.integers(0, len(text)))
        hostile = draw(st.sampled_from(["", "\ufeff", "[" * 3000, "\\ud800", '"', "\n\n"]))
        text = text[:cut] + hostile + text[cut:]
    return f"table{suffix}", text


@fuzz(300)
@given(named=table_texts())
def test_read_table_returns_rows_with_lines_or_names_the_file(scratch: Path, named: tuple[str, str]) -> None:
    name, text = named
    data = encode(text)
    path = _write(scratch, name, gzip.compress(data) if name.endswith(".gz") else data)
    try:
        table = read_table(str(path))
    except UserError as error:
        _assert_names_the_file(error, path)
        return
    assert table.rows and all(isinstance(row, dict) for row in table.rows)
    assert len(table.lines) == len(table.rows)
    assert all(isinstance(c, str) for c in table.columns)
    numbered = [line for line in table.lines if line is not None]
    assert numbered == sorted(set(numbered))  # increasing: each row has its own source line


# --- classification: examples, labels, targets ------------------------------------------------------

SPELLINGS = ["1", "01", "1.0", "-0", " 2 ", "1e999", "nan", "1" + "0" * 5000, "yes"]
cells = json_values | st.sampled_from(SPELLINGS)
row_cells = st.fixed_dictionaries({}, optional={"text": cells, "pair": cells, "label": cells})


@fuzz(300)
@given(
    rows=st.lists(row_cells, max_size=6),
    need_label=st.booleans(),
    with_pair=st.booleans(),
)
def test_examples_labels_and_targets_are_values_or_errors_at_file_line(
    rows: list[dict[str, Any]], need_label: bool, with_pair: bool
) -> None:
    table = Table("cells.jsonl", ["text", "pair", "label"], rows, [i + 1 for i in range(len(rows))])
    columns = Columns("text", "pair" if with_pair else None, "label")
    try:
        examples = cls.read_examples(table, columns, need_label)
    except UserError as error:
        _assert_names_the_file(error, "cells.jsonl")
        return
    assert all(isinstance(e.text, str) and e.text.strip() for e in examples)
    if not need_label:
        return
    for run in (cls.label_names_from, cls.regression_targets):
        try:
            run(examples)
        except UserError as error:
            _assert_names_the_file(error, "cells.jsonl")


@fuzz(400)
@given(raw=cells)
def test_label_key_is_a_stable_spelling_or_an_error(raw: Any) -> None:
    try:
        key = cls.label_key(raw, "f.jsonl:3")
    except UserError as error:
        _assert_names_the_file(error, "f.jsonl:3")
        return
    assert isinstance(key, str)
    assert cls.label_key(key, "f.jsonl:3") == key  # the spelling of a spelling is itself


# --- read_squad_file -------------------------------------------------------------------------------

contexts = st.sampled_from(["the film four was good", "서울 은 수도 이다", " ", ""]) | tricky_text
texts = st.sampled_from(["four", "서울", "what was it?", " "]) | tricky_text
question_ids = st.sampled_from(["q1", "q2"]) | st.integers(0, 3) | tricky_text


def objects(required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Objects with these keys, each value possibly of the wrong type; or, sometimes, not an object."""
    wrap = {key: maybe(value) for key, value in required.items()}
    return maybe(st.fixed_dictionaries(wrap, optional={k: maybe(v) for k, v in (optional or {}).items()}))


answers = objects({"text": texts, "answer_start": st.integers(-200, 200)})
qas = objects(
    {"id": question_ids, "question": texts},
    {"answers": st.lists(answers, max_size=2), "is_impossible": st.booleans()},
)
paragraphs = objects({"context": contexts, "qas": st.lists(qas, max_size=3)})
articles = objects({"paragraphs": st.lists(paragraphs, max_size=3)}, {"title": tricky_text})
squad_docs = objects({"data": st.lists(articles, max_size=3)}, {"version": json_values})
jsonl_answers = objects(
    {
        "text": st.lists(maybe(texts), max_size=2),
        "answer_start": st.lists(maybe(st.integers(-50, 50)), max_size=2),
    }
)
jsonl_records = objects(
    {"id": question_ids, "question": texts, "context": contexts},
    {"answers": jsonl_answers, "title": tricky_text},
)


def _check_qa_examples(examples: list[QAExample]) -> None:
    assert examples
    assert len({e.id for e in examples}) == len(examples)
    for e in examples:
        assert isinstance(e.id, str) and e.context.strip() and e.question.strip()
        assert len(e.answer_texts) == len(e.answer_starts)
        assert all(isinstance(t, str) for t in e.answer_texts)
        assert all(isinstance(s, int) and not isinstance(s, bool) for s in e.answer_starts)
        for text in (e.context, e.question, e.id, e.title, *e.answer_texts):
            text.encode("utf-8")  # valid Unicode: no lone surrogate reaches a tokenizer or a writer
    check = check_answers(examples)
    for e in check.examples:
        for text, start in zip(e.answer_texts, e.answer_starts, strict=True):
            assert e.context[start : start + len(text)] == text  # every kept answer is where it says
    kept = sum(len(e.answer_texts) for e in check.examples)
    dropped_with_question = sum(len(e.answer_texts) for e in examples) - kept - check.skipped
    assert dropped_with_question == 0


@fuzz(300)
@given(doc=squad_docs, ascii_only=st.booleans(), gzipped=st.booleans())
def test_read_squad_json_gives_checked_examples_or_names_the_file(
    scratch: Path, doc: Any, ascii_only: bool, gzipped: bool
) -> None:
    data = encode(dump(doc, ascii_only))
    if gzipped:
        path = _write(scratch, "squad.json.gz", gzip.compress(data))
    else:
        path = _write(scratch, "squad.json", data)
    try:
        examples = read_squad_file(path)
    except UserError as error:
        _assert_names_the_file(error, path)
        return
    _check_qa_examples(examples)


@fuzz(300)
@given(records=st.lists(jsonl_records, max_size=4), ascii_only=st.booleans())
def test_read_squad_jsonl_gives_checked_examples_or_names_the_file(
    scratch: Path, records: list[Any], ascii_only: bool
) -> None:
    path = _write(scratch, "squad.jsonl", encode("\n".join(dump(r, ascii_only) for r in records)))
    try:
        examples = read_squad_file(path)
    except UserError as error:
        _assert_names_the_file(error, path)
        return
    _check_qa_examples(examples)
    assert all(e.line is not None for e in examples)


# --- QA windows: label_window on random offset maps ---------------------------------------------------


@st.composite
def offset_maps(draw: st.DrawFn) -> tuple[list[tuple[int, int] | None], int, int]:
    """(offsets, answer_start, answer_end): increasing, non-overlapping token spans among Nones."""
    offsets: list[tuple[int, int] | None] = [None] * draw(st.integers(0, 3))  # question / special tokens
    position = 0
    for _ in range(draw(st.integers(0, 12))):
        position += draw(st.integers(0, 3))  # whitespace between tokens
        width = draw(st.integers(0, 4))  # 0: an empty span, which label_window ignores
        offsets.append((position, position + width))
        position += width
        if draw(st.integers(0, 5)) == 0:
            offsets.append(None)
    answer_start = draw(st.integers(-2, position + 2))
    answer_end = draw(st.integers(answer_start - 1, position + 3))
    return offsets, answer_start, answer_end


@fuzz(600)
@given(case=offset_maps())
def test_label_window_labels_exactly_the_tokens_of_the_answer(
    case: tuple[list[tuple[int, int] | None], int, int],
) -> None:
    offsets, a0, a1 = case
    cls_index = -1
    start, end = label_window(offsets, a0, a1, cls_index)
    tokens = [k for k, span in enumerate(offsets) if span is not None and span[1] > span[0]]
    overlapping = [k for k in tokens if offsets[k][0] < a1 and offsets[k][1] > a0]  # type: ignore[index]
    inside = bool(tokens) and offsets[tokens[0]][0] <= a0 and offsets[tokens[-1]][1] >= a1  # type: ignore[index]
    if a1 > a0 and inside and overlapping:
        assert (start, end) == (overlapping[0], overlapping[-1])
    else:
        assert (start, end) == (cls_index, cls_index)


# --- QA windows: build_features on random contexts ------------------------------------------------------

WORDS = ["river", "stone", "cloud", "forest", "lantern", "the", "answer", "is"]
PIECES = [*WORDS, "中", "文", "서울", "한국어", "é", "😀", "x1", ",", ".", "?", "'s", "-", "\u200b"]
GAPS = ["", " ", "  ", "\t", "\n", " \u3000 ", "\r\n"]


@functools.cache
def wordpiece():
    corpus = [" ".join(WORDS)] * 3 + KOREAN_SENTENCES + ["中文 字 한국어 서울 é , . ?"]
    return _wordpiece(corpus)


TOKENIZERS = {"wordpiece": wordpiece, "byte-level-bpe": bpe_tokenizer}


@st.composite
def qa_examples(draw: st.DrawFn) -> QAExample:
    """A random context with a random answer: either a run of whole tokens or any character span."""
    pieces = st.tuples(st.sampled_from(PIECES), st.sampled_from(GAPS)).map("".join)
    context = "".join(draw(st.lists(pieces, min_size=1, max_size=50)))
    assume(context.strip())
    a0 = draw(st.integers(0, len(context) - 1))
    a1 = draw(st.integers(a0 + 1, min(len(context), a0 + 40)))
    question = draw(st.sampled_from(["what is the answer?", "  中文 ?", "river " * 20, "x"]))
    return QAExample("q", question, context, [context[a0:a1]], [a0])


def _context_tokens(tokenizer: Any, context: str) -> list[tuple[int, int] | None]:
    """The trimmed character span of every token of the context tokenized alone (None: whitespace)."""
    offsets = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return context_offsets(offsets, [0] * len(offsets), 0, context)


def _runs(whole: list[tuple[int, int]], windows: list[list[tuple[int, int]]]) -> list[int]:
    """Where each window's tokens start in `whole`, asserting each is a consecutive run of it, in order.

    Byte-level BPE gives every byte token of a multi-byte character the same span, so a window's
    first span can occur more than once: take the first run at or after the previous window's.
    """
    positions: list[int] = []
    for window in windows:
        at = positions[-1] if positions else 0
        while at < len(whole) and whole[at : at + len(window)] != window:
            at += 1
        assert at < len(whole), "a window is not a consecutive run of the context's tokens"
        positions.append(at)
    return positions


def _answer(example: QAExample, whole: list[tuple[int, int]]) -> tuple[str, int, int]:
    """(answer text, start, end): trimmed of whitespace, then of characters no token covers
    (a zero-width space the normalizer drops), which is the span labels are made for."""
    text, start = example.answer_texts[0], example.answer_starts[0]
    a0 = start + len(text) - len(text.lstrip())
    a1 = a0 + len(text.strip())
    overlapping = [span for span in whole if span[0] < a1 and span[1] > a0]
    if overlapping:
        a0, a1 = max(a0, overlapping[0][0]), min(a1, max(e for _, e in overlapping))
    return text.strip(), a0, a1


@pytest.mark.parametrize("name", list(TOKENIZERS))
@fuzz(300)
@given(example=qa_examples(), aligned=st.booleans())
def test_windows_cover_the_context_and_label_exactly_the_answer(
    name: str, example: QAExample, aligned: bool
) -> None:
    tokenizer = TOKENIZERS[name]()
    raw = _context_tokens(tokenizer, example.context)
    whole = [span for span in raw if span is not None]
    if aligned and whole:  # an answer made of whole tokens must decode back to exactly its text
        i = example.answer_starts[0] % len(whole)
        j = min(len(whole) - 1, i + len(example.answer_texts[0]) % 4)
        a0, a1 = whole[i][0], whole[j][1]
        example = QAExample("q", example.question, example.context, [example.context[a0:a1]], [a0])
    stride = 8
    features = build_features(tokenizer, [example], max_length=32, doc_stride=stride, max_query_length=6)

    # Coverage: each window is a consecutive run of the context's tokens, in order, and together
    # the runs cover every token: no part of the context is lost between windows.
    windows = [[span for span in offsets if span is not None] for offsets in features.context_offsets]
    nonempty = [w for w in windows if w]
    positions = _runs(whole, nonempty)
    covered = {k for at, w in zip(positions, nonempty, strict=True) for k in range(at, at + len(w))}
    assert covered == set(range(len(whole)))

    answer, a0, a1 = _answer(example, whole)
    assert features.start_positions is not None and features.end_positions is not None
    labelled = 0
    for f, offsets in enumerate(features.context_offsets):
        s, e, window = features.start_positions[f], features.end_positions[f], windows[f]
        overlapping = [k for k, span in enumerate(offsets) if span and span[0] < a1 and span[1] > a0]
        inside = bool(window) and window[0][0] <= a0 and window[-1][1] >= a1
        if not (answer and inside and overlapping):
            assert (s, e) == (features.cls_index[f], features.cls_index[f])
            continue
        labelled += 1
        assert (s, e) == (overlapping[0], overlapping[-1])  # exactly the window's tokens of the answer
        if aligned:
            assert example.context[offsets[s][0] : offsets[e][1]] == example.context[a0:a1] == answer  # type: ignore[index]
    # Any run of at most stride + 1 tokens lies whole in some window, since windows overlap by `stride`.
    spread = [k for k, span in enumerate(raw) if span and span[0] < a1 and span[1] > a0]
    if answer and spread and spread[-1] - spread[0] + 1 <= stride + 1:
        assert labelled, "an answer no longer than the stride fits whole in some window"


@pytest.mark.parametrize("name", list(TOKENIZERS))
@fuzz(100)
@given(question=st.lists(st.sampled_from(PIECES + GAPS), max_size=30).map("".join), limit=st.integers(1, 8))
def test_truncate_question_fits_and_is_a_prefix(name: str, question: str, limit: int) -> None:
    tokenizer = TOKENIZERS[name]()
    cut = truncate_question(tokenizer, question, limit)
    assert question.lstrip().startswith(cut)
    assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= limit
