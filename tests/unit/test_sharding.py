"""The distributed split of training steps and evaluation batches, as pure functions."""

from __future__ import annotations

import pytest
import torch

from encoderkit.errors import UserError
from encoderkit.features.batches import length_grouped_batches, sorted_batches
from encoderkit.features.forward import merge_shards
from encoderkit.training.distributed import check_data, check_launch, launch_from_env
from encoderkit.training.sharding import deal, shard_eval_batches, shard_step

LENGTHS = [(7 * i) % 23 + 3 for i in range(101)]  # 101 examples: the last step is uneven


def steps(batch_size: int, grad_accum: int) -> list[list[list[int]]]:
    batches = length_grouped_batches(LENGTHS, batch_size // grad_accum, seed=1, epoch=0)
    return [batches[i : i + grad_accum] for i in range(0, len(batches), grad_accum)]


def test_world_one_is_the_global_step_unchanged() -> None:
    for group in steps(8, 2):
        assert shard_step(group, LENGTHS, 0, 1) == [(b, None) for b in group]


@pytest.mark.parametrize(("world", "grad_accum"), [(2, 1), (2, 2), (4, 1), (3, 2)])
def test_every_example_once_per_epoch_on_exactly_one_rank(world: int, grad_accum: int) -> None:
    batch_size = 12
    seen: list[int] = []
    for group in steps(batch_size, grad_accum):
        per_rank = [shard_step(group, LENGTHS, r, world) for r in range(world)]
        for micro in zip(*per_rank, strict=False):
            # Each share is padded as its whole global micro-batch is: same padded tokens per rank.
            assert len({width for _, width in micro}) == 1
        for b in group:  # each global micro-batch is split evenly (counts differ by at most 1)
            counts = [sum(i in b for share, _ in micro for i in share) for micro in per_rank]
            assert max(counts) - min(counts) <= 1
            assert all(w == max(LENGTHS[i] for i in b) for m in per_rank for s, w in m if set(s) <= set(b))
        got = sorted(i for micro in per_rank for share, _ in micro for i in share)
        assert got == sorted(i for b in group for i in b)  # the same examples form the step
        seen += got
    assert sorted(seen) == list(range(len(LENGTHS)))


def test_a_step_smaller_than_the_world_leaves_a_rank_empty() -> None:
    assert shard_step([[5]], LENGTHS, 1, 2) == []
    assert shard_step([[5]], LENGTHS, 0, 2) == [([5], LENGTHS[5])]


def test_deal_balances_counts_then_tokens() -> None:
    lengths = [100, 90, 10, 10, 10, 5, 5, 2]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    shards = deal(order, lengths, 2)
    assert [len(s) for s in shards] == [4, 4]
    tokens = [sum(lengths[i] for i in s) for s in shards]
    assert abs(tokens[0] - tokens[1]) <= 20  # far better than alternating by position (120 vs 112 ok)
    assert deal([0, 1, 2], [5, 4, 3], 4)[3] == []  # fewer examples than ranks: a rank gets none


def test_eval_shards_merge_back_to_input_order_exactly_once() -> None:
    lengths = [5, 9, 2, 7, 7, 1, 3]
    batches = sorted_batches(lengths, 2)
    shards = []
    for rank in range(3):
        mine = shard_eval_batches(batches, rank, 3)
        indices = [i for b in mine for i in b]
        # per-token outputs as wide as the longest feature of the shard; value = feature index
        width = max((lengths[i] for i in indices), default=0)
        logits = torch.full((len(indices), width), float("-inf"))
        for row, i in enumerate(indices):
            logits[row, : lengths[i]] = float(i)
        shards.append((indices, {"start_logits": logits} if indices else {}))
    merged = merge_shards(shards, pad_left=False)["start_logits"]
    assert merged.shape == (7, 9)
    for i, n in enumerate(lengths):
        assert torch.all(merged[i, :n] == i) and torch.all(merged[i, n:] == float("-inf"))
    with pytest.raises(ValueError, match="distinct"):
        merge_shards([shards[0], shards[0], shards[1], shards[2]], pad_left=False)


def test_launch_checks() -> None:
    assert launch_from_env({}).world == 1 and launch_from_env({}).is_main
    assert launch_from_env({"RANK": "1", "WORLD_SIZE": "2"}).is_main is False
    check_launch(12, 2, 3)
    with pytest.raises(
        UserError, match=r"field 'batch_size': 10 is not divisible by world size 3 x grad_accum 2"
    ):
        check_launch(10, 2, 3)
    with pytest.raises(UserError, match="field 'train'"):
        check_data(1, 2)
