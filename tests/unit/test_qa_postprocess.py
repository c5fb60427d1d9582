"""QA decoding: `top_spans` on hand-built logits and against a brute-force double loop,
`decode_predictions` over windows built by hand."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from encoderkit.data.qa_types import QAExample
from encoderkit.tasks.qa_features import QAFeatures
from encoderkit.tasks.qa_postprocess import (
    NO_SPAN_SCORE,
    decode_predictions,
    nbest_probabilities,
    null_margins,
    top_spans,
)

NEG = -10.0

# ---------------------------------------------------------------- top_spans


def logits(values: dict[int, float], length: int = 8) -> torch.Tensor:
    """[1, length] logits, NEG except at the given positions."""
    row = torch.full((1, length), NEG)
    for k, v in values.items():
        row[0, k] = v
    return row


CONTEXT_3_TO_6 = torch.tensor([[False, False, False, True, True, True, True, False]])


@pytest.mark.parametrize(
    ("start", "end", "max_len", "best"),
    [
        # (3, 6) scores 20 but is 4 tokens long; the best valid span is (4, 6) at 10.5
        ({3: 10, 4: 0.5, 5: 0.4, 6: 0.3}, {3: 0.1, 4: 0.2, 5: 0.3, 6: 10}, 3, (4, 6)),
        # (5, 3) scores 20 but ends before it starts; the best valid span is (5, 6) at 12
        ({3: 0, 4: 0, 5: 10, 6: 0}, {3: 10, 4: 0, 5: 1, 6: 2}, 4, (5, 6)),
        # (0, 0) and (4, 7) score 100 and 54 but touch non-context tokens; best valid (4, 5)
        ({0: 50, 4: 4}, {0: 50, 5: 3, 7: 50}, 30, (4, 5)),
    ],
)
def test_top_spans_skips_higher_scoring_invalid_spans(start, end, max_len, best):
    scores, starts, ends = top_spans(
        logits(start), logits(end), CONTEXT_3_TO_6, n_best=5, max_answer_length=max_len
    )
    assert (starts[0, 0].item(), ends[0, 0].item()) == best
    expected = logits(start)[0, best[0]] + logits(end)[0, best[1]]
    assert scores[0, 0].item() == pytest.approx(expected.item())
    for s, e, score in zip(starts[0].tolist(), ends[0].tolist(), scores[0].tolist(), strict=True):
        assert 3 <= s <= e <= 6 and e - s + 1 <= max_len and math.isfinite(score)


def test_top_spans_pads_with_minus_inf_when_fewer_valid_spans_than_k():
    # context tokens 3..6 with max length 3: 4 + 3 + 2 = 9 valid spans
    scores, starts, ends = top_spans(logits({}), logits({}), CONTEXT_3_TO_6, n_best=12, max_answer_length=3)
    assert scores.shape == starts.shape == ends.shape == (1, 12)
    assert torch.isfinite(scores[0, :9]).all()
    assert torch.isinf(scores[0, 9:]).all()
    assert len({(s, e) for s, e in zip(starts[0, :9].tolist(), ends[0, :9].tolist(), strict=True)}) == 9


def brute_force(
    start: list[float], end: list[float], mask: list[bool], max_len: int
) -> list[tuple[float, int, int]]:
    spans = []
    for s in range(len(start)):
        for e in range(len(end)):
            if mask[s] and mask[e] and s <= e and e - s + 1 <= max_len:
                spans.append((start[s] + end[e], s, e))
    return sorted(spans, reverse=True)


@pytest.mark.parametrize("seed", range(12))
def test_top_spans_matches_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    n_features, length = 4, [5, 16, 40][seed % 3]
    n_best, max_len = [1, 7, 20][seed % 3], [1, 4, 60][(seed // 3) % 3]
    start = torch.randn(n_features, length, generator=gen)
    end = torch.randn(n_features, length, generator=gen)
    mask = torch.rand(n_features, length, generator=gen) < 0.6
    scores, starts, ends = top_spans(start, end, mask, n_best=n_best, max_answer_length=max_len)
    for f in range(n_features):
        expected = brute_force(start[f].tolist(), end[f].tolist(), mask[f].tolist(), max_len)[:n_best]
        got = [
            (sc, s, e)
            for sc, s, e in zip(scores[f].tolist(), starts[f].tolist(), ends[f].tolist(), strict=True)
            if sc != float("-inf")
        ]
        assert [(s, e) for _, s, e in got] == [(s, e) for _, s, e in expected]
        assert [sc for sc, _, _ in got] == pytest.approx([sc for sc, _, _ in expected], abs=1e-5)


def test_top_spans_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_answer_length"):
        top_spans(logits({}), logits({}), CONTEXT_3_TO_6, n_best=3, max_answer_length=0)


# ---------------------------------------------------------------- decode_predictions

CONTEXT = "alpha beta gamma delta epsilon zeta"
#          0     6    11    17    23      31
EXAMPLE = QAExample("ex", "which", CONTEXT, answer_texts=["epsilon"], answer_starts=[23])
# [CLS] q [SEP] <4 context tokens> [SEP]; the windows share "gamma delta"
WINDOW_0 = [None, None, None, (0, 5), (6, 10), (11, 16), (17, 22), None]
WINDOW_1 = [None, None, None, (11, 16), (17, 22), (23, 30), (31, 35), None]


def hand_features(
    rows: list[list], example_index: list[int], cls_index: list[int] | None = None
) -> QAFeatures:
    return QAFeatures(
        input_ids=[[0] * len(r) for r in rows],
        attention_mask=[[1] * len(r) for r in rows],
        token_type_ids=None,
        example_index=example_index,
        context_offsets=rows,
        cls_index=cls_index or [0] * len(rows),
        start_positions=None,
        end_positions=None,
    )


def two_window_logits(cls_start: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Window 0: "beta" 6, "beta gamma" 4.9, "gamma" 4. Window 1: "epsilon" 8, "gamma delta epsilon" 6.4,
    "gamma" 5. CLS scores 2 and 1."""
    start = torch.cat([logits({0: cls_start, 4: 3, 5: 2.1}), logits({0: 0.5, 3: 2.4, 5: 4})])
    end = torch.cat([logits({0: 1, 4: 3, 5: 1.9}), logits({0: 0.5, 3: 2.6, 5: 4})])
    return start, end


