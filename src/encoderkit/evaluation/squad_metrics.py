"""Official extractive-QA metrics: SQuAD v1.1, SQuAD v2.0 and KorQuAD 1.0, as pure functions.

Each scorer reproduces the definitions of the official evaluation script (evaluate-v1.1.py,
evaluate-v2.0.py, KorQuAD's evaluate-v1.0.py) with one deliberate difference that keeps all
three tasks alike: a gold id with no prediction scores 0 and stays in the denominator. (v1.1
and KorQuAD already do this; the v2.0 script instead leaves such ids out of every average.)
Prediction ids that are not in the gold set are ignored.

Inputs are `gold: {id: [answer text, ...]}` and `preds: {id: predicted text}`. Scores are
reported on a 0-100 scale and are not rounded: rounding is for display, and rounded numbers
would no longer compare equal to the official script's output.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Mapping

from encoderkit.errors import UserError

Normalizer = Callable[[str], str]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
# KorQuAD replaces these with a space *before* dropping ASCII punctuation, so that e.g.
# "《삼국사기》" and "삼국사기" normalise alike and quotes never glue two words together.
_KORQUAD_SPACED = str.maketrans(dict.fromkeys("'\"《》<>〈〉()‘’", " "))

TASKS = ("squad", "squad_v2", "korquad")


def _drop_punctuation(text: str) -> str:
    return "".join(ch for ch in text if ch not in _PUNCTUATION)


def normalize_squad(text: str) -> str:
    """SQuAD answer normalisation: lower-case, drop ASCII punctuation, drop a/an/the, collapse spaces."""
    return " ".join(_ARTICLES.sub(" ", _drop_punctuation(text.lower())).split())


def normalize_korquad(text: str) -> str:
    """KorQuAD 1.0 normalisation: quotes/brackets to spaces, lower-case, drop ASCII punctuation,
    collapse spaces. Unlike SQuAD, articles are kept."""
    return " ".join(_drop_punctuation(text.translate(_KORQUAD_SPACED).lower()).split())


def exact_match(pred: str, gold: str, normalize: Normalizer = normalize_squad) -> float:
    """1.0 when `pred` and `gold` are equal after `normalize`, else 0.0."""
    return float(normalize(pred) == normalize(gold))


def _overlap_f1(pred_items: list[str], gold_items: list[str]) -> float:
    """Harmonic mean of bag-of-items precision and recall; 0.0 when nothing overlaps."""
    num_same = sum((Counter(pred_items) & Counter(gold_items)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_items)
    recall = num_same / len(gold_items)
    return 2 * precision * recall / (precision + recall)


def _squad_tokens(text: str) -> list[str]:
    return normalize_squad(text).split()


def token_f1(pred: str, gold: str) -> float:
    """SQuAD v2.0 token F1 in [0, 1].

    When either side normalises to no tokens (a no-answer), F1 is 1.0 if both do and 0.0
    otherwise, as in evaluate-v2.0.py. For two non-empty answers this equals the v1.1 F1.
    """
    pred_toks, gold_toks = _squad_tokens(pred), _squad_tokens(gold)
    if not pred_toks or not gold_toks:
        return float(pred_toks == gold_toks)
    return _overlap_f1(pred_toks, gold_toks)


def _token_f1_v1(pred: str, gold: str) -> float:
    # evaluate-v1.1.py has no empty-answer rule: no overlap is 0, even for two empty answers.
    return _overlap_f1(_squad_tokens(pred), _squad_tokens(gold))


def char_f1_korquad(pred: str, gold: str) -> float:
    """KorQuAD 1.0 F1 in [0, 1] over the characters of the normalised answers, spaces excluded.

    Korean attaches particles to words, so a token F1 would give no credit to "서울" against
    "서울에서"; characters do. As in the official script, no overlap (or an empty side) is 0.
    """
    pred_chars = list("".join(normalize_korquad(pred).split()))
    gold_chars = list("".join(normalize_korquad(gold).split()))
    return _overlap_f1(pred_chars, gold_chars)


def _score_max_over_gold(
    gold: Mapping[str, list[str]],
    preds: Mapping[str, str],
    normalize: Normalizer,
    f1_fn: Callable[[str, str], float],
    task: str,
) -> dict[str, float]:
    """v1.1-style scoring shared by squad and korquad: max over gold answers, mean over gold ids."""
    if not gold:
        raise UserError(f"{task}: there are no gold questions to score")
    em_sum = f1_sum = 0.0
    for qid, answers in gold.items():
        if not answers:
            raise UserError(
                f"{task}: question {qid!r} has no gold answer; "
                "score data with unanswerable questions as squad_v2"
            )
        if qid not in preds:
            continue  # unanswered: scores 0 but still counts in the denominator
        pred = preds[qid]
        em_sum += max(exact_match(pred, answer, normalize) for answer in answers)
        f1_sum += max(f1_fn(pred, answer) for answer in answers)
    return {"exact_match": 100.0 * em_sum / len(gold), "f1": 100.0 * f1_sum / len(gold)}


def score_squad_v1(gold: dict[str, list[str]], preds: dict[str, str]) -> dict[str, float]:
    """SQuAD v1.1 `{"exact_match", "f1"}` on 0-100, as evaluate-v1.1.py.

    Raises:
        UserError: `gold` is empty, or a question has no gold answer.
    """
    return _score_max_over_gold(gold, preds, normalize_squad, _token_f1_v1, "squad")


def score_korquad(gold: dict[str, list[str]], preds: dict[str, str]) -> dict[str, float]:
    """KorQuAD 1.0 `{"exact_match", "f1"}` on 0-100, F1 over characters.

    Raises:
        UserError: `gold` is empty, or a question has no gold answer.
    """
    return _score_max_over_gold(gold, preds, normalize_korquad, char_f1_korquad, "korquad")


def _v2_raw_scores(
    gold: Mapping[str, list[str]], preds: Mapping[str, str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-id exact and F1 before any null threshold; ids without a prediction are left out."""
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    for qid, answers in gold.items():
        if qid not in preds:
            continue
        # As the official script: gold answers that normalise to nothing are dropped, and a
        # question left with none has the empty string as its only correct answer.
        golds = [a for a in answers if normalize_squad(a)] or [""]
        exact[qid] = max(exact_match(preds[qid], a) for a in golds)
        f1[qid] = max(token_f1(preds[qid], a) for a in golds)
    return exact, f1


