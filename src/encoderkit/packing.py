"""Unpadded (packed) forward passes for BERT-family encoders.

A padded batch of 32 QA windows of 384 tokens is ~55% padding, and every matrix multiply pays for
it. Packing concatenates a batch's sequences into one row of T real tokens: the linear layers see
only real tokens, and attention runs within each sequence, between the boundaries `cu_seq_lens`
(cumulative lengths, as flash attention takes them):

- on CUDA in bf16/fp16: `torch.nn.attention.varlen.varlen_attn`, one kernel for the whole batch;
- elsewhere: one SDPA call per sequence (exact and slow; for tests and `--unpad on` on CPU).

Positions and token types restart with each sequence, so every token gets the embeddings it gets
padded, and the heads read each sequence's own tokens (its CLS for classification, its span
logits for QA): the logits equal the padded model's up to float rounding. One difference in
training: attention-probability dropout is not applied (varlen_attn has none); hidden dropout is.

The attention function is registered with transformers' AttentionInterface under `ATTENTION`;
called without `cu_seq_lens_q` (a padded batch: evaluation, prediction) it is plain SDPA.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from encoderkit.errors import UserError

ATTENTION = "encoderkit_packed"
# Architectures whose embeddings, attention and heads this module knows (MiniLM is a BERT).
SUPPORTED = ("bert", "roberta", "xlm-roberta")
# The heads `packed_logits` knows, by the end of the transformers class name.
_HEADS = ("ForSequenceClassification", "ForQuestionAnswering", "ForTokenClassification", "ForMaskedLM")
# RoBERTa numbers positions from padding_idx + 1 (HF's create_position_ids_from_input_ids).
_POSITIONS_AFTER_PAD = ("roberta", "xlm-roberta")

varlen_attn: Any = None
with contextlib.suppress(ImportError):  # torch >= 2.10; older: the per-sequence path only
    from torch.nn.attention.varlen import varlen_attn


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: torch.Tensor | None = None,
    max_length_q: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention within each packed sequence; q/k/v are [1, heads, T, head_dim], as BERT passes them."""
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout
        )
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # [T, heads, head_dim]
    if _varlen_runs(q):
        assert max_length_q is not None
        # `scale=` only when not the default 1/sqrt(head_dim) (BERT uses that): torch 2.10 lacks it.
        extra = {} if scaling is None or math.isclose(scaling, q.shape[-1] ** -0.5) else {"scale": scaling}
        out = varlen_attn(q, k, v, cu_seq_lens_q, cu_seq_lens_q, max_length_q, max_length_q, **extra)
    else:
        out = _per_sequence_attention(q, k, v, cu_seq_lens_q, scaling)
    return out.unsqueeze(0), None  # [1, T, heads, head_dim], as the caller reshapes it


# Not traced by torch.compile: its slices have data-dependent sizes (inductor fails on them).
@torch.compiler.disable
def _per_sequence_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seq_lens: torch.Tensor, scaling: float | None
) -> torch.Tensor:
    """The exact fallback: one SDPA call per sequence; q/k/v and the result are [T, heads, head_dim]."""
    parts = [
        F.scaled_dot_product_attention(
            q[s:e].transpose(0, 1), k[s:e].transpose(0, 1), v[s:e].transpose(0, 1), scale=scaling
        ).transpose(0, 1)
        for s, e in itertools.pairwise(cu_seq_lens.tolist())
    ]
    return torch.cat(parts)


AttentionInterface.register(ATTENTION, packed_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # padded calls build the SDPA mask


def _varlen_runs(q: torch.Tensor) -> bool:
    return varlen_attn is not None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)


def varlen_available(device: torch.device) -> bool:
    """Whether the fused kernel can run here (flash attention: CUDA, compute capability 8.0+)."""
    return (
        varlen_attn is not None and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8
    )


