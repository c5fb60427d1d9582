"""Extractive QA features: sliding windows over the context and start/end training labels.

Pure functions, no model. `build_features` tokenizes (question, context) pairs into overlapping
windows with any fast tokenizer (WordPiece, byte-level BPE, SentencePiece) and keeps, for every
token, the character span it covers in the context, so labels and predicted spans are mapped
through offsets and never through decoded text. `label_window` is the labelling rule on one
window's offsets, separate so it can be tested on hand-built offset maps.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from encoderkit.data.qa_types import QAExample
from encoderkit.errors import UserError

Offsets = list[tuple[int, int] | None]

# Examples tokenized per call: bounds the memory held by the tokenizer's Encoding objects.
_EXAMPLES_PER_CALL = 1000


@dataclass
class QAFeatures:
    """Windows of tokenized (question, context) pairs, one row per window ("feature").

    `context_offsets[f][k]` is the [start, end) character span of token k of feature f in its
    example's context, trimmed of surrounding whitespace; it is None for tokens that carry no
    context characters: question, special, padding, and whitespace-only tokens (byte-level BPE
    "Ġ", SentencePiece "▁"). `cls_index[f]` is the token that stands for "no answer".
    Rows are unpadded unless built with `pad_to_max_length`.
    """

    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    token_type_ids: list[list[int]] | None
    example_index: list[int]
    context_offsets: list[Offsets]
    cls_index: list[int]
    start_positions: list[int] | None
    end_positions: list[int] | None

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class FeatureStats:
    """Data-check summary of a feature set.

    `no_answer_windows_share` is the share of windows labelled with the CLS token;
    `answers_lost_to_truncation` counts answerable examples where no window holds the whole answer.
    """

    examples: int
    features: int
    windows_per_example_mean: float
    windows_per_example_max: int
    no_answer_windows_share: float
    answers_lost_to_truncation: int


def label_window(offsets: Offsets, answer_start: int, answer_end: int, cls_index: int) -> tuple[int, int]:
    """Token span (start, end), both inclusive, of the answer chars [answer_start, answer_end) in one window.

    Args:
        offsets: per token of the window, its [start, end) char span in the context, or None for
            tokens outside the context. Context spans are in increasing order; empty spans are ignored.
        answer_start, answer_end: the answer's char span in the context, end exclusive.
        cls_index: the label used when the window cannot answer.

    Returns:
        (start, end) where start is the context token containing `answer_start` (or the first one
        after it when `answer_start` falls in whitespace) and end the token containing
        `answer_end - 1` (or the last one before it). (cls_index, cls_index) when the window's
        context tokens do not cover the whole answer (it crosses the window edge, or was cut by
        truncation), when the window has no context tokens, or when the answer is empty.
    """
    tokens = [(k, span) for k, span in enumerate(offsets) if span is not None and span[1] > span[0]]
    if not tokens or answer_end <= answer_start:
        return cls_index, cls_index
    positions = [k for k, _ in tokens]
    starts = [span[0] for _, span in tokens]
    ends = [span[1] for _, span in tokens]
    if starts[0] > answer_start or ends[-1] < answer_end:
        return cls_index, cls_index
    first = bisect_right(ends, answer_start)  # first token ending after answer_start
    last = bisect_left(starts, answer_end) - 1  # last token starting before answer_end
    if last < first:  # the answer lies entirely in whitespace between two tokens
        return cls_index, cls_index
    return positions[first], positions[last]


def answer_span(example: QAExample) -> tuple[int, int] | None:
    """Char span [start, end) of the example's first answer, trimmed of surrounding whitespace.

    Only the first answer is used: SQuAD-style training sets have exactly one, and one consistent
    target per example is what the span loss expects. None for an unanswerable example (or an
    answer that is only whitespace).
    """
    if not example.answer_texts:
        return None
    text, start = example.answer_texts[0], example.answer_starts[0]
    stripped = text.strip()
    if not stripped:
        return None
    start += len(text) - len(text.lstrip())
    return start, start + len(stripped)


def covered_span(span: tuple[int, int], tokens: list[tuple[int, int]]) -> tuple[int, int] | None:
    """`span` trimmed to the characters covered by the tokens it overlaps; None when it overlaps none.

    The whitespace trim of `answer_span`, generalised to every character no token holds: the
    normalizer drops zero-width spaces, soft hyphens and direction marks (U+200B, U+00AD, U+200E).
    Untrimmed, an answer starting with one, at the start of a window, reads as crossing the
    window's edge and is labelled "no answer" even in the only window there is.
    """
    start, end = span
    overlapping = [(s, e) for s, e in tokens if s < end and e > start]
    if not overlapping:
        return None
    return max(start, min(s for s, _ in overlapping)), min(end, max(e for _, e in overlapping))


def labelled_spans(
    examples: list[QAExample], example_index: list[int], window_offsets: list[Offsets]
) -> dict[int, tuple[int, int]]:
    """Per example index (as in `example_index`): the answer span that `label_window` is given.

    Windows cover the whole context, so together they hold every token of their example.
    """
    tokens: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for owner, offsets in zip(example_index, window_offsets, strict=True):
        tokens[owner].extend(span for span in offsets if span is not None)
    spans = {}
    for owner, owned in tokens.items():
        span = answer_span(examples[owner])
        covered = covered_span(span, owned) if span else None
        if covered:
            spans[owner] = covered
    return spans


_ROW_FIELDS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "example_index",
    "context_offsets",
    "cls_index",
    "start_positions",
    "end_positions",
)


def build_features(
    tokenizer: Any,
    examples: list[QAExample],
    max_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    with_labels: bool = True,
    pad_to_max_length: bool = False,
) -> QAFeatures:
    """Tokenize examples into overlapping windows of at most `max_length` tokens.

    The question (left-stripped, cut to at most `max_query_length` tokens) goes first and the
    context is truncated into windows that overlap by `doc_stride` tokens. A tokenizer that pads
    on the left gets the pair in the order (context, question), the HF convention. Rows are not
    padded unless `pad_to_max_length` (on the tokenizer's padding side).

    Args:
        tokenizer: a fast (Rust-backed) HF tokenizer; offsets come from it.
        examples: the examples; `example_index` of each feature points into this list.
        with_labels: compute `start_positions`/`end_positions` with `label_window` on the first
            answer; an unanswerable example is labelled with the CLS index in every window.

    Raises:
        UserError: the tokenizer is not fast, or `doc_stride` is not smaller than the context room
            of a window with the longest allowed question (max_length - max_query_length - specials).
    """
    _check_lengths(tokenizer, max_length, doc_stride, max_query_length)
    rows: dict[str, list[Any]] = {name: [] for name in _ROW_FIELDS}
    has_type_ids = False
    for base in range(0, len(examples), _EXAMPLES_PER_CALL):
        chunk = examples[base : base + _EXAMPLES_PER_CALL]
        encoding = _encode_windows(
            tokenizer, chunk, max_length, doc_stride, max_query_length, pad_to_max_length
        )
        has_type_ids = "token_type_ids" in encoding
        _collect_rows(rows, encoding, chunk, base, tokenizer, with_labels)
    return QAFeatures(
        input_ids=rows["input_ids"],
        attention_mask=rows["attention_mask"],
        token_type_ids=rows["token_type_ids"] if has_type_ids else None,
        example_index=rows["example_index"],
        context_offsets=rows["context_offsets"],
        cls_index=rows["cls_index"],
        start_positions=rows["start_positions"] if with_labels else None,
        end_positions=rows["end_positions"] if with_labels else None,
    )


def _check_lengths(tokenizer: Any, max_length: int, doc_stride: int, max_query_length: int) -> None:
    """Fail early, with the setting names, where the tokenizer would fail later and less clearly."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("QA features need a fast tokenizer (character offsets); this one is not fast")
    if max_query_length < 1 or doc_stride < 0:
        raise UserError(
            f"max_query_length must be >= 1 and doc_stride >= 0, got {max_query_length}, {doc_stride}"
        )
    room = max_length - max_query_length - tokenizer.num_special_tokens_to_add(pair=True)
    if doc_stride >= room:
        raise UserError(
            f"doc_stride ({doc_stride}) must be smaller than the context room per window ({room} = "
            f"max_length {max_length} - max_query_length {max_query_length} - special tokens)"
        )


def truncate_question(tokenizer: Any, question: str, max_query_length: int) -> str:
    """The left-stripped question, cut so that it tokenizes to at most `max_query_length` tokens.

    The cut is made in the string, at the start char of the first token that does not fit, so the
    question is re-tokenized as text and its offsets stay exact (decoding cut token ids would not).
    """
    question = question.lstrip()
    while True:
        offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) <= max_query_length:
            return question
        # re-tokenizing a prefix can split differently; loop until it fits, shrinking every time
        cut = min(offsets[max_query_length][0], len(question) - 1)
        question = question[:cut].rstrip()


