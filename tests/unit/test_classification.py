"""tasks/classification.py pure functions: labels, targets, examples, predictions, metrics."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from encoderkit.data.columns import Columns
from encoderkit.data.tables import Table
from encoderkit.errors import UserError
from encoderkit.tasks.classification import (
    TextExample,
    evaluate_logits,
    format_predictions,
    label_ids,
    label_key,
    label_names_from,
    read_examples,
    regression_targets,
)


def examples(labels: list[Any], source: str = "train.jsonl") -> list[TextExample]:
    return [TextExample("some text", None, label, f"{source}:{i + 1}") for i, label in enumerate(labels)]


def one_hot_logits(predicted: list[int], k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), k).float() * 3.0


# --- labels -------------------------------------------------------------------------------------


def test_label_key_one_spelling_per_label() -> None:
    assert label_key(1, "f:1") == label_key(1.0, "f:1") == label_key("1", "f:1") == label_key(" 1 ", "f:1")
    assert label_key(1, "f:1") == "1"
    assert label_key(-2.0, "f:1") == "-2"
    assert label_key("positive", "f:1") == "positive"


@pytest.mark.parametrize("raw", [[1], {"a": 1}, True, False, 0.5, 2.25])
def test_label_key_rejects_non_labels_with_where(raw: Any) -> None:
    with pytest.raises(UserError) as info:
        label_key(raw, "train.jsonl:7")
    assert str(info.value).startswith("train.jsonl:7: label ")


def test_fractional_label_points_to_regression() -> None:
    with pytest.raises(UserError, match="--task regression"):
        label_key(0.5, "f:1")


def test_label_names_sort_numerically_when_all_integers() -> None:
    assert label_names_from(examples(["2", "10", "1", "2"])) == ["1", "2", "10"]
    assert label_names_from(examples([2, 10, 1.0, -1])) == ["-1", "1", "2", "10"]


def test_label_names_sort_as_strings_otherwise() -> None:
    assert label_names_from(examples(["pos", "neg", "neu", "pos"])) == ["neg", "neu", "pos"]
    assert label_names_from(examples(["10", "b", "2"])) == ["10", "2", "b"]


def test_a_single_label_is_an_error_naming_the_file() -> None:
    with pytest.raises(UserError) as info:
        label_names_from(examples([1, "1", 1.0], source="one.jsonl"))  # one label, three spellings
    message = str(info.value)
    assert message.startswith("one.jsonl: ") and "at least 2 labels" in message


def test_label_ids_map_names_to_ids() -> None:
    names = label_names_from(examples(["pos", "neg"]))
    assert label_ids(examples(["neg", "pos", "pos"]), names) == [0, 1, 1]
    assert label_ids(examples([0, 1.0, "1"]), ["0", "1"]) == [0, 1, 1]


def test_unseen_eval_label_names_file_and_line() -> None:
    evals = examples(["pos", "neg", "neutral"], source="dev.jsonl")
    with pytest.raises(UserError) as info:
        label_ids(evals, ["neg", "pos"])
    message = str(info.value)
    assert message.startswith("dev.jsonl:3: label 'neutral' never appears in the training data")


def test_regression_targets() -> None:
    assert regression_targets(examples(["3.5", 2, 1.0, " -0.25 "])) == [3.5, 2.0, 1.0, -0.25]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("high", "not a number"),
        ([1.0], "not a number"),
        (None, "not a number"),
        ("inf", "not finite"),
        (float("nan"), "not finite"),
        ("-Infinity", "not finite"),
    ],
)
def test_bad_regression_target_names_file_and_line(raw: Any, why: str) -> None:
    with pytest.raises(UserError) as info:
        regression_targets(examples([1.0, raw], source="sts.tsv"))
    assert str(info.value).startswith("sts.tsv:2: regression target") and why in str(info.value)


# --- reading examples ---------------------------------------------------------------------------


def make_table(rows: list[dict[str, Any]], source: str = "train.jsonl") -> Table:
    return Table(source, ["text", "label"], rows, [i + 1 for i in range(len(rows))])


COLUMNS = Columns("text", None, "label")


def test_read_examples_pulls_text_pair_and_label() -> None:
    table = Table("p.jsonl", ["a", "b", "y"], [{"a": "first", "b": "second", "y": 1}], [5])
    [example] = read_examples(table, Columns("a", "b", "y"), need_label=True)
    assert example == TextExample("first", "second", 1, "p.jsonl:5")


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ({"text": "", "label": 1}, "train.jsonl:2: empty text in column 'text'"),
        ({"text": "   ", "label": 1}, "train.jsonl:2: empty text in column 'text'"),
        ({"label": 1}, "train.jsonl:2: empty text in column 'text'"),
        ({"text": 5, "label": 1}, "train.jsonl:2: column 'text' holds a int, expected text"),
        ({"text": ["a"], "label": 1}, "train.jsonl:2: column 'text' holds a list, expected text"),
        ({"text": "fine"}, "train.jsonl:2: missing label in column 'label'"),
        ({"text": "fine", "label": " "}, "train.jsonl:2: missing label in column 'label'"),
        ({"text": "fine", "label": None}, "train.jsonl:2: missing label in column 'label'"),
    ],
)
def test_read_examples_rejects_bad_rows_with_file_line(bad_row: dict[str, Any], message: str) -> None:
    table = make_table([{"text": "ok", "label": 0}, bad_row, {"text": "ok", "label": 1}])
    with pytest.raises(UserError) as info:
        read_examples(table, COLUMNS, need_label=True)
    assert str(info.value) == message


def test_read_examples_without_labels() -> None:
    table = make_table([{"text": "no label here"}])
    [example] = read_examples(table, Columns("text", None, None), need_label=False)
    assert example.label is None and example.text == "no label here"


def test_read_examples_of_empty_table() -> None:
    with pytest.raises(UserError, match=r"^empty\.jsonl: no examples"):
        read_examples(make_table([], source="empty.jsonl"), COLUMNS, need_label=True)


# --- predictions and metrics --------------------------------------------------------------------


def test_format_predictions_probabilities_and_argmax() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0], [-1.0, -2.0, 4.0]])
    predictions = format_predictions(logits, ["neg", "neu", "pos"])
    assert [p["label"] for p in predictions] == [0, 1, 2]
    assert [p["label_name"] for p in predictions] == ["neg", "neu", "pos"]
    for p, row in zip(predictions, logits, strict=True):
        probs = p["probabilities"]
        assert list(probs) == ["neg", "neu", "pos"]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(probs, key=probs.get) == p["label_name"]
        assert probs["neg"] == pytest.approx(torch.softmax(row, -1)[0].item(), abs=1e-6)


def test_format_predictions_regression_is_a_score() -> None:
    assert format_predictions(torch.tensor([[0.5], [-2.0]]), None) == [{"score": 0.5}, {"score": -2.0}]


def test_binary_f1_uses_id_1_as_positive() -> None:
    gold = [1, 1, 1, 0, 0, 0, 1, 0]
    pred = [1, 0, 1, 1, 0, 0, 0, 0]
    # Positive class 1: TP=2, FP=1, FN=2 -> F1 = 2*2 / (2*2 + 1 + 2) = 4/7 (class 0 would give 2/3).
    result = evaluate_logits(one_hot_logits(pred, 2), gold, ["negative", "positive"])
    assert result.metrics["f1"] == pytest.approx(4 / 7)
    assert result.metrics["accuracy"] == pytest.approx(5 / 8)
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (6 - 2) / sqrt(3*4*4*5)
    assert result.metrics["mcc"] == pytest.approx(4 / math.sqrt(240))
    assert result.confusion == [[3, 1], [2, 2]]


def test_macro_f1_for_three_classes() -> None:
    gold = [0, 0, 1, 1, 2, 2]
    pred = [0, 1, 1, 1, 2, 0]
    # Per class F1: 0 -> 2/(2+1+1) = 0.5; 1 -> 4/(4+1) = 0.8; 2 -> 2/(2+0+1) = 2/3.
    result = evaluate_logits(one_hot_logits(pred, 3), gold, ["a", "b", "c"])
    assert result.metrics["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert result.metrics["accuracy"] == pytest.approx(4 / 6)
    assert result.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_evaluate_logits_regression() -> None:
    result = evaluate_logits(torch.tensor([[1.0], [2.0], [4.0]]), [0.0, 1.0, 3.0], None)
    assert result.metrics["pearson"] == pytest.approx(1.0)
    assert result.metrics["mse"] == pytest.approx(1.0)
    assert result.confusion is None
