"""Batch order and padding (features/batches.py, features/collate.py), step arithmetic (training/state.py),
regression metrics (evaluation/metrics.py) and the max_length rule (data/lengths.py)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from encoderkit.data.lengths import length_stats, suggest_max_length
from encoderkit.evaluation.metrics import classification_metrics, regression_metrics
from encoderkit.features.batches import length_grouped_batches, sorted_batches, token_budget_batches
from encoderkit.features.collate import collate
from encoderkit.features.encoded import Encoded
from encoderkit.training.state import Plan, auto_epochs, make_plan

R = random.Random(0)
LENGTHS = [R.randint(5, 200) for _ in range(1000)]
BS = 16


def flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def padding(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


# --- length-grouped batches ---------------------------------------------------------------------


@pytest.mark.parametrize("group", [True, False])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 1000])
def test_batches_partition_the_indices(n: int, group: bool) -> None:
    batches = length_grouped_batches(LENGTHS[:n], BS, seed=1, epoch=0, group_by_length=group)
    assert sorted(flat(batches)) == list(range(n))
    sizes = [len(b) for b in batches]
    assert sum(s != BS for s in sizes) <= 1 and all(0 < s <= BS for s in sizes)
    assert len(batches) == -(-n // BS)


def test_batches_are_a_function_of_seed_and_epoch() -> None:
    first = length_grouped_batches(LENGTHS, BS, seed=3, epoch=2)
    assert first == length_grouped_batches(LENGTHS, BS, seed=3, epoch=2)
    assert first != length_grouped_batches(LENGTHS, BS, seed=3, epoch=3)
    assert first != length_grouped_batches(LENGTHS, BS, seed=4, epoch=2)


def test_batch_composition_changes_across_epochs() -> None:
    as_sets = [{frozenset(b) for b in length_grouped_batches(LENGTHS, BS, seed=0, epoch=e)} for e in range(2)]
    assert len(as_sets[0] & as_sets[1]) < len(as_sets[0]) // 2


@pytest.mark.parametrize("epoch", range(4))
def test_first_batch_holds_the_longest_example(epoch: int) -> None:
    batches = length_grouped_batches(LENGTHS, BS, seed=0, epoch=epoch)
    assert max(LENGTHS[i] for i in batches[0]) == max(LENGTHS)


def test_grouping_cuts_padding() -> None:
    grouped = padding(length_grouped_batches(LENGTHS, BS, seed=0, epoch=0), LENGTHS)
    plain = padding(length_grouped_batches(LENGTHS, BS, seed=0, epoch=0, group_by_length=False), LENGTHS)
    assert plain > 50_000  # uniform lengths 5..200 in random batches of 16: ~80 pad tokens per row
    assert grouped < 0.1 * plain


def test_sorted_batches_cover_everything_longest_first() -> None:
    lengths = [3, 9, 1, 7, 5]
    batches = sorted_batches(lengths, 2)
    assert batches == [[1, 3], [4, 0], [2]]
    big = sorted_batches(LENGTHS, 64)
    assert sorted(flat(big)) == list(range(len(LENGTHS)))
    assert [LENGTHS[i] for i in flat(big)] == sorted(LENGTHS, reverse=True)


# --- token-budget batches -----------------------------------------------------------------------

BUDGET = 1024


def cost(batch: list[int], lengths: list[int]) -> int:
    """The padded size of a batch: examples x longest."""
    return len(batch) * max(lengths[i] for i in batch)


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
@pytest.mark.parametrize("epoch", [0, 1])
def test_budget_batches_partition_the_indices_within_the_budget(n: int, epoch: int) -> None:
    lengths = LENGTHS[:n]
    batches = token_budget_batches(lengths, BUDGET, seed=1, epoch=epoch)
    assert sorted(flat(batches)) == list(range(n))
    assert all(cost(b, lengths) <= BUDGET for b in batches)


def test_budget_batches_are_as_full_as_the_length_order_allows() -> None:
    """Cut greedily in length order: one more example of the batch's own length would not fit,
    except in the batch that ends the order (the shortest examples)."""
    batches = token_budget_batches(LENGTHS, BUDGET, seed=2, epoch=0)
    shortest = min(range(len(LENGTHS)), key=lambda i: LENGTHS[i])
    for b in batches:
        longest = max(LENGTHS[i] for i in b)
        assert (len(b) + 1) * longest > BUDGET or shortest in b
    # Many short examples per batch, few long ones: the batch size follows the length.
    by_length = sorted(batches, key=lambda b: max(LENGTHS[i] for i in b))
    assert len(by_length[0]) >= 5 * len(by_length[-1])


def test_budget_batches_group_by_length_and_cut_padding() -> None:
    budget = token_budget_batches(LENGTHS, BUDGET, seed=0, epoch=0)
    fixed = length_grouped_batches(LENGTHS, BS, seed=0, epoch=0, group_by_length=False)
    assert padding(budget, LENGTHS) < 0.05 * padding(fixed, LENGTHS)


def test_budget_batches_keep_their_count_but_change_across_epochs() -> None:
    epochs = [token_budget_batches(LENGTHS, BUDGET, seed=3, epoch=e) for e in range(3)]
    assert epochs[0] == token_budget_batches(LENGTHS, BUDGET, seed=3, epoch=0)
    assert len({len(e) for e in epochs}) == 1, "a fixed number of steps per epoch"
    assert epochs[0] != epochs[1] != epochs[2]
    as_sets = [{frozenset(b) for b in e} for e in epochs[:2]]
    assert len(as_sets[0] & as_sets[1]) < len(as_sets[0]) // 2, "equal lengths meet other neighbours"
    assert epochs[0] != token_budget_batches(LENGTHS, BUDGET, seed=4, epoch=0)


@pytest.mark.parametrize("epoch", range(3))
def test_budget_batches_start_with_the_costliest(epoch: int) -> None:
    batches = token_budget_batches(LENGTHS, BUDGET, seed=0, epoch=epoch)
    assert cost(batches[0], LENGTHS) == max(cost(b, LENGTHS) for b in batches)


def test_an_example_over_the_budget_is_a_batch_alone() -> None:
    batches = token_budget_batches([5, 50, 5, 5], 20, seed=0, epoch=0)
    assert [1] in batches and sorted(flat(batches)) == [0, 1, 2, 3]


def test_plan_counts_budget_batches_as_given() -> None:
    plan = make_plan(100, 32, 2, 3, None, None, None, None, batches_per_epoch=9)
    assert (plan.batches_per_epoch, plan.steps_per_epoch, plan.total_steps) == (9, 5, 15)


# --- collate ------------------------------------------------------------------------------------

PAD = 99


def encoded(targets: dict[str, list] | None = None, types: bool = True) -> Encoded:
    return Encoded(
        input_ids=[[5, 6, 7], [8], [9, 10]],
        token_type_ids=[[0, 0, 1], [0], [0, 1]] if types else None,
        targets=targets or {},
    )


def test_collate_pads_right() -> None:
    batch = collate(encoded({"labels": [1, 0, 2]}), [0, 1], PAD)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long
    assert batch["input_ids"].dtype == torch.long


def test_collate_pads_left_in_the_given_order() -> None:
    batch = collate(encoded({"labels": [1, 0, 2]}), [2, 0, 1], PAD, pad_left=True)
    assert batch["input_ids"].tolist() == [[PAD, 9, 10], [5, 6, 7], [PAD, PAD, 8]]
    assert batch["attention_mask"].tolist() == [[0, 1, 1], [1, 1, 1], [0, 0, 1]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]
    assert batch["labels"].tolist() == [2, 1, 0]


def test_collate_float_targets_and_no_token_types() -> None:
    batch = collate(encoded({"labels": [0.5, 1.0, 4.25]}, types=False), [2, 1], PAD)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [4.25, 1.0]
    assert "token_type_ids" not in batch


def test_collate_rounds_width_up() -> None:
    batch = collate(encoded(), [0, 1], PAD, multiple_of=8)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum().item() == 4
    assert "labels" not in batch


# --- step arithmetic ----------------------------------------------------------------------------


def plan(
    n: int = 100, bs: int = 32, ga: int = 1, epochs: float = 3, max_steps: int | None = None, **kw
) -> Plan:
    steps = {"logging_steps": None, "eval_steps": None, "save_steps": None, **kw}
    return make_plan(n, bs, ga, epochs, max_steps, **steps)


def test_plan_rounds_partial_batches_up() -> None:
    p = plan(n=100, bs=32, epochs=3)
    assert (p.batches_per_epoch, p.steps_per_epoch, p.total_steps, p.num_epochs) == (4, 4, 12, 3)


@pytest.mark.parametrize(
    ("n", "epochs"), [(16, 3), (3668, 3), (20_000, 3), (25_000, 2), (67_349, 1), (10**6, 1)]
)
def test_auto_epochs_is_three_for_small_sets_and_fewer_for_large(n: int, epochs: int) -> None:
    assert auto_epochs(n) == epochs
    per_epoch = math.ceil(n / 32)
    assert plan(n=n, bs=32, epochs="auto").total_steps == per_epoch * auto_epochs(n, per_epoch)


def test_auto_epochs_give_a_tiny_set_enough_steps() -> None:
    """40 examples at batch 32 (2 steps an epoch): 15 epochs make 30 steps, not 3 make 6."""
    assert auto_epochs(40, steps_per_epoch=2) == 15
    assert plan(n=40, bs=32, epochs="auto").total_steps == 30
    assert auto_epochs(16, steps_per_epoch=1) == 20  # capped
    assert auto_epochs(3668, steps_per_epoch=115) == 3  # MRPC: already enough


def test_plan_max_steps_overrides_epochs() -> None:
    p = plan(n=100, bs=32, epochs=3, max_steps=10)
    assert (p.total_steps, p.num_epochs) == (10, 3)
    assert plan(n=100, bs=32, epochs=3, max_steps=100).num_epochs == 25


@pytest.mark.parametrize(("epochs", "total", "num_epochs"), [(0.5, 5, 1), (1.5, 15, 2), (0.01, 1, 1)])
def test_plan_fractional_epochs(epochs: float, total: int, num_epochs: int) -> None:
    p = plan(n=100, bs=10, epochs=epochs)
    assert (p.steps_per_epoch, p.total_steps, p.num_epochs) == (10, total, num_epochs)


def test_plan_grad_accum_counts_micro_batches() -> None:
    p = plan(n=100, bs=32, ga=4, epochs=3)  # micro-batches of 8: 13 per epoch, 4 steps
    assert (p.batches_per_epoch, p.steps_per_epoch, p.total_steps) == (13, 4, 12)
    assert (
        plan(n=96, bs=32, ga=4, epochs=1).steps_per_epoch == plan(n=96, bs=32, ga=1, epochs=1).steps_per_epoch
    )


def test_plan_logging_default_and_passthrough() -> None:
    assert plan(n=10_000, bs=10, epochs=3).logging_steps == 60  # 3000 steps / 50 points
    assert plan(n=10, bs=10, epochs=1).logging_steps == 1
    p = plan(logging_steps=7, eval_steps=11, save_steps=13)
    assert (p.logging_steps, p.eval_steps, p.save_steps) == (7, 11, 13)


# --- metrics ------------------------------------------------------------------------------------


def arr(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=float)


def test_regression_metrics_perfect_and_reversed() -> None:
    gold = arr([1, 2, 3, 4])
    m = regression_metrics(gold, arr([2, 4, 6, 8]))
    assert m["pearson"] == pytest.approx(1.0) and m["spearman"] == pytest.approx(1.0)
    assert m["mse"] == pytest.approx((1 + 4 + 9 + 16) / 4)
    m = regression_metrics(gold, arr([8, 6, 4, 2]))
    assert m["pearson"] == pytest.approx(-1.0) and m["spearman"] == pytest.approx(-1.0)


def test_regression_metrics_monotone_but_not_linear() -> None:
    m = regression_metrics(arr([1, 2, 3, 4]), arr([1, 4, 9, 16]))
    assert m["spearman"] == pytest.approx(1.0)
    assert 0.95 < m["pearson"] < 0.99


@pytest.mark.parametrize(
    ("gold", "pred"),
    [([1, 2, 3], [5, 5, 5]), ([2, 2, 2], [1, 2, 3]), ([1.0], [2.0]), ([1, 2], [3, float("nan")])],
)
def test_regression_metrics_undefined_correlation_is_zero_not_nan(gold: list, pred: list) -> None:
    m = regression_metrics(arr(gold), arr(pred))
    assert m["pearson"] == 0.0 and m["spearman"] == 0.0


def test_classification_metrics_all_one_class_predicted() -> None:
    m = classification_metrics(np.array([0, 1, 1, 0]), np.array([0, 0, 0, 0]), 2)
    assert m == {"accuracy": 0.5, "f1": 0.0, "mcc": 0.0}


# --- max_length ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p99", "limit", "expected"),
    [(0, 512, 8), (1, 512, 8), (8, 512, 8), (9, 512, 16), (100, 512, 104), (511, 512, 512), (600, 512, 512),
     (130, 128, 128)],
)  # fmt: skip
def test_suggest_max_length(p99: int, limit: int, expected: int) -> None:
    assert suggest_max_length(p99, limit) == expected


def test_suggest_max_length_is_a_covering_multiple_of_8() -> None:
    for p99 in range(1, 600):
        got = suggest_max_length(p99, 512)
        assert got % 8 == 0 and got <= 512
        assert got >= p99 or got == 512
        assert got - p99 < 8 or got == 8 or got == 512


def test_length_stats_on_a_known_list() -> None:
    stats = length_stats(list(range(1, 101)), limit=512)
    assert (stats.count, stats.mean, stats.max) == (100, 50.5, 100)
    # "higher" percentiles: a length that occurs and covers at least that share.
    assert (stats.p50, stats.p90, stats.p95, stats.p99) == (51, 91, 96, 100)
    assert (stats.suggested, stats.limit, stats.truncated_share) == (104, 512, 0.0)
    assert "suggested max_length" in stats.table() and "104" in stats.table()


def test_length_stats_capped_by_the_model_limit() -> None:
    stats = length_stats(list(range(1, 101)), limit=64)
    assert stats.suggested == 64
    assert stats.truncated_share == pytest.approx(0.36)


def test_length_stats_outlier_does_not_drive_the_suggestion() -> None:
    stats = length_stats([20] * 999 + [500], limit=512)
    assert (stats.p99, stats.max, stats.suggested) == (20, 500, 24)
    assert stats.truncated_share == pytest.approx(0.001)


def test_length_stats_empty() -> None:
    with pytest.raises(ValueError):
        length_stats([], limit=512)