def test_decode_picks_the_best_span_across_windows_and_dedupes():
    start, end = two_window_logits()
    features = hand_features([WINDOW_0, WINDOW_1], [0, 0])
    [pred] = decode_predictions([EXAMPLE], features, start, end, n_best=5, max_answer_length=30)

    assert (pred.id, pred.answer, pred.start, pred.end) == ("ex", "epsilon", 23, 30)
    assert pred.score == pytest.approx(8.0)
    assert pred.null_score == pytest.approx(1.0)  # the lowest CLS score over the windows
    texts = ["epsilon", "gamma delta epsilon", "beta", "gamma", "beta gamma"]
    assert [s.text for s in pred.nbest] == texts  # "gamma" once, with its better score (5 > 4)
    assert [s.score for s in pred.nbest] == pytest.approx([8.0, 6.4, 6.0, 5.0, 4.9])
    assert len({(s.start, s.end) for s in pred.nbest}) == len(pred.nbest)
    assert all(s.text == CONTEXT[s.start : s.end] for s in pred.nbest)
    assert [s.score for s in pred.nbest] == sorted((s.score for s in pred.nbest), reverse=True)


def test_decode_maps_multi_token_spans_to_char_offsets():
    start = logits({3: 5})
    end = logits({6: 5})
    [pred] = decode_predictions([EXAMPLE], hand_features([WINDOW_1], [0]), start, end)
    assert (pred.answer, pred.start, pred.end) == ("gamma delta epsilon zeta", 11, 35)
    [short] = decode_predictions([EXAMPLE], hand_features([WINDOW_1], [0]), start, end, max_answer_length=3)
    assert short.answer != "gamma delta epsilon zeta"
    assert short.end - short.start < 24


def test_decode_merges_tokens_that_share_a_char_span():
    # byte-level BPE: tokens 3 and 4 both cover "alpha"
    rows = [[None, (0, 5), (0, 5), (6, 10), None]]
    start, end = logits({1: 2, 2: 1.5}, 5), logits({1: 2, 2: 1.5}, 5)
    [pred] = decode_predictions([EXAMPLE], hand_features(rows, [0]), start, end, n_best=10)
    assert [(s.start, s.end) for s in pred.nbest].count((0, 5)) == 1
    assert pred.nbest[0].score == pytest.approx(4.0)


