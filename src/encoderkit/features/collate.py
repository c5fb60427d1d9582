"""Collation: the selected features as one padded batch, or as one packed row (packing.py).

One `Collator` holds what every caller used to pass by hand (pad id, side, rounding, packed or
padded), so training, evaluation, `predict`, `serve` and fill-mask build batches the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from encoderkit.features.encoded import Encoded


@dataclass(frozen=True)
class Collator:
    """How batches are built for one model and device.

    `multiple_of` rounds the padded width (padded) or the token count (packed) up, so kernels and
    torch.compile see fewer shapes on a GPU; `position_offset` is where the model's position ids
    start in a packed row (RoBERTa: pad id + 1).
    """

    pad_id: int
    pad_left: bool = False
    multiple_of: int = 1
    packed: bool = False
    position_offset: int = 0

    def __call__(self, data: Encoded, indices: Sequence[int], width: int | None = None) -> dict[str, Any]:
        if self.packed:
            return collate_packed(data, indices, self.pad_id, self.position_offset, self.multiple_of)
        return collate(data, indices, self.pad_id, self.pad_left, self.multiple_of, width)


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
        if isinstance(picked[0], list):  # one label per token: padded with the ignored index
            batch[key] = per_token(picked, width, pad_left)
        else:
            batch[key] = target_tensor(picked)
    return batch


IGNORE = -100  # the label of a position no loss or metric reads (torch's cross_entropy default)


def per_token(labels: list[list[int]], width: int, pad_left: bool) -> torch.Tensor:
    """Per-token labels as [B, width], IGNORE where a row has none (padding, on the tokenizer's side)."""
    out = torch.full((len(labels), width), IGNORE, dtype=torch.long)
    for b, row in enumerate(labels):
        cols = slice(width - len(row), width) if pad_left else slice(0, len(row))
        out[b, cols] = torch.tensor(row, dtype=torch.long)
    return out


def collate_packed(
    data: Encoded, indices: Sequence[int], pad_id: int, position_offset: int = 0, multiple_of: int = 1
) -> dict[str, Any]:
    """The selected features as one packed row, with per-sequence positions and boundaries.

    With `multiple_of` > 1, T is rounded up by a filler sequence of pad tokens (its own attention
    segment, read by no head): fewer distinct shapes for torch.compile and the kernels.
    """
    rows = [data.input_ids[i] for i in indices]
    lengths = [len(r) for r in rows]
    filler = -sum(lengths) % multiple_of
    ids = [t for r in rows for t in r] + [pad_id] * filler
    positions = [p for n in [*lengths, filler] for p in range(n)]
    bounds = [0]
    for n in [*lengths, filler] if filler else lengths:
        bounds.append(bounds[-1] + n)
    batch: dict[str, Any] = {
        "input_ids": torch.tensor([ids]),
        "position_ids": torch.tensor([positions]) + position_offset,
        "cu_seq_lens": torch.tensor(bounds, dtype=torch.int32),
        "max_length": max(*lengths, filler),  # for the kernel: the filler counts
        "longest": max(lengths),  # for the heads: it does not
        "num_sequences": len(rows),
    }
    if data.token_type_ids is not None:
        batch["token_type_ids"] = torch.tensor(
            [[t for i in indices for t in data.token_type_ids[i]] + [0] * filler]
        )
    for key, values in data.targets.items():  # positions count from each sequence's own start
        picked = [values[i] for i in indices]
        # One label per token: one row per sequence, as packed_logits unpacks the per-token heads.
        per_row = isinstance(picked[0], list)
        batch[key] = per_token(picked, max(lengths), False) if per_row else target_tensor(picked)
    return batch


def target_tensor(values: list) -> torch.Tensor:
    """Float targets (regression scores, class weights) stay float; labels and token positions are
    long. A tuple per example (multi-label 0/1 vectors) is one row of a [batch, K] target."""
    first = values[0][0] if isinstance(values[0], tuple) else values[0]
    return torch.tensor(values, dtype=torch.float if isinstance(first, float) else torch.long)


def device_collator(
    pad_id: int, pad_left: bool, on_cuda: bool, packed: bool = False, position_offset: int = 0,
    evaluation: bool = False,
) -> Collator:  # fmt: skip
    """The collator for a model on a CUDA GPU or a CPU.

    On a GPU, padded widths round to 8 and packed token counts to 64 (fewer shapes for the
    kernels and torch.compile); on a CPU nothing is rounded, except packed evaluation batches (8).
    """
    if not packed:
        return Collator(pad_id, pad_left, 8 if on_cuda else 1, packed, position_offset)
    multiple_of = 64 if on_cuda else (8 if evaluation else 1)
    return Collator(pad_id, pad_left, multiple_of, packed, position_offset)
