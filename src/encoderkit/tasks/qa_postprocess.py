"""Extractive QA decoding: start/end logits of windows -> n-best answer spans per example.

`top_spans` scores the (start, end) token pairs of a batch of windows at once on the logits'
device, keeping only the band of allowed lengths, masks non-context tokens and takes the top k;
`decode_predictions` maps those token spans to character spans through
`QAFeatures.context_offsets`, merges the windows of each example and decides between the best
span and "no answer" (SQuAD v2).

Scores are raw logit sums, start_logit[s] + end_logit[e], comparable across the windows of one
example (the HF convention); `nbest_probabilities` turns an n-best list into probabilities.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from encoderkit.data.qa_types import QAExample
from encoderkit.tasks.qa_features import Offsets, QAFeatures

# Finite stand-in for the score of "no valid span", so predictions stay JSON-safe (no -inf).
NO_SPAN_SCORE = -1e9

# Windows scored per top_spans call: the score tensor is [chunk, L, L] floats (~150 MB at L=384).
_FEATURES_PER_CHUNK = 256


@dataclass
class Span:
    """A candidate answer: `context[start:end]` (char offsets, end exclusive) and its logit-sum score."""

    text: str
    score: float
    start: int
    end: int


@dataclass
class QAPrediction:
    """The answer chosen for one example.

    `score` is the raw logit sum start_logit + end_logit of the answer span, or the null score
    when the prediction is "no answer" (then `answer` is "" and start = end = -1). `null_score`
    is the lowest CLS score (start + end logit at the CLS token) over the example's windows.
    `nbest` holds the best spans by score, highest first, without the null answer.
    """

    id: str
    answer: str
    score: float
    start: int
    end: int
    null_score: float
    nbest: list[Span]


def top_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    context_mask: torch.Tensor,
    n_best: int,
    max_answer_length: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `n_best` highest-scoring valid token spans of each window, on the inputs' device.

    A span (s, e) is valid when both tokens are context tokens, s <= e and e - s + 1 <= max_answer_length;
    its score is start_logits[s] + end_logits[e]. Only the band of the [L, L] score matrix that can
    hold valid spans is built, as [F, L, M] with M = max_answer_length (column d is the span
    (s, s + d)): the same spans as masking the full matrix with triu/tril, at M/L of the memory
    and time (30/384 for SQuAD settings).

    Args:
        start_logits, end_logits: [F, L] logits of F windows of L tokens.
        context_mask: [F, L] bool, True for context tokens.

    Returns:
        (scores, start_idx, end_idx), each [F, k] with k = min(n_best, L * M), best first.
        Entries beyond a window's number of valid spans have score -inf.
    """
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(f"n_best and max_answer_length must be >= 1, got {n_best} and {max_answer_length}")
    length = start_logits.shape[1]
    width = min(max_answer_length, length)
    mask = context_mask.to(device=start_logits.device, dtype=torch.bool)
    # row s of the band holds the end tokens s .. s + width - 1; past the end: -inf / not context
    end_band = _band(end_logits.float(), width, float("-inf"))  # [F, L, M]
    mask_band = _band(mask, width, False)  # [F, L, M]
    scores = start_logits.float()[:, :, None] + end_band  # [F, L, M]
    valid = mask[:, :, None] & mask_band  # [F, L, M]: start and end both in the context
    flat = torch.where(valid, scores, float("-inf")).flatten(1)  # [F, L*M]
    top_scores, top_index = flat.topk(min(n_best, length * width), dim=1)  # [F, k]
    start_idx = top_index // width
    return top_scores, start_idx, start_idx + top_index % width


def _band(values: torch.Tensor, width: int, fill: float | bool) -> torch.Tensor:
    """[F, L] -> [F, L, width] view whose row s is values[:, s : s + width], filled past the end."""
    padding = values.new_full((values.shape[0], width - 1), fill)
    return torch.cat([values, padding], dim=1).unfold(1, width, 1)


def decode_predictions(
    examples: list[QAExample],
    features: QAFeatures,
    start_logits: Any,
    end_logits: Any,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_threshold: float | None = None,
    padding_side: str = "right",
) -> list[QAPrediction]:
    """One prediction per example (in `examples` order) from the logits of its windows.

    Args:
        examples: the examples `features` was built from.
        start_logits, end_logits: [F, L] tensors or arrays, row f for feature f. L may exceed a
            feature's length (batch padding): with `padding_side="right"` token k of feature f is
            column k, with "left" it is column L - len(feature) + k.
        n_best: spans kept per window and per example (identical char spans merged, best kept).
        max_answer_length: longest span in tokens.
        null_threshold: None for SQuAD v1 (always answer with the best span; "" with score
            NO_SPAN_SCORE if no window has a valid span). A float for SQuAD v2: answer "" when
            null_score - best_span_score > null_threshold.
    """
    start = torch.as_tensor(start_logits).float()
    end = torch.as_tensor(end_logits).float()
    offsets, cls_columns = _align(features, start, end, padding_side)
    mask = torch.tensor([[span is not None for span in row] for row in offsets], dtype=torch.bool)
    scores, starts, ends = _top_spans_chunked(start, end, mask, n_best, max_answer_length)
    rows = torch.arange(len(cls_columns), device=start.device)
    cls = torch.tensor(cls_columns, device=start.device)
    null_scores = (start[rows, cls] + end[rows, cls]).tolist()  # [F]
    windows: dict[int, list[int]] = defaultdict(list)
    for f, ex_i in enumerate(features.example_index):
        windows[ex_i].append(f)
    predictions = []
    for ex_i, example in enumerate(examples):
        spans = _merge_spans(example.context, windows[ex_i], offsets, scores, starts, ends, n_best)
        null_score = min((null_scores[f] for f in windows[ex_i]), default=NO_SPAN_SCORE)
        predictions.append(_choose(example.id, spans, null_score, null_threshold))
    return predictions


