"""Batch order: length-grouped or token-budget training batches, length-sorted evaluation batches.

Batch order is a pure function of (lengths, batch size or token budget, seed, epoch): a resumed
run recomputes the same epoch and skips the batches it already trained on, so no sampler state
is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# How many batches form one length-sorted "mega-batch": large enough to cut most padding,
# small enough that batch composition still changes from epoch to epoch (as in HF's sampler).
MEGABATCH = 50


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, group_by_length: bool = True
) -> list[list[int]]:
    """Shuffled batches of indices; with grouping, each batch holds examples of similar length.

    Shuffle all indices, cut them into mega-batches of MEGABATCH * batch_size, sort each by
    length (longest first), cut into batches, then shuffle the batch order; the longest batch goes
    first so an out-of-memory error shows on step 1, not hours in.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    lengths_arr = np.asarray(lengths)
    batches: list[list[int]] = []
    span = MEGABATCH * batch_size
    for i in range(0, len(order), span):
        mega = order[i : i + span]
        mega = mega[np.argsort(-lengths_arr[mega], kind="stable")]
        batches.extend(mega[j : j + batch_size].tolist() for j in range(0, len(mega), batch_size))
    batch_order = rng.permutation(len(batches))
    batches = [batches[k] for k in batch_order]
    longest = max(range(len(batches)), key=lambda k: max(lengths_arr[batches[k]]))
    batches[0], batches[longest] = batches[longest], batches[0]
    return batches


def token_budget_batches(lengths: Sequence[int], max_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches of similar length, each as large as fits `max_tokens` when padded.

    A batch's cost is (examples x its longest example): the size of the padded tensor, and close
    to the real token count since neighbours in length order are alike. Examples are sorted by
    length, ties broken by this epoch's shuffle, and cut greedily longest first; the batch order
    is then shuffled, with the costliest batch first. The cuts depend on the sorted lengths alone,
    so every epoch has the same number of batches (a fixed plan and schedule), while examples of
    equal length meet other neighbours each epoch. An example longer than `max_tokens` is a batch
    by itself (train() refuses such a budget first).
    """
    rng = np.random.default_rng([seed, epoch])
    lengths_arr = np.asarray(lengths)
    order = rng.permutation(len(lengths_arr))
    order = order[np.argsort(-lengths_arr[order], kind="stable")]
    batches: list[list[int]] = []
    start = 0
    for i in range(1, len(order)):
        if (i - start + 1) * lengths_arr[order[start]] > max_tokens:  # order[start] is the longest
            batches.append(order[start:i].tolist())
            start = i
    if len(order):
        batches.append(order[start:].tolist())
    batches = [batches[k] for k in rng.permutation(len(batches))]
    if batches:
        costliest = max(range(len(batches)), key=lambda k: len(batches[k]) * lengths_arr[batches[k][0]])
        batches[0], batches[costliest] = batches[costliest], batches[0]
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: sorted by length so padding is minimal; callers restore the order."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
