"""The one forward pass over batches: in-training evaluation, `predict`, `serve` and fill-mask use it.

No gradients, length-sorted batches, outputs back in the input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from encoderkit import packing
from encoderkit.features.batches import sorted_batches
from encoderkit.features.collate import Collator
from encoderkit.features.encoded import Encoded

OUTPUT_KEYS = ("logits", "start_logits", "end_logits")
PER_TOKEN_KEYS = ("start_logits", "end_logits")  # QA: post-processed by n-best search (top_spans)


Outputs = dict[str, torch.Tensor]
Shard = tuple[list[int], Outputs]  # (feature indices, their outputs in that order)
Step = tuple[Sequence[int], dict[str, Any], Any]  # (feature indices, the batch, the model's output)
# What is kept of a batch's output, per feature: (feature indices, the model's output) -> outputs
# with one row per feature. Masked LM: sums over the masked tokens instead of [B, L, vocab] logits.
Reduce = Callable[[Sequence[int], Any], Outputs]


@dataclass(frozen=True)
class ForwardPass:
    """A model on a device, with how its batches are built: the one forward pass, no gradients.

    `autocast` is a factory (e.g. `accelerator.autocast`), entered once per batch. A packed
    `collator` sends batches through the unpadded path (packing.py; the model must have been
    `packing.enable`d).
    """

    model: torch.nn.Module
    device: torch.device
    collator: Collator
    autocast: Callable[[], AbstractContextManager] = nullcontext
    reduce: Reduce | None = None  # None: keep the logits (OUTPUT_KEYS)

    def each(
        self, data: Encoded, batches: Sequence[Sequence[int]]
    ) -> Iterator[tuple[Sequence[int], Any, Any]]:
        """(indices, batch on the device, model output) per batch.

        `shard` keeps the outputs per feature; fill-mask keeps only the mask positions of its
        [B, L, vocab] logits, which would not fit in memory for a whole input file.
        """
        model = self.model
        was_training = model.training
        if was_training:  # `eval()` walks every module: ~3 ms per call, a quarter of a short served request
            model.eval()
        features = Encoded(data.input_ids, data.token_type_ids)  # no targets
        try:
            for indices in batches:
                batch = self.collator(features, indices)
                batch = {
                    k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                    for k, v in batch.items()
                }
                with torch.inference_mode(), self.autocast():
                    # Packed: QA logits come back -inf after each feature's end, as _cat pads them.
                    out = packing.packed_logits(model, batch) if self.collator.packed else model(**batch)
                yield indices, batch, out
        finally:
            if was_training:
                model.train()

    def shard(self, data: Encoded, batches: Sequence[Sequence[int]], to_cpu: bool = True) -> Shard:
        """Outputs of the given batches only (one process's share of an evaluation), in batch order.

        With `to_cpu` (what a shard gathered across processes needs) every output comes to the
        CPU; without, QA's per-token logits stay on the device.
        """
        pieces: dict[str, list[torch.Tensor]] = {}
        order: list[int] = []
        for indices, _, out in self.each(data, batches):
            kept = self.reduce(indices, out) if self.reduce else {k: out.get(k) for k in OUTPUT_KEYS}
            for key, value in kept.items():
                if value is not None:
                    keep = key in PER_TOKEN_KEYS and not to_cpu
                    pieces.setdefault(key, []).append(value.float() if keep else value.float().cpu())
            order.extend(indices)
        return order, {key: _cat(parts, self.collator.pad_left) for key, parts in pieces.items()}


def forward_all(
    model: torch.nn.Module,
    data: Encoded,
    batch_size: int,
    device: torch.device,
    collator: Collator,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    reduce: Reduce | None = None,
) -> Outputs:
    """Model outputs for every feature, in the input order, as float32 tensors.

    Sequence logits come back on the CPU (for the metrics); QA's per-token logits stay on the
    model's device, so the n-best search over them runs there too (on a GPU: no [F, L] copy, and
    the top-k over all windows in one kernel per chunk). Per-token outputs (QA start/end logits,
    [N, L]) are padded to the longest feature with -inf on the side the tokenizer pads, so token
    positions keep their meaning.
    """
    batches = sorted_batches(data.lengths, batch_size)
    shard = ForwardPass(model, device, collator, autocast, reduce).shard(data, batches, to_cpu=False)
    return merge_shards([shard], collator.pad_left)


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
    """Concatenate batch outputs; per-token ones ([B, L] or [B, L, C]) are first padded along L
    to the widest batch with -inf, on the side the tokenizer pads."""
    if parts[0].dim() >= 2 and len({p.shape[1] for p in parts}) > 1:
        width = max(p.shape[1] for p in parts)
        inner = (0, 0) * (parts[0].dim() - 2)  # F.pad lists the last dimension first
        padded = []
        for p in parts:
            pad = (width - p.shape[1], 0) if pad_left else (0, width - p.shape[1])
            padded.append(torch.nn.functional.pad(p, (*inner, *pad), value=float("-inf")))
        parts = padded
    return torch.cat(parts)
