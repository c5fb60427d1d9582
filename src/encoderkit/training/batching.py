"""Tokenized examples, length-grouped or token-budget batch order, and dynamic padding.

Batch order is a pure function of (lengths, batch size or token budget, seed, epoch): a resumed
run recomputes the same epoch and skips the batches it already trained on, so no sampler state
is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

# How many batches form one length-sorted "mega-batch": large enough to cut most padding,
# small enough that batch composition still changes from epoch to epoch (as in HF's sampler).
MEGABATCH = 50


@dataclass
class Encoded:
    """Tokenized features. `targets` maps a model keyword (`labels`, `start_positions`) to values."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None = None
    targets: dict[str, list] = field(default_factory=dict)
    # Targets that are token positions (QA start/end): shifted when a batch pads on the left.
    position_keys: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


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


def collate(
    data: Encoded,
    indices: Sequence[int],
    pad_id: int,
    pad_left: bool = False,
    multiple_of: int = 1,
    width: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pad the selected features to the longest one, or to `width` if wider (rounded up to `multiple_of`)."""
    rows = [data.input_ids[i] for i in indices]
    width = max(width or 0, *(len(r) for r in rows))
    width = -(-width // multiple_of) * multiple_of
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long) if data.token_type_ids is not None else None
    for b, (i, row) in enumerate(zip(indices, rows, strict=True)):
        cols = slice(width - len(row), width) if pad_left else slice(0, len(row))
        input_ids[b, cols] = torch.tensor(row)
        attention_mask[b, cols] = 1
        if types is not None and data.token_type_ids is not None:
            types[b, cols] = torch.tensor(data.token_type_ids[i])
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if types is not None:
        batch["token_type_ids"] = types
    for key, values in data.targets.items():
        picked = [values[i] for i in indices]
        if pad_left and key in data.position_keys:
            picked = [p + width - len(row) for p, row in zip(picked, rows, strict=True)]
        batch[key] = target_tensor(picked)
    return batch


def target_tensor(values: list) -> torch.Tensor:
    """Float targets (regression scores) stay float; labels and token positions are long."""
    return torch.tensor(values, dtype=torch.float if isinstance(values[0], float) else torch.long)