def test_v2_threshold_answers_empty_when_the_null_score_wins():
    examples = [EXAMPLE, QAExample("unanswerable", "which", CONTEXT)]
    start0, end0 = two_window_logits()
    start1, end1 = logits({0: 12, 5: 4}), logits({0: 12, 5: 4})  # null 24 vs best span 8
    start, end = torch.cat([start0, start1]), torch.cat([end0, end1])
    features = hand_features([WINDOW_0, WINDOW_1, WINDOW_1], [0, 0, 1])

    margins = null_margins(decode_predictions(examples, features, start, end))
    assert margins == pytest.approx({"ex": 1.0 - 8.0, "unanswerable": 24.0 - 8.0})
    for threshold in (-8.0, -7.5, -7.0, 0.0, 15.5, 16.0, 20.0):  # margins -7 and 16: "" only when above
        preds = decode_predictions(examples, features, start, end, null_threshold=threshold)
        for pred in preds:
            no_answer = margins[pred.id] > threshold
            assert (pred.answer == "") == no_answer
            if no_answer:
                assert (pred.start, pred.end, pred.score) == (-1, -1, pred.null_score)
            else:
                assert pred.answer == "epsilon"
    v1 = decode_predictions(examples, features, start, end)
    assert [p.answer for p in v1] == ["epsilon", "epsilon"]  # v1 always answers


def test_decode_without_any_valid_span_is_json_safe():
    rows = [[None, None, None]]
    [pred] = decode_predictions([EXAMPLE], hand_features(rows, [0]), logits({}, 3), logits({}, 3))
    assert (pred.answer, pred.start, pred.end, pred.nbest) == ("", -1, -1, [])
    assert pred.score == NO_SPAN_SCORE and math.isfinite(pred.score)
    json.dumps(asdict(pred), allow_nan=False)
    assert null_margins([pred])["ex"] == pytest.approx(2 * NEG - NO_SPAN_SCORE)


def test_decode_groups_windows_by_example_and_accepts_numpy():
    other = QAExample("other", "which", "zeta eta theta")
    rows = [[None, (0, 4), (5, 8), (9, 14)], WINDOW_1, [None, (0, 4), (5, 8), (9, 14)]]
    start = np.full((3, 8), NEG, dtype=np.float32)
    end = np.full((3, 8), NEG, dtype=np.float32)
    start[0, 2], end[0, 3] = 3, 3  # "eta theta" in window 0 of `other`
    start[2, 3], end[2, 3] = 2, 2  # "theta" in window 1 of `other`
    start[1, 5], end[1, 5] = 1, 1  # "epsilon" for EXAMPLE
    preds = decode_predictions([EXAMPLE, other], hand_features(rows, [1, 0, 1]), start, end)
    assert [(p.id, p.answer) for p in preds] == [("ex", "epsilon"), ("other", "eta theta")]
    assert {(s.text, s.score) for s in preds[1].nbest} >= {("eta theta", 6.0), ("theta", 4.0)}


def test_decode_left_padded_logits_are_realigned():
    # logits of a batch padded on the left to 10 columns: token k of the window is column k + 2
    start, end = logits({7: 5}, 10), logits({7: 5}, 10)
    start[0, 2] = end[0, 2] = 3  # the CLS token
    features = hand_features([WINDOW_1], [0])
    [left] = decode_predictions([EXAMPLE], features, start, end, padding_side="left")
    assert (left.answer, left.null_score) == ("epsilon", 6.0)
    [right] = decode_predictions([EXAMPLE], features, start, end, padding_side="right")
    assert right.answer != "epsilon"
    with pytest.raises(ValueError, match="columns"):
        decode_predictions([EXAMPLE], features, start[:, :5], end[:, :5])


def test_nbest_probabilities_are_a_softmax_over_scores():
    start, end = two_window_logits()
    [pred] = decode_predictions([EXAMPLE], hand_features([WINDOW_0, WINDOW_1], [0, 0]), start, end, n_best=3)
    probs = nbest_probabilities(pred.nbest)
    expected = torch.softmax(torch.tensor([8.0, 6.4, 6.0]), dim=0).tolist()
    assert probs == pytest.approx(expected)
    assert nbest_probabilities([]) == []
