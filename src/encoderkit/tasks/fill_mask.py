"""Fill-mask with a masked-LM checkpoint: the top-k tokens and probabilities for each mask token.

For quick checks of pretrained or further-pretrained encoders (`encoderkit fill-mask`, the
server). A checkpoint without masked-LM head weights (a sentence-embedding model such as the
bundled MiniLM) is refused: its head would be random and every answer noise. Inference only:
the registry marks it untrainable, so its training methods are never called.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import BaseModel, Field
from transformers import AutoModelForMaskedLM

from encoderkit.errors import UserError
from encoderkit.features.batches import sorted_batches
from encoderkit.features.collate import Collator
from encoderkit.features.encoded import Encoded
from encoderkit.features.forward import ForwardPass
from encoderkit.model_folder.card import CardText
from encoderkit.modeling import load_config, load_tokenizer, model_max_length, resolve_model
from encoderkit.tasks.base import LoadedModel, Registered
from encoderkit.tasks.masking import continuation_ids
from encoderkit.tasks.rows import check_rows as check_fields
from encoderkit.tasks.rows import text_field, with_ids
from encoderkit.tasks.schemas import Id, Strict, id_field, request_of

DEFAULT_TOP_K = 5
MAX_TOP_K = 100
# Small forward batches: the logits are [batch, length, vocab] floats (~120 MB at 8 x 128 x 30k).
BATCH_SIZE = 8


def load_masked_lm(name: str, device: torch.device) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, metadata) of a masked-LM checkpoint: `minilm`, a folder or a Hub id.

    Raises:
        UserError: the model cannot be found, or its checkpoint has no masked-LM head weights.
    """
    config = load_config(name)
    tokenizer = load_tokenizer(name)
    if tokenizer.mask_token is None:
        raise UserError(f"model '{name}': its tokenizer has no mask token, so it cannot fill masks")
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(
            resolve_model(name), config=config, output_loading_info=True, use_safetensors=True
        )
    except Exception as exc:  # missing (OSError), damaged (SafetensorError), pickled weights, ...
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"model '{name}': cannot load it as a masked LM ({first})") from None
    prefix = f"{model.base_model_prefix}."
    head_missing = sorted(k for k in info["missing_keys"] if not k.startswith(prefix))
    if head_missing:
        raise UserError(
            f"model '{name}': the checkpoint has no masked-LM head weights (missing {head_missing[0]}, ...); "
            "fill-mask needs a model pretrained with its MLM head saved (e.g. bert-base-uncased)"
        )
    meta = {
        "task": "fill-mask",
        "base_model": name,
        "max_length": model_max_length(config, tokenizer),
        "label_names": None,
        "mask_token": tokenizer.mask_token,
    }
    return model.to(device).eval(), tokenizer, meta


def read_flag(row: dict[str, Any], name: str, where: str) -> bool:
    value = row.get(name, False)
    if not isinstance(value, bool):
        raise UserError(f"{where}.{name}: expected true or false, got {value!r}")
    return value


def word_excluded(tokenizer: Any) -> torch.Tensor:
    """Ids a whole-word answer leaves out: special tokens and tokens that continue a word (`##ing`)."""
    return torch.tensor(sorted({*tokenizer.all_special_ids, *continuation_ids(tokenizer)}), dtype=torch.long)


def read_top_k(row: dict[str, Any], where: str) -> int:
    value = row.get("top_k", DEFAULT_TOP_K)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise UserError(f"{where}.top_k: expected an integer from 1 to {MAX_TOP_K}, got {value!r}")
    return value


def check_rows(rows: list[dict[str, Any]], mask_token: str, wheres: list[str] | None = None) -> list[str]:
    """The texts, each holding `mask_token`, after checking `top_k`; no tokenizer involved.
    `wheres` names each row in errors (default `inputs[i].text`; `file:line` for a file)."""
    texts = []
    for i, row in enumerate(rows):
        read_top_k(row, f"inputs[{i}]")
        read_flag(row, "whole_words", f"inputs[{i}]")
        read_flag(row, "joint", f"inputs[{i}]")
        text = str(text_field(row, "text", f"inputs[{i}]"))
        if mask_token not in text:
            raise UserError(f"{_where(wheres, i)}: no mask token {mask_token} in the text")
        texts.append(text)
    return texts