def _align(
    features: QAFeatures, start: torch.Tensor, end: torch.Tensor, padding_side: str
) -> tuple[list[Offsets], list[int]]:
    """Per feature, its offsets laid out on the L logit columns, and its CLS column."""
    if start.dim() != 2 or start.shape != end.shape or start.shape[0] != len(features.input_ids):
        raise ValueError(
            f"logits must be [features, length] = [{len(features.input_ids)}, L], "
            f"got {tuple(start.shape)} and {tuple(end.shape)}"
        )
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    length = start.shape[1]
    offsets, cls_columns = [], []
    for row, cls in zip(features.context_offsets, features.cls_index, strict=True):
        pad = length - len(row)
        if pad < 0:
            raise ValueError(f"logits have {length} columns but a feature has {len(row)} tokens")
        shift = pad if padding_side == "left" else 0
        offsets.append([None] * shift + row + [None] * (pad - shift))
        cls_columns.append(cls + shift)
    return offsets, cls_columns


def _top_spans_chunked(
    start: torch.Tensor, end: torch.Tensor, mask: torch.Tensor, n_best: int, max_answer_length: int
) -> tuple[list[list[float]], list[list[int]], list[list[int]]]:
    """`top_spans` over chunks of windows (bounding the [chunk, L, L] score tensor), as Python lists."""
    scores, starts, ends = [], [], []
    for i in range(0, start.shape[0], _FEATURES_PER_CHUNK):
        part = slice(i, i + _FEATURES_PER_CHUNK)
        s, b, e = top_spans(start[part], end[part], mask[part], n_best, max_answer_length)
        scores += s.tolist()
        starts += b.tolist()
        ends += e.tolist()
    return scores, starts, ends


def _merge_spans(
    context: str,
    feature_ids: list[int],
    offsets: list[Offsets],
    scores: list[list[float]],
    starts: list[list[int]],
    ends: list[list[int]],
    n_best: int,
) -> list[Span]:
    """The n_best char spans over the given windows, best first; a char span seen twice keeps its best score.

    The same span appears in two windows where they overlap, and byte-level tokenizers can give
    several tokens the same char span.
    """
    best: dict[tuple[int, int], float] = {}
    for f in feature_ids:
        for score, s, e in zip(scores[f], starts[f], ends[f], strict=True):
            if score == float("-inf"):
                break  # sorted: the rest are invalid too
            key = (offsets[f][s][0], offsets[f][e][1])  # type: ignore[index]
            if score > best.get(key, float("-inf")):
                best[key] = score
    ranked = sorted(best.items(), key=lambda item: -item[1])[:n_best]
    return [Span(text=context[s:e], score=score, start=s, end=e) for (s, e), score in ranked]


def _choose(
    example_id: str, spans: list[Span], null_score: float, null_threshold: float | None
) -> QAPrediction:
    """The best span, or "no answer" when a v2 threshold is given and the null score wins by more."""
    best_score = spans[0].score if spans else NO_SPAN_SCORE
    if null_threshold is not None and null_score - best_score > null_threshold:
        return QAPrediction(example_id, "", null_score, -1, -1, null_score, spans)
    if not spans:
        return QAPrediction(example_id, "", NO_SPAN_SCORE, -1, -1, null_score, spans)
    top = spans[0]
    return QAPrediction(example_id, top.text, top.score, top.start, top.end, null_score, spans)


def nbest_probabilities(spans: list[Span]) -> list[float]:
    """Softmax of the spans' scores: each span's probability within its n-best list."""
    if not spans:
        return []
    top = max(span.score for span in spans)
    weights = [math.exp(span.score - top) for span in spans]
    total = sum(weights)
    return [w / total for w in weights]


def null_margins(predictions: list[QAPrediction]) -> dict[str, float]:
    """Per id, null_score - best_span_score: the "na_prob"-like value the official v2 scorer uses.

    Larger means "no answer" is more likely; the best v2 threshold is a cut on this value, and
    `decode_predictions(null_threshold=t)` answers "" exactly where the margin exceeds t.
    """
    return {p.id: p.null_score - (p.nbest[0].score if p.nbest else NO_SPAN_SCORE) for p in predictions}
