"""`--batch-size auto`, `--eval-split`, `--class-weights` and the multi-label parts, as pure functions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoderkit.config import build_config
from encoderkit.data.split import holdout, holdout_indices
from encoderkit.errors import UserError
from encoderkit.evaluation.metrics import multi_label_metrics
from encoderkit.tasks import get_task
from encoderkit.tasks.classification import class_weights
from encoderkit.tasks.multi_label import indicator, label_set, thresholds_of, tune_thresholds
from encoderkit.training.state import auto_batch_size

REQUIRED = {"train": "t.jsonl", "output": "out"}


@pytest.mark.parametrize(
    ("examples", "unit", "size"),
    [
        (10_000, 1, 32),
        (289, 1, 32),
        (288, 1, 16),
        (145, 1, 16),
        (144, 1, 8),
        (40, 1, 8),
        (3, 1, 8),
        (40, 3, 9),
    ],
)
def test_auto_batch_size_gives_a_small_set_ten_batches(examples: int, unit: int, size: int) -> None:
    assert auto_batch_size(examples, unit) == size


def test_a_stratified_hold_out_keeps_each_class_share_and_is_seeded() -> None:
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    train, held = holdout_indices(len(labels), 0.2, seed=7, strata=labels)
    assert len(held) == 20 and sorted(train + held) == list(range(100))
    assert Counter(labels[i] for i in held) == {"a": 12, "b": 6, "c": 2}
    assert holdout_indices(len(labels), 0.2, seed=7, strata=labels) == (train, held)
    assert holdout_indices(len(labels), 0.2, seed=8, strata=labels)[1] != held


def test_a_class_with_one_example_stays_in_training() -> None:
    labels = ["a"] * 10 + ["b"] * 10 + ["rare"]
    train, held = holdout(list(range(21)), 0.3, seed=0, strata=labels)
    assert 20 in train and 20 not in held


def test_a_grouped_hold_out_never_splits_a_group() -> None:
    groups = [i // 3 for i in range(60)]  # 20 paragraphs, 3 questions each
    train, held = holdout_indices(60, 0.25, seed=1, groups=groups)
    assert held and not {groups[i] for i in train} & {groups[i] for i in held}


@pytest.mark.parametrize(
    ("count", "share", "strata", "message"),
    [(5, 0.1, None, "holds out none"), (10, 0.2, list("abcdeabcde"), "fewer than the 5 labels")],
)
def test_a_hold_out_too_small_is_refused(count: int, share: float, strata: list | None, message: str) -> None:
    with pytest.raises(UserError, match=message):
        holdout_indices(count, share, 0, strata=strata)


def test_balanced_class_weights_are_scikit_learns_with_mean_one() -> None:
    ids = [0] * 75 + [1] * 25
    weights = class_weights("balanced", ["neg", "pos"], ids)
    assert weights == pytest.approx([100 / (2 * 75), 100 / (2 * 25)])  # already average 1
    assert np.mean([weights[i] for i in ids]) == pytest.approx(1.0)


def test_a_weights_file_keeps_its_ratios_and_is_checked(tmp_path: Path) -> None:
    ids = [0] * 50 + [1] * 50 + [2] * 100
    names = ["a", "b", "c"]
    spec = tmp_path / "w.yaml"
    spec.write_text("a: 4\nb: 2\n")  # c not named: weighs 1
    weights = class_weights(str(spec), names, ids)
    assert weights[0] / weights[2] == pytest.approx(4) and weights[1] / weights[2] == pytest.approx(2)
    assert np.mean([weights[i] for i in ids]) == pytest.approx(1.0)
    for text, message in [("d: 1\n", "'d' is not a training label"), ("a: 0\n", "must be a number > 0")]:
        spec.write_text(text)
        with pytest.raises(UserError, match=message):
            class_weights(str(spec), names, ids)
    with pytest.raises(UserError, match="not found"):
        class_weights(str(tmp_path / "missing.yaml"), names, ids)


def test_the_weighted_loss_is_each_examples_cross_entropy_times_its_weight() -> None:
    task = get_task("classification")
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    weights = torch.tensor([0.5, 2.0, 0.5])
    plain = task.loss({"logits": logits}, {"labels": labels}, None)
    weighted = task.loss({"logits": logits}, {"labels": labels, "weights": weights}, None)
    assert plain == pytest.approx(F.cross_entropy(logits, labels).item())
    manual = (F.cross_entropy(logits, labels, reduction="none") * weights).mean()
    assert weighted == pytest.approx(manual.item()) and weighted != pytest.approx(plain.item())


def test_label_sets_from_lists_and_separated_cells() -> None:
    assert label_set(["b", "a", "b"], None, "f:1") == ["a", "b"]
    assert label_set("sport| politics", "|", "f:1") == ["politics", "sport"]
    assert label_set("", "|", "f:1") == [] and label_set([], None, "f:1") == []
    assert label_set("sport", None, "f:1") == ["sport"] and label_set([1, 2.0], None, "f:1") == ["1", "2"]
    for raw in (None, ""):
        with pytest.raises(UserError, match="f:1: missing labels"):
            label_set(raw, None, "f:1")
    with pytest.raises(UserError, match="f:2: label 'z' never appears in the training data"):
        indicator([["a"], ["z"]], ["a", "b"], ["f:1", "f:2"])
    assert indicator([["b"], []], ["a", "b"], ["f:1", "f:2"]) == [(0.0, 1.0), (0.0, 0.0)]


def test_tuned_thresholds_separate_what_0_5_does_not() -> None:
    # Label 0: positives at 0.3-0.4, negatives below 0.2: 0.5 predicts none, a tuned cut all.
    probs = np.array([[0.35, 0.9], [0.30, 0.8], [0.40, 0.1], [0.10, 0.2], [0.15, 0.7]])
    gold = np.array([[1, 1], [1, 1], [1, 0], [0, 0], [0, 1]])
    tuned = tune_thresholds(probs, gold)
    assert 0.15 < tuned[0] < 0.30
    fixed = multi_label_metrics(gold, probs >= 0.5)
    at_tuned = multi_label_metrics(gold, probs >= np.asarray(tuned))
    assert at_tuned["micro_f1"] > fixed["micro_f1"] and at_tuned["subset_accuracy"] == 1.0
    assert tune_thresholds(probs, np.zeros_like(gold))[0] == 0.5  # no positive: nothing to tune
    assert thresholds_of({"threshold": 0.3, "thresholds": None}, 2) == [0.3, 0.3]
    assert thresholds_of({"threshold": "tune", "thresholds": tuned}, 2) == tuned


def test_multi_label_metrics() -> None:
    gold = np.array([[1, 0, 1], [0, 1, 0]])
    pred = np.array([[1, 0, 0], [0, 1, 0]])
    m = multi_label_metrics(gold, pred)
    assert m["subset_accuracy"] == 0.5 and m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(0.8) and m["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)


def test_config_rules_of_the_new_fields() -> None:
    assert build_config({}, {**REQUIRED, "multi_label": True}).task == "multi-label"
    assert build_config({}, {**REQUIRED, "multi_label_threshold": "tune"}).multi_label_threshold == "tune"
    bad = [
        ({"multi_label": True, "task": "regression"}, "'multi_label': only with --task classification"),
        ({"class_weights": "balanced", "task": "qa"}, "'class_weights': only for --task classification"),
        ({"eval_split": 0.1, "eval": "e.jsonl"}, "'eval_split' and 'eval' exclude each other"),
        ({"eval_split": 0.7}, r"'eval_split': must be in \(0, 0.5\]"),
        ({"multi_label_threshold": 1.5}, "'multi_label_threshold': must be in"),
        ({"batch_size": 0}, "'batch_size': must be > 0"),
    ]
    for values, message in bad:
        with pytest.raises(UserError, match=message):
            build_config({}, {**REQUIRED, **values})