def encode_masked(
    tokenizer: Any, rows: list[dict[str, Any]], max_length: int, wheres: list[str] | None = None
) -> Encoded:
    """Token ids of each row's text; every text must hold the mask token and fit the model.

    Texts are never truncated: cutting a text could cut its mask and answer a different question.
    """
    texts = check_rows(rows, tokenizer.mask_token, wheres)
    enc = tokenizer(texts, truncation=False, return_attention_mask=False)
    for i, ids in enumerate(enc["input_ids"]):
        if len(ids) > max_length:
            raise UserError(f"{_where(wheres, i)}: {len(ids)} tokens, longer than the model's {max_length}")
    return Encoded(enc["input_ids"], enc.get("token_type_ids"))


def _where(wheres: list[str] | None, i: int) -> str:
    return wheres[i] if wheres else f"inputs[{i}].text"


def mask_probabilities(model: Any, encoded: Encoded, mask_id: int, pad_id: int, device: torch.device) -> list:
    """Per input, one [vocab] probability tensor per mask token (in text order), on the CPU."""
    found: list[list[torch.Tensor]] = [[] for _ in range(len(encoded))]
    batches = sorted_batches(encoded.lengths, BATCH_SIZE)
    collator = Collator(pad_id)  # right padding: token k of a row is column k
    for indices, batch, out in ForwardPass(model, device, collator).each(encoded, batches):
        rows, cols = (batch["input_ids"] == mask_id).nonzero(as_tuple=True)
        probs = torch.softmax(out.logits[rows, cols].float(), dim=-1).cpu()  # logits [B, L, V] -> [M, V]
        for r, p in zip(rows.tolist(), probs, strict=True):
            found[indices[r]].append(p)
    return found