def _truncate_questions(tokenizer: Any, questions: list[str], max_query_length: int) -> list[str]:
    """`truncate_question` for a batch: one tokenizer call finds the few questions that need cutting."""
    stripped = [q.lstrip() for q in questions]
    lengths = [len(ids) for ids in tokenizer(stripped, add_special_tokens=False)["input_ids"]]
    return [
        q if n <= max_query_length else truncate_question(tokenizer, q, max_query_length)
        for q, n in zip(stripped, lengths, strict=True)
    ]


def _encode_windows(
    tokenizer: Any,
    examples: list[QAExample],
    max_length: int,
    doc_stride: int,
    max_query_length: int,
    pad_to_max_length: bool,
) -> Any:
    """One tokenizer call over a chunk of examples: a BatchEncoding with one row per window."""
    questions = _truncate_questions(tokenizer, [ex.question for ex in examples], max_query_length)
    contexts = [ex.context for ex in examples]
    pad_on_right = tokenizer.padding_side == "right"
    first, second = (questions, contexts) if pad_on_right else (contexts, questions)
    return tokenizer(
        first,
        second,
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_attention_mask=True,
        padding="max_length" if pad_to_max_length else False,
    )


def _collect_rows(
    rows: dict[str, list[Any]],
    encoding: Any,
    examples: list[QAExample],
    base: int,
    tokenizer: Any,
    with_labels: bool,
) -> None:
    """Append the windows of one BatchEncoding to `rows` (example indices shifted by `base`)."""
    context_id = 1 if tokenizer.padding_side == "right" else 0
    owners = list(encoding["overflow_to_sample_mapping"])
    window_offsets = [
        context_offsets(
            encoding["offset_mapping"][i], encoding.sequence_ids(i), context_id, examples[owner].context
        )
        for i, owner in enumerate(owners)
    ]
    spans = labelled_spans(examples, owners, window_offsets) if with_labels else {}
    for i, (input_ids, offsets) in enumerate(zip(encoding["input_ids"], window_offsets, strict=True)):
        sequence_ids = encoding.sequence_ids(i)
        cls = _cls_position(input_ids, sequence_ids, encoding["attention_mask"][i], tokenizer.cls_token_id)
        rows["input_ids"].append(input_ids)
        rows["attention_mask"].append(encoding["attention_mask"][i])
        rows["token_type_ids"].append(encoding["token_type_ids"][i] if "token_type_ids" in encoding else None)
        rows["example_index"].append(base + owners[i])
        rows["context_offsets"].append(offsets)
        rows["cls_index"].append(cls)
        if with_labels:
            span = spans.get(owners[i])
            start, end = label_window(offsets, *span, cls) if span else (cls, cls)
            rows["start_positions"].append(start)
            rows["end_positions"].append(end)