def _apply_na_threshold(
    scores: dict[str, float], na_probs: Mapping[str, float], has_ans: Mapping[str, bool], thresh: float
) -> dict[str, float]:
    # A null probability above the threshold turns the prediction into "no answer".
    return {qid: float(not has_ans[qid]) if na_probs[qid] > thresh else s for qid, s in scores.items()}


def _mean_eval(exact: Mapping[str, float], f1: Mapping[str, float], qids: list[str]) -> dict[str, float]:
    """`{"exact", "f1", "total"}` over `qids`; a qid missing from the score maps counts as 0."""
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact.get(q, 0.0) for q in qids) / total,
        "f1": 100.0 * sum(f1.get(q, 0.0) for q in qids) / total,
        "total": total,
    }


def _find_best_thresh(
    preds: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    has_ans: Mapping[str, bool],
    total: int,
) -> tuple[float, float]:
    """evaluate-v2.0.py `find_best_thresh`: the null threshold that maximises the total score.

    Start with every question predicted as no-answer, then, in order of rising null
    probability, switch each to its span prediction and keep the best running total. Ties in
    null probability are walked in `na_probs` order, as the official script does. Returns
    (best score on 0-100 over `total` questions, threshold).
    """
    # Unanswered ids score 0 whatever the threshold, so they neither start as correct nor move.
    cur = best = float(sum(1 for q in scores if not has_ans[q]))
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_ans[qid]:
            cur += scores[qid]
        elif preds[qid]:
            cur -= 1  # a non-empty answer to an unanswerable question (raw string, not normalised)
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return 100.0 * best / total, best_thresh


def score_squad_v2(
    gold: dict[str, list[str]],
    preds: dict[str, str],
    na_probs: dict[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict[str, float]:
    """SQuAD v2.0 metrics with the official keys, plus `exact_match`/`f1` aliases.

    Keys: `exact`, `f1`, `total`; `HasAns_*` / `NoAns_*` (exact, f1, total) only when such
    questions exist; with `na_probs`, also `best_exact`, `best_exact_thresh`, `best_f1`,
    `best_f1_thresh`; and `exact_match` equal to `exact`. A question with an empty gold list is
    unanswerable. With `na_probs`, a prediction whose null probability exceeds `na_prob_thresh`
    counts as "no answer" (the default 1.0 changes nothing for probabilities).

    Raises:
        UserError: `gold` is empty, or `na_probs` lacks an id that has a prediction.
    """
    if not gold:
        raise UserError("squad_v2: there are no gold questions to score")
    has_ans = {qid: bool(answers) for qid, answers in gold.items()}
    exact_raw, f1_raw = _v2_raw_scores(gold, preds)
    exact, f1 = exact_raw, f1_raw
    if na_probs is not None:
        missing = sorted(q for q in exact_raw if q not in na_probs)
        if missing:
            raise UserError(
                f"squad_v2: no null probability for {len(missing)} question(s), e.g. {missing[0]!r}"
            )
        exact = _apply_na_threshold(exact_raw, na_probs, has_ans, na_prob_thresh)
        f1 = _apply_na_threshold(f1_raw, na_probs, has_ans, na_prob_thresh)

    result = _mean_eval(exact, f1, list(gold))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q, h in has_ans.items() if h is wanted]
        if qids:
            result.update({f"{prefix}_{k}": v for k, v in _mean_eval(exact, f1, qids).items()})
    if na_probs is not None:
        # Like the official script, the sweep uses the raw (un-thresholded) scores.
        result["best_exact"], result["best_exact_thresh"] = _find_best_thresh(
            preds, exact_raw, na_probs, has_ans, len(gold)
        )
        result["best_f1"], result["best_f1_thresh"] = _find_best_thresh(
            preds, f1_raw, na_probs, has_ans, len(gold)
        )
    result["exact_match"] = result["exact"]
    return result


def score(
    metric: str,
    gold: dict[str, list[str]],
    preds: dict[str, str],
    na_probs: dict[str, float] | None = None,
) -> dict[str, float]:
    """Score `preds` against `gold` with the official metric `metric` (`encoderkit score --task`).

    Every metric returns `exact_match` and `f1` on 0-100; squad_v2 adds its official keys.
    `na_probs` is used by squad_v2 only and ignored by the others.

    Raises:
        UserError: `metric` is not one of "squad", "squad_v2", "korquad", or the scorer refuses the input.
    """
    scorers = {
        "squad": lambda: score_squad_v1(gold, preds),
        "squad_v2": lambda: score_squad_v2(gold, preds, na_probs),
        "korquad": lambda: score_korquad(gold, preds),
    }
    if metric not in scorers:
        raise UserError(f"unknown QA metric task {metric!r}; expected one of {', '.join(TASKS)}")
    return scorers[metric]()
