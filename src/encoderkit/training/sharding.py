"""Split each optimizer step's examples across processes, balanced by tokens.

The global micro-batches are built exactly as a 1-process run builds them (batching.py), so the
same examples form each optimizer step, padded to the same width, at any world size; only who
computes which example changes. Each process weights a micro-batch loss by
(its examples / the step's examples) x world: DDP averages gradients over the world, so the sum
equals the 1-process gradient up to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence


def shard_step(
    group: Sequence[Sequence[int]], lengths: Sequence[int], rank: int, world: int
) -> list[tuple[list[int], int | None]]:
    """This rank's micro-batches for one optimizer step, each as (indices, width to pad to).

    `group` is the step's global micro-batches. World 1 returns them unchanged, width None (pad to
    the longest: a 1-process run stays bit-identical). Otherwise each global micro-batch is dealt
    over the ranks (`deal`) and every share is padded to the width of the whole micro-batch, as
    in a 1-process run: every rank computes the same number of padded tokens (no rank waits), and
    the same shapes keep the float rounding of a 1-process run. (Losses no longer depend on the
    padding: objective.py masks the pad positions out of the QA softmax.)
    A share is empty when a micro-batch has fewer examples than ranks; the result
    is empty when the whole step is (the caller still runs a zero-weight pass).
    """
    if world == 1:
        return [(list(b), None) for b in group]
    mine: list[tuple[list[int], int | None]] = []
    for batch in group:
        longest_first = sorted(batch, key=lambda i: -lengths[i])
        share = deal(longest_first, lengths, world)[rank]
        if share:
            mine.append((share, max(lengths[i] for i in batch)))
    return mine


def deal(examples: Sequence[int], lengths: Sequence[int], world: int) -> list[list[int]]:
    """Deal `examples` (longest first) to `world` ranks: balanced counts, then balanced tokens."""
    n = len(examples)
    quota = [n // world + (1 if r < n % world else 0) for r in range(world)]
    shards: list[list[int]] = [[] for _ in range(world)]
    tokens = [0] * world
    for i in examples:
        open_ranks = [r for r in range(world) if len(shards[r]) < quota[r]]
        r = min(open_ranks, key=lambda r: (tokens[r], r))
        shards[r].append(i)
        tokens[r] += lengths[i]
    return shards


def shard_eval_batches(batches: Sequence[Sequence[int]], rank: int, world: int) -> list[list[int]]:
    """Evaluation: rank r takes sorted batches r, r + world, ... (disjoint, all covered)."""
    return [list(b) for b in batches[rank::world]]