def context_offsets(
    offsets: list[tuple[int, int]], sequence_ids: list[int | None], context_id: int, context: str
) -> Offsets:
    """Per token: its char span in `context`, trimmed of whitespace, or None when it is not a context token.

    Byte-level BPE without `trim_offsets` gives spans with the leading space (" word" -> (4, 9));
    trimming makes labels and predicted text independent of that. Whitespace-only tokens get None.
    """
    out: Offsets = []
    for (start, end), seq in zip(offsets, sequence_ids, strict=True):
        if seq != context_id:
            out.append(None)
            continue
        while start < end and context[start].isspace():
            start += 1
        while end > start and context[end - 1].isspace():
            end -= 1
        out.append((start, end) if end > start else None)
    return out


def _cls_position(
    input_ids: list[int], sequence_ids: list[int | None], attention_mask: list[int], cls_id: int | None
) -> int:
    """The CLS token's position; without one, the first special token that is not padding."""
    specials = [k for k, seq in enumerate(sequence_ids) if seq is None and attention_mask[k]]
    for k in specials:
        if input_ids[k] == cls_id:
            return k
    return specials[0] if specials else 0


def feature_stats(examples: list[QAExample], features: QAFeatures) -> FeatureStats:
    """Windows per example, share of no-answer windows, and answers no window holds whole.

    Labels are recomputed from `context_offsets` with `label_window`, so features built without
    labels can be checked too.
    """
    windows = Counter(features.example_index)
    spans = labelled_spans(examples, features.example_index, features.context_offsets)
    answered: set[int] = set()
    no_answer = 0
    for f, ex_i in enumerate(features.example_index):
        span = spans.get(ex_i)
        cls = features.cls_index[f]
        start, _ = label_window(features.context_offsets[f], *span, cls) if span else (cls, cls)
        if start == cls:
            no_answer += 1
        else:
            answered.add(ex_i)
    answerable = {i for i, ex in enumerate(examples) if answer_span(ex) is not None}
    n_features = len(features.example_index)
    return FeatureStats(
        examples=len(examples),
        features=n_features,
        windows_per_example_mean=n_features / len(examples) if examples else 0.0,
        windows_per_example_max=max(windows.values(), default=0),
        no_answer_windows_share=no_answer / n_features if n_features else 0.0,
        answers_lost_to_truncation=len(answerable - answered),
    )