def candidates(
    tokenizer: Any,
    text: str,
    mask: int,
    probs: torch.Tensor,
    top_k: int,
    excluded: torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """The `top_k` tokens for mask number `mask` of `text`, best first, each with the text where
    only that mask is filled (`sequence`). `excluded` ids are never offered (their probability is
    not spread over the others: scores stay the model's probabilities)."""
    parts = text.split(tokenizer.mask_token)
    before = tokenizer.mask_token.join(parts[: mask + 1])
    after = tokenizer.mask_token.join(parts[mask + 1 :])
    if excluded is not None:
        probs = probs.clone()
        probs[excluded[excluded < probs.shape[0]]] = -1.0  # below every probability
    scores, ids = probs.topk(min(top_k, probs.shape[0]))
    out = []
    for score, token_id in zip(scores.tolist(), ids.tolist(), strict=True):
        if score < 0:  # excluded: fewer candidates than top_k remain
            break
        token = tokenizer.decode([token_id]).strip()
        filled = before + token + after
        out.append({"token": token, "token_id": token_id, "score": round(score, 6), "sequence": filled})
    return out


def joint_fillings(
    model: Any,
    tokenizer: Any,
    text: str,
    ids: list[int],
    beam: int,
    excluded: torch.Tensor | None,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Whole fillings of every mask of `text`, ranked by their joint probability, best first.

    A masked LM gives each mask a distribution given the others still masked; the independent
    per-mask lists can pair answers that do not go together. Here the masks are filled left to
    right with a beam of `beam` partial fillings: each step runs the model on every partial
    filling and extends it with the next mask's top tokens, so a later mask is conditioned on the
    earlier ones (the chain rule with the model's conditionals). The score is the product.
    """
    mask_id = tokenizer.mask_token_id
    positions = [p for p, t in enumerate(ids) if t == mask_id]
    beams: list[tuple[float, list[int]]] = [(0.0, [])]  # (log probability, tokens so far)
    for position in positions:
        rows = [list(ids) for _ in beams]
        for row, (_, tokens) in zip(rows, beams, strict=True):
            for p, token in zip(positions, tokens, strict=False):
                row[p] = token
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor(rows, device=device)).logits[:, position].float()
        logp = torch.log_softmax(logits, dim=-1).cpu()
        if excluded is not None:
            logp[:, excluded[excluded < logp.shape[1]]] = float("-inf")
        top, which = logp.topk(min(beam, logp.shape[1]), dim=-1)
        grown = [
            (score + float(s), [*tokens, int(t)])
            for (score, tokens), ss, ts in zip(beams, top, which, strict=True)
            for s, t in zip(ss, ts, strict=True)
            if s > float("-inf")
        ]
        beams = sorted(grown, key=lambda b: -b[0])[:beam]
    parts = text.split(tokenizer.mask_token)
    out = []
    for score, tokens in beams:
        words = [tokenizer.decode([t]).strip() for t in tokens]
        filled = parts[0] + "".join(w + rest for w, rest in zip(words, parts[1:], strict=True))
        out.append(
            {
                "tokens": words,
                "token_ids": tokens,
                "score": float(f"{math.exp(score):.6g}"),  # products get small: 6 significant digits
                "sequence": filled,
            }
        )
    return out


def fill_masks(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    max_length: int,
    device: torch.device,
    wheres: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One dict per row: `masks`, a candidate list per mask token of its text (text order)."""
    encoded = encode_masked(tokenizer, rows, max_length, wheres)
    top_ks = [read_top_k(row, f"inputs[{i}]") for i, row in enumerate(rows)]
    whole = [read_flag(row, "whole_words", f"inputs[{i}]") for i, row in enumerate(rows)]
    excluded = word_excluded(tokenizer) if any(whole) else None
    per_row = mask_probabilities(model, encoded, tokenizer.mask_token_id, tokenizer.pad_token_id, device)
    out = []
    for i, (row, probs, k, w) in enumerate(zip(rows, per_row, top_ks, whole, strict=True)):
        text, leave_out = str(row["text"]), excluded if w else None
        answer: dict[str, Any] = {
            "masks": [candidates(tokenizer, text, m, p, k, leave_out) for m, p in enumerate(probs)]
        }
        if read_flag(row, "joint", f"inputs[{i}]"):
            answer["joint"] = joint_fillings(
                model, tokenizer, text, encoded.input_ids[i], k, leave_out, device
            )
        out.append(answer)
    return out


class MaskInput(Strict):
    id: Id = id_field()
    text: str = Field(description="holds the tokenizer's mask token (see /v1/info) at least once")
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K)
    whole_words: bool = Field(False, description="offer whole words only: no special or `##` tokens")
    joint: bool = Field(False, description="also rank whole fillings of all masks by joint probability")


MaskRequest = request_of("MaskRequest", MaskInput)


class Candidate(BaseModel):
    token: str
    token_id: int
    score: float = Field(description="probability")
    sequence: str = Field(description="the text with this mask filled")


class Filling(BaseModel):
    tokens: list[str] = Field(description="one token per mask, in text order")
    token_ids: list[int]
    score: float = Field(description="joint probability (the chain of the model's conditionals)")
    sequence: str = Field(description="the text with every mask filled")


class MaskOutput(BaseModel):
    id: Id = None
    masks: list[list[Candidate]] = Field(description="per mask token in the text, the top-k candidates")
    joint: list[Filling] | None = Field(None, description="with `joint`: the top-k whole fillings")


class MaskResponse(BaseModel):
    task: str
    predictions: list[MaskOutput]


ROW_FIELDS = ("text", "top_k", "whole_words", "joint")


class FillMaskTask(Registered):
    """Inference only: `encoderkit fill-mask` and `serve` on a pretrained masked LM."""

    model_class = AutoModelForMaskedLM
    target_keys = ("labels",)
    prepare_fields = ()
    card = CardText("fill-mask", "AutoModelForMaskedLM", "masked-language modelling", "")
    request_body = MaskRequest
    response_body = MaskResponse

    def prepare(self, config: Any, tokenizer: Any, model_limit: int) -> Any:
        raise UserError("field 'task': fill-mask is for inference only (encoderkit fill-mask, serve)")

    model_config = decoding = evaluate = tuned = loss = prepare
    report_sections = labels_text = prepare

    def check_rows(self, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        check_rows(check_fields(rows, self.name, ROW_FIELDS), str(meta["mask_token"]))

    def predict_rows(self, rows: list[dict[str, Any]], model: LoadedModel) -> list[dict[str, Any]]:
        rows = check_fields(rows, self.name, ROW_FIELDS)
        outputs = fill_masks(model.model, model.tokenizer, rows, int(model.meta["max_length"]), model.device)
        return with_ids(rows, outputs)

    def predict_file(self, source: str, flags: dict[str, str | None], model: LoadedModel) -> Any:
        raise UserError("predict: a fill-mask model takes texts (`encoderkit fill-mask`, predict_rows)")

    def evaluate_file(self, source: str, flags: dict[str, str | None], model: LoadedModel) -> Any:
        raise UserError("evaluate: a fill-mask model takes texts (`encoderkit fill-mask`, predict_rows)")

    def info(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"mask_token": meta.get("mask_token")}
