"""Official SQuAD v1.1 / v2.0 / KorQuAD 1.0 metrics on hand-computed cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoderkit.errors import UserError
from encoderkit.evaluation.squad_metrics import (
    char_f1_korquad,
    exact_match,
    normalize_korquad,
    normalize_squad,
    score,
    score_korquad,
    score_squad_v1,
    score_squad_v2,
    token_f1,
)

# --- normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat, sat!  on  a mat.", "cat sat on mat"),
        ("An apple-pie", "applepie"),  # punctuation goes first, so "apple-pie" is one token
        ("the-end", "theend"),  # ...and "the-end" is no longer an article plus a word
        ("theatre anna", "theatre anna"),  # articles only as whole words
        ("x<y>z", "xyz"),
        ("café’s", "café’s"),  # only ASCII punctuation is dropped
        ("  \tA\n  ", ""),
    ],
)
def test_normalize_squad(text: str, expected: str) -> None:
    assert normalize_squad(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("《삼국사기》(三國史記)", "삼국사기 三國史記"),
        ("The 'Apple'", "the apple"),  # no article removal
        ("x<y>z", "x y z"),  # brackets become spaces, unlike plain punctuation
        ("〈서울〉‘특별시’", "서울 특별시"),
        ("A-B. c", "ab c"),
    ],
)
def test_normalize_korquad(text: str, expected: str) -> None:
    assert normalize_korquad(text) == expected


# --- per-answer metrics ----------------------------------------------------------------------


def test_exact_match_uses_the_given_normalizer() -> None:
    assert exact_match("The cat.", "cat") == 1.0
    assert exact_match("the cat", "cat", normalize=normalize_korquad) == 0.0
    assert exact_match("dog", "cat") == 0.0


def test_token_f1_partial_overlap() -> None:
    # pred [cat, sat] vs gold [cat, sat, on]: P = 1, R = 2/3, F1 = 4/5.
    assert token_f1("the cat sat", "a cat sat on") == pytest.approx(4 / 5)
    # pred [cat, cat, dog] vs gold [cat, dog, dog, bird]: overlap 2, P = 2/3, R = 1/2, F1 = 4/7.
    assert token_f1("cat cat dog", "cat dog dog bird") == pytest.approx(4 / 7)
    assert token_f1("dog", "cat") == 0.0


def test_token_f1_empty_rule_of_v2() -> None:
    assert token_f1("", "") == 1.0
    assert token_f1("the", "") == 1.0  # "the" normalises to nothing
    assert token_f1("cat", "") == 0.0
    assert token_f1("", "cat") == 0.0


def test_char_f1_korquad_by_hand() -> None:
    # [서, 울, 에, 서] vs [서, 울]: overlap 2, P = 1/2, R = 1, F1 = 2/3.
    assert char_f1_korquad("서울에서", "서울") == pytest.approx(2 / 3)
    # [대, 한, 민, 국, 서, 울] vs [서, 울, 특, 별, 시]: overlap 2, P = 1/3, R = 2/5, F1 = 4/11.
    assert char_f1_korquad("대한민국 서울", "서울특별시") == pytest.approx(4 / 11)
    assert char_f1_korquad("‘서울’", "서울") == 1.0
    # The article is kept: [t, h, e, c, a, t] vs [c, a, t]: overlap 3, P = 1/2, R = 1, F1 = 2/3.
    assert char_f1_korquad("the cat", "cat") == pytest.approx(2 / 3)
    assert char_f1_korquad("", "") == 0.0  # KorQuAD has no empty-answer rule


@given(st.text(alphabet="ab the,.", max_size=12), st.text(alphabet="ab the,.", max_size=12))
def test_token_f1_is_symmetric_and_bounded(pred: str, gold: str) -> None:
    f1 = token_f1(pred, gold)
    assert f1 == pytest.approx(token_f1(gold, pred))
    assert 0.0 <= f1 <= 1.0
    assert (f1 == 1.0) == (sorted(normalize_squad(pred).split()) == sorted(normalize_squad(gold).split()))


# --- SQuAD v1.1 ------------------------------------------------------------------------------


def test_v1_max_over_gold_answers_and_average() -> None:
    gold = {"q1": ["San Francisco Bay Area", "Bay Area"], "q2": ["Denver Broncos"]}
    preds = {"q1": "the bay area of SF", "q2": "denver broncos."}
    # q1: [bay, area, of, sf] vs [san, francisco, bay, area] -> 1/2; vs [bay, area] -> 2/3 (the max).
    result = score_squad_v1(gold, preds)
    assert result == pytest.approx({"exact_match": 50.0, "f1": 100 * (2 / 3 + 1) / 2})


def test_v1_empty_prediction_scores_zero() -> None:
    assert score_squad_v1({"q": ["cat"]}, {"q": ""}) == {"exact_match": 0.0, "f1": 0.0}


def test_v1_missing_prediction_counts_zero_and_extra_ids_are_ignored() -> None:
    gold = {"q1": ["a dog"], "q2": ["cat"]}
    result = score_squad_v1(gold, {"q2": "cat", "q3": "unrelated"})
    assert result == {"exact_match": 50.0, "f1": 50.0}


def test_v1_refuses_a_question_without_gold_answers() -> None:
    with pytest.raises(UserError, match=r"'q2'.*squad_v2"):
        score_squad_v1({"q1": ["cat"], "q2": []}, {"q1": "cat", "q2": ""})


# --- SQuAD v2.0 ------------------------------------------------------------------------------


def test_v2_has_ans_and_no_ans_split() -> None:
    gold = {"q1": ["cat"], "q2": [], "q3": ["dog house"]}
    preds = {"q1": "cat", "q2": "", "q3": "house"}
    # q1: 1/1; q2 (no answer, empty prediction): 1/1; q3: EM 0, F1 = 2/3 (P = 1, R = 1/2).
    result = score_squad_v2(gold, preds)
    assert result == pytest.approx(
        {
            "exact": 200 / 3,
            "f1": 100 * (1 + 1 + 2 / 3) / 3,
            "total": 3,
            "HasAns_exact": 50.0,
            "HasAns_f1": 100 * (1 + 2 / 3) / 2,
            "HasAns_total": 2,
            "NoAns_exact": 100.0,
            "NoAns_f1": 100.0,
            "NoAns_total": 1,
            "exact_match": 200 / 3,
        }
    )


def test_v2_no_answer_question_with_empty_prediction_is_correct() -> None:
    result = score_squad_v2({"q": []}, {"q": ""})
    assert (result["exact"], result["f1"], result["NoAns_total"]) == (100.0, 100.0, 1)
    assert "HasAns_total" not in result


def test_v2_gold_that_normalises_to_nothing_becomes_no_answer_text() -> None:
    # Official rule: such gold answers are dropped, leaving "" as the one correct answer,
    # while the question still counts as HasAns (its answer list is not empty).
    result = score_squad_v2({"q": ["The"]}, {"q": ""})
    assert (result["exact"], result["HasAns_total"]) == (100.0, 1)


def test_v2_missing_prediction_counts_zero() -> None:
    result = score_squad_v2({"q1": ["cat"], "q2": []}, {"q1": "cat"})
    assert (result["exact"], result["total"], result["NoAns_exact"]) == (50.0, 2, 0.0)


NA_GOLD = {"a": ["cat"], "b": [], "c": ["dog"]}
NA_PREDS = {"a": "cat", "b": "bird", "c": "dog food"}
NA_PROBS = {"a": 0.1, "b": 0.5, "c": 0.3}


def test_v2_best_threshold_by_hand() -> None:
    # Raw: a EM 1 F1 1; b EM 0 F1 0 (answers an unanswerable question); c EM 0, F1 2/3.
    # Sweep from "all null" (score 1, for b) in na-prob order a, c, b:
    #   exact: +1 -> 2 at 0.1 (best), +0 -> 2, -1 -> 1       => 2/3 at 0.1
    #   f1:    +1 -> 2 at 0.1, +2/3 -> 8/3 at 0.3 (best), -1 => 8/9 at 0.3
    result = score_squad_v2(NA_GOLD, NA_PREDS, na_probs=NA_PROBS)
    assert result["exact"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert result["best_exact"] == pytest.approx(200 / 3)
    assert result["best_exact_thresh"] == 0.1
    assert result["best_f1"] == pytest.approx(800 / 9)
    assert result["best_f1_thresh"] == 0.3


def test_v2_na_prob_thresh_turns_predictions_into_no_answer() -> None:
    # At 0.4 only b (0.5) becomes "no answer", which is right for b.
    result = score_squad_v2(NA_GOLD, NA_PREDS, na_probs=NA_PROBS, na_prob_thresh=0.4)
    assert (result["exact"], result["f1"]) == pytest.approx((200 / 3, 800 / 9))
    # At 0.2, c (0.3) too, which is wrong for c.
    result = score_squad_v2(NA_GOLD, NA_PREDS, na_probs=NA_PROBS, na_prob_thresh=0.2)
    assert (result["exact"], result["f1"]) == pytest.approx((200 / 3, 200 / 3))


def test_v2_without_na_probs_has_no_best_keys() -> None:
    assert "best_f1" not in score_squad_v2(NA_GOLD, NA_PREDS)


def test_v2_refuses_missing_null_probabilities() -> None:
    with pytest.raises(UserError, match=r"null probability.*'c'"):
        score_squad_v2(NA_GOLD, NA_PREDS, na_probs={"a": 0.1, "b": 0.5})


# --- KorQuAD and dispatch --------------------------------------------------------------------


def test_korquad_scores_by_characters() -> None:
    gold = {"k1": ["서울"], "k2": ["1592년"], "k3": ["《삼국사기》"]}
    preds = {"k1": "서울에서", "k2": "1592년", "k3": "삼국사기"}
    result = score_korquad(gold, preds)
    assert result == pytest.approx({"exact_match": 200 / 3, "f1": 100 * (2 / 3 + 1 + 1) / 3})


def test_score_dispatches_and_gives_common_keys() -> None:
    gold, preds = {"q": ["the cat"]}, {"q": "cat"}
    for task in ("squad", "squad_v2", "korquad"):
        result = score(task, gold, preds)
        assert {"exact_match", "f1"} <= result.keys()
    assert score("squad", gold, preds)["exact_match"] == 100.0
    assert score("korquad", gold, preds)["exact_match"] == 0.0  # articles count in KorQuAD
    assert "best_f1" in score("squad_v2", gold, preds, na_probs={"q": 0.2})


def test_unknown_task_is_a_user_error() -> None:
    with pytest.raises(UserError, match="'squad_v3'"):
        score("squad_v3", {"q": ["a"]}, {"q": "a"})
