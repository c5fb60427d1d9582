"""Batched forward passes for evaluation and prediction (no gradients, length-sorted batches)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch

from encoderkit import packing
from encoderkit.training.batching import Encoded, collate, sorted_batches

OUTPUT_KEYS = ("logits", "start_logits", "end_logits")
PER_TOKEN_KEYS = ("start_logits", "end_logits")  # QA: post-processed by n-best search (top_spans)


Outputs = dict[str, torch.Tensor]
Shard = tuple[list[int], Outputs]  # (feature indices, their outputs in that order)


def forward_all(
    model: torch.nn.Module,
    data: Encoded,
    batch_size: int,
    device: torch.device,
    pad_id: int,
    pad_left: bool = False,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    packed: bool = False,
) -> Outputs:
    """Model outputs for every feature, in the input order, as float32 tensors.

    Sequence logits come back on the CPU (for the metrics); QA's per-token logits stay on the
    model's device, so the n-best search over them runs there too (on a GPU: no [F, L] copy, and
    the top-k over all windows in one kernel per chunk). `autocast` is a factory (e.g.
    `accelerator.autocast`), entered once per batch. `packed`: batches go through the unpadded
    path (packing.py; the model must have been `packing.enable`d). Per-token outputs (QA
    start/end logits, [N, L]) are padded to the longest feature with -inf on the side the
    tokenizer pads, so token positions keep their meaning.
    """
    batches = sorted_batches(data.lengths, batch_size)
    shard = forward_batches(model, data, batches, device, pad_id, pad_left, autocast, packed, to_cpu=False)
    return merge_shards([shard], pad_left)


@torch.inference_mode()
def forward_batches(
    model: torch.nn.Module,
    data: Encoded,
    batches: Sequence[Sequence[int]],
    device: torch.device,
    pad_id: int,
    pad_left: bool = False,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    packed: bool = False,
    to_cpu: bool = True,
) -> Shard:
    """Outputs of the given batches only (one process's share of an evaluation), in batch order.

    With `to_cpu` (what a shard gathered across processes needs) every output comes to the CPU;
    without, QA's per-token logits stay on `device`.
    """
    was_training = model.training
    if was_training:  # `eval()` walks every module: ~3 ms per call, a quarter of a short served request
        model.eval()
    pieces: dict[str, list[torch.Tensor]] = {}
    order: list[int] = []
    multiple_of = 8 if device.type == "cuda" else 1
    features = Encoded(data.input_ids, data.token_type_ids)  # no targets
    offset = packing.position_offset(model) if packed else 0
    for indices in batches:
        if packed:  # QA logits come back -inf after each feature's end, as _cat pads them
            batch = packing.collate_packed(features, indices, pad_id, offset, multiple_of * 8)
        else:
            batch = collate(features, indices, pad_id, pad_left, multiple_of)
        batch = {
            k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
        }
        with autocast():
            out = packing.packed_logits(model, batch) if packed else model(**batch)
        for key in OUTPUT_KEYS:
            value = out.get(key)
            if value is not None:
                keep = key in PER_TOKEN_KEYS and not to_cpu
                pieces.setdefault(key, []).append(value.float() if keep else value.float().cpu())
        order.extend(indices)
    if was_training:
        model.train()
    return order, {key: _cat(parts, pad_left) for key, parts in pieces.items()}


def merge_shards(shards: Sequence[Shard], pad_left: bool) -> Outputs:
    """Join the shards of all processes into one output per feature, in the input order.

    Every feature must be in exactly one shard (a shard may be empty: a process with no batch).
    """
    order = [i for indices, _ in shards for i in indices]
    if sorted(order) != list(range(len(order))):
        raise ValueError(f"evaluation shards cover {len(set(order))} distinct of {len(order)} features")
    keys = next((list(outputs) for indices, outputs in shards if indices), [])
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    parts = {key: [outputs[key] for indices, outputs in shards if indices] for key in keys}
    merged = {key: _cat(tensors, pad_left) for key, tensors in parts.items()}
    return {key: tensor[inverse.to(tensor.device)] for key, tensor in merged.items()}


def _cat(parts: list[torch.Tensor], pad_left: bool) -> torch.Tensor:
    if parts[0].dim() == 2 and len({p.shape[1] for p in parts}) > 1:
        width = max(p.shape[1] for p in parts)
        padded = []
        for p in parts:
            pad = (width - p.shape[1], 0) if pad_left else (0, width - p.shape[1])
            padded.append(torch.nn.functional.pad(p, pad, value=float("-inf")))
        parts = padded
    return torch.cat(parts)