def hf_model(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (its LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unsupported(model: Any) -> str | None:
    """Why `model` has no packed path, or None when it has one."""
    hf = hf_model(model)
    kind = hf.config.model_type
    if kind not in SUPPORTED:
        return f"model type {kind!r} (packed: {', '.join(SUPPORTED)})"
    if not type(hf).__name__.endswith(_HEADS):
        return f"{type(hf).__name__} (packed: {', '.join(_HEADS)})"
    return None


def choose_unpad(setting: str, model: Any, device: torch.device, mixed_precision: str) -> tuple[bool, str]:
    """(packed or not, why) for `--unpad auto|on|off`.

    auto packs where the fused kernel runs (CUDA, bf16/fp16, a supported model); elsewhere the
    per-sequence attention would be slower than a length-sorted padded batch.
    Raises UserError for `on` with a model this module does not know.
    """
    if setting == "off":
        return False, "padded (--no-unpad)"
    reason = unsupported(model)
    if setting == "on":
        if reason:
            raise UserError(f"field 'unpad': no packed path for {reason}")
        fused = varlen_available(device) and mixed_precision != "no"
        return True, "packed, " + ("varlen attention" if fused else "per-sequence attention (exact, slow)")
    if reason:
        return False, f"padded: no packed path for {reason}"
    if not varlen_available(device):  # the usual CPU run: nothing is wrong, nothing to change
        return False, "padded to each batch's longest example (packing is for CUDA GPUs)"
    if mixed_precision == "no":
        return False, "padded: varlen attention needs bf16 or fp16"
    return True, "packed, varlen attention"


def enable(model: Any) -> None:
    """Route the model's attention through `packed_attention` (padded calls still get SDPA)."""
    hf_model(model).set_attn_implementation(ATTENTION)


def position_offset(model: Any) -> int:
    config = hf_model(model).config
    return config.pad_token_id + 1 if config.model_type in _POSITIONS_AFTER_PAD else 0


def is_packed(batch: dict[str, Any]) -> bool:
    return "cu_seq_lens" in batch


def packed_logits(model: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's logits for a packed batch, one row per sequence, as the padded model gives them.

    Sequence tasks: `logits` [B, labels]. QA: `start_logits` / `end_logits` [B, longest], -inf
    after each sequence's end (pad positions are never an answer). Per-token heads (token
    classification, masked LM): `logits` [B, longest, classes], 0 after each end, where the
    labels are IGNORE.
    """
    hf = hf_model(model)
    base = getattr(hf, hf.base_model_prefix)
    cu, longest = batch["cu_seq_lens"], batch["max_length"]
    hidden = base(
        input_ids=batch["input_ids"],
        token_type_ids=batch.get("token_type_ids"),
        position_ids=batch["position_ids"],
        cu_seq_lens_q=cu,
        cu_seq_lens_k=cu,
        max_length_q=longest,
        max_length_k=longest,
    ).last_hidden_state[0]  # [T, hidden]
    n, width = batch["num_sequences"], batch["longest"]
    if hasattr(hf, "qa_outputs"):
        start, end = hf.qa_outputs(hidden).unbind(-1)
        return {"start_logits": unpack(start, cu, n, width), "end_logits": unpack(end, cu, n, width)}
    name = type(hf).__name__
    if name.endswith("ForTokenClassification"):
        return {"logits": unpack(hf.classifier(hf.dropout(hidden)), cu, n, width, fill=0.0)}
    if name.endswith("ForMaskedLM"):  # BERT's head is `cls`, RoBERTa's `lm_head`
        head = hf.cls if hasattr(hf, "cls") else hf.lm_head
        return {"logits": unpack(head(hidden), cu, n, width, fill=0.0)}
    cls = hidden[cu[:n].long()].unsqueeze(1)  # [B, 1, hidden]: each sequence's first token
    if hf.config.model_type == "bert":
        logits = hf.classifier(hf.dropout(base.pooler(cls)))
    else:  # RoBERTa's head pools the first token itself
        logits = hf.classifier(cls)
    return {"logits": logits}


def unpack(
    values: torch.Tensor, cu_seq_lens: torch.Tensor, n: int, width: int, fill: float = float("-inf")
) -> torch.Tensor:
    """Per-token values [T] or [T, C] -> [n, width] or [n, width, C] (width: the longest
    sequence), `fill` after each end."""
    starts = cu_seq_lens[:n].long()
    lengths = cu_seq_lens[1 : n + 1].long() - starts
    columns = torch.arange(width, device=values.device)
    inside = columns < lengths[:, None]
    index = (starts[:, None] + columns).clamp(max=values.shape[0] - 1)
    outside = ~inside if values.dim() == 1 else ~inside[..., None]
    return values[index].masked_fill(outside, fill)
