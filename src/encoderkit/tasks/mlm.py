"""Masked-language modelling as a Task: continued pretraining, or pretraining from scratch.

Training sequences are full blocks of concatenated text (or one text per sequence with
`--line-by-line`), masked anew every epoch; the eval text is masked once (`masking.EVAL_SEED`),
so every evaluation and every run on that file scores the same positions. Evaluation keeps only
per-sequence sums of each batch ([B, L, vocab] logits would not fit in memory for a whole eval
set): loss, perplexity and masked-token accuracy over all masked tokens.

A saved model is a masked LM: `fill-mask`, `serve` and `predict` fill masks with it, `evaluate`
scores a text file, and as `--model` of another task it gives its encoder (the head is dropped).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM

from encoderkit.config import TrainConfig
from encoderkit.data.split import holdout, split_note
from encoderkit.data.texts import located_texts, read_texts
from encoderkit.errors import UserError
from encoderkit.features.collate import per_token
from encoderkit.features.encoded import Encoded
from encoderkit.features.forward import Reduce
from encoderkit.model_folder.card import CardText
from encoderkit.modeling import resolve_model
from encoderkit.tasks import fill_mask
from encoderkit.tasks import mlm_examples as examples
from encoderkit.tasks.base import Evaluation, LoadedModel, Outputs, PreparedData, Registered, data_check_lines
from encoderkit.tasks.losses import token_loss
from encoderkit.tasks.masking import EVAL_SEED, IGNORE, Masking, blocks, lines, mask_features, masking_for
from encoderkit.tasks.rows import check_rows as check_fields
from encoderkit.tasks.rows import with_ids

TRAIN_STREAM, EVAL_STREAM = 0, 1  # the first word of a masking seed: train and eval never share masks
HEAD_PREFIXES = ("cls.", "lm_head.", "lm_predictions.", "vocab_", "generator_")  # MLM heads by family


class MaskedLMTask(Registered):
    """`--task mlm`: the loss on masked tokens; metrics on a fixed masking of the eval text."""

    model_class = AutoModelForMaskedLM
    target_keys = ("labels",)
    prepare_fields = (
        "task", "model", "strategy", "train", "eval", "eval_split", "text_column", "max_length",
        "line_by_line", "mlm_probability", "whole_word_mask",
    )  # fmt: skip
    card = CardText(
        "fill-mask",
        "AutoModelForMaskedLM",
        "masked-language modelling",
        'inputs = tokenizer(f"Paris is the {tokenizer.mask_token} of France.", return_tensors="pt")',
    )
    request_body = fill_mask.MaskRequest
    response_body = fill_mask.MaskResponse

    # Training --------------------------------------------------------------------------------

    def tokenizer_for(self, config: TrainConfig, tokenizer: Any) -> Any:
        """`--train-tokenizer`: a vocabulary of `--vocab-size` learnt from the training text with the
        model's tokenizer algorithm (WordPiece for BERT-style models; `tokenizers` underneath)."""
        if not config.train_tokenizer:
            return tokenizer
        assert config.train is not None
        specials = len(tokenizer.all_special_tokens)
        if config.vocab_size <= specials:
            raise UserError(
                f"field 'vocab_size': {config.vocab_size} leaves no room beside the {specials} special tokens"
            )
        texts = read_texts(config.train, config.text_column, config.line_by_line).texts
        if config.eval_split:  # the vocabulary never sees the held-out texts
            texts, _ = holdout(texts, config.eval_split, config.seed)
        return tokenizer.train_new_from_iterator(texts, vocab_size=config.vocab_size)

    def prepare(self, config: TrainConfig, tokenizer: Any, model_limit: int) -> PreparedData:
        """Read the texts, cut them into sequences, mask the eval set once. Raises UserError."""
        assert config.train is not None
        if tokenizer.mask_token is None:
            raise UserError(f"model '{config.model}': its tokenizer has no mask token")
        if config.max_length != "auto" and int(config.max_length) > model_limit:
            raise UserError(
                f"field 'max_length': {config.max_length} is above the model's position limit ({model_limit})"
            )
        max_length = 128 if config.max_length == "auto" else int(config.max_length)
        masking = masking_for(tokenizer, config.mlm_probability, config.whole_word_mask)
        train_texts = read_texts(config.train, config.text_column, config.line_by_line)
        held: list[str] | None = None
        if config.eval_split:  # whole texts: no block is part train, part eval
            kept, held = holdout(train_texts.texts, config.eval_split, config.seed)
            train_texts = dataclasses.replace(train_texts, texts=kept)
        train_docs = tokenize(tokenizer, train_texts.texts)
        train, cut = sequences(tokenizer, train_docs, max_length, config.line_by_line)
        specials = sum(map(len, special_wrap(tokenizer)))  # [CLS] and [SEP] for BERT
        summary: dict[str, Any] = {
            "train texts": f"{len(train_texts.texts)} ({train_texts.kind})",
            "train tokens": sum(len(d) for d in train_docs),
            "sequences": f"{len(train)} ({'one text each' if config.line_by_line else 'full blocks'})",
            "max_length": max_length,
            "masking": _masking_text(config),
            **_tokenizer_stats(tokenizer, train_texts.texts, train_docs, config.train_tokenizer),
        }
        if cut:
            summary["texts cut to max_length"] = cut
        eval_set, gold, shown, vocabulary = None, None, [], []
        if config.eval:
            held = read_texts(config.eval, config.text_column, config.line_by_line).texts
        if held is not None:
            eval_docs = tokenize(tokenizer, held)
            inputs, labels = eval_masking(tokenizer, eval_docs, max_length, config.line_by_line, masking)
            masked = sum(label != IGNORE for row in labels for label in row)
            if not masked:
                where = config.eval or f"{config.train} (--eval-split)"
                raise UserError(f"{where}: too little text: the eval masking chose no token")
            eval_set, gold = Encoded(inputs), labels
            vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
            shown = examples.pick(inputs, labels, vocabulary, tokenizer.mask_token, IGNORE)
            summary["eval sequences"] = f"{len(inputs)} ({masked} masked tokens, fixed)"
            if config.eval_split:
                summary["eval texts"] = split_note(config.eval_split, config.seed, len(held), "plain")
            summary["eval unknown-token rate"] = _unknown_rate(tokenizer, eval_docs)
        messages = [*_head_message(config), *data_check_lines(summary)]
        return PreparedData(
            train=Encoded(train),
            eval=eval_set,
            eval_gold=gold,
            label_names=None,
            columns={"text": config.text_column},
            lengths=[len(d) + specials for d in train_docs],
            max_length=max_length,
            summary=summary,
            settings={
                "masking": masking,
                "padding_side": tokenizer.padding_side,
                "mask_token": tokenizer.mask_token,
                "vocab_size": len(tokenizer),
                "pad_token_id": tokenizer.pad_token_id,
                # The report's fill-mask examples: where they are, and the tokens to show them.
                "examples": shown,
                "vocabulary": vocabulary if shown else [],  # (the whole one: any id may be a guess)
            },
            messages=messages,
        )

    def model_config(self, data: PreparedData) -> dict[str, Any]:
        """The vocabulary the tokenizer has (a trained one differs from the config's)."""
        return {"vocab_size": data.settings["vocab_size"], "pad_token_id": data.settings["pad_token_id"]}

    def training_features(
        self, data: PreparedData, indices: Sequence[int], epoch: int, seed: int
    ) -> tuple[Encoded, Sequence[int]]:
        """The batch's sequences with this epoch's masks (seeded by seed, epoch, feature index)."""
        masking: Masking = data.settings["masking"]
        inputs, labels = mask_features(masking, data.train.input_ids, indices, (seed, TRAIN_STREAM, epoch))
        return Encoded(inputs, None, {"labels": labels}), range(len(indices))

    def loss_units(self, data: PreparedData, indices: Sequence[int], epoch: int, seed: int) -> int:
        """The masked tokens: this epoch's masks are drawn again for the count (host work, small
        beside a forward pass), as `training_features` draws them for the batch."""
        features, _ = self.training_features(data, indices, epoch, seed)
        return sum(sum(1 for label in row if label != IGNORE) for row in features.targets["labels"])

    def loss(self, logits: Outputs, targets: Outputs, pad: torch.Tensor | None) -> torch.Tensor:
        """Cross-entropy over the masked tokens (every other position is IGNORE)."""
        return token_loss(logits["logits"], targets["labels"])

    def forward_loss(self, model: torch.nn.Module, inputs: dict[str, Any], targets: Outputs) -> torch.Tensor:
        """On a CPU, the head runs on the masked positions only: its decoder ([hidden x vocab], 11.7M
        multiply-adds a token for MiniLM) costs about as much as the whole encoder, and 85% of its
        output would be thrown away. The loss is the same. On a GPU the full matmul is cheap and a
        boolean gather would make the host wait for the device, so the logits stay whole."""
        labels = targets["labels"]
        if labels.device.type != "cpu":
            return super().forward_loss(model, inputs, targets)
        chosen = labels != IGNORE
        handle = _encoder(model).register_forward_hook(lambda _m, _a, out: _keep_positions(out, chosen))
        try:
            logits = model(**inputs).logits  # [1, masked, vocab]
        finally:
            handle.remove()
        return token_loss(logits[0], labels[chosen])

    def reduce_outputs(self, data: PreparedData) -> Reduce | None:
        assert data.eval_gold is not None
        return masked_sums(data.eval_gold, data.settings["padding_side"] == "left")

    def decoding(self, config: TrainConfig, data: PreparedData) -> dict[str, Any]:
        """What `evaluate` on a text file and fill-mask read back from encoderkit.json."""
        return {
            "mask_token": data.settings["mask_token"],
            "mlm_probability": config.mlm_probability,
            "whole_word_mask": config.whole_word_mask,
            "line_by_line": config.line_by_line,
        }

    def evaluate(self, outputs: Outputs, data: PreparedData, decoding: dict[str, Any]) -> Evaluation:
        shown = data.settings.get("examples") or []
        if not shown:
            return Evaluation(scores(outputs))
        vocabulary = data.settings["vocabulary"]
        rows = examples.guesses(shown, outputs["top_ids"], outputs["top_probs"], vocabulary)
        return Evaluation(scores(outputs), extra={"fill_mask_examples": rows})

    def tuned(self, decoding: dict[str, Any], final: Evaluation | None) -> dict[str, Any]:
        return {}

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in data.summary.items()
        )
        sections = [("Masking and tokenizer", f"<table id='mlm-data'>{rows}</table>")]
        if final is not None and final.extra.get("fill_mask_examples"):
            table = examples.table(final.extra["fill_mask_examples"])
            sections.append(("Fill-mask examples (eval text, final evaluation)", table))
        return sections

    def labels_text(self, label_names: list[str] | None) -> str:
        return "A masked-language model: no labels; it predicts the token under each mask token."

    # Inference: fill-mask, and scoring a text file --------------------------------------------

    def check_rows(self, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        fill_mask.check_rows(check_fields(rows, self.name, fill_mask.ROW_FIELDS), str(meta["mask_token"]))

    def predict_rows(self, rows: list[dict[str, Any]], model: LoadedModel) -> list[dict[str, Any]]:
        rows = check_fields(rows, self.name, fill_mask.ROW_FIELDS)
        outputs = fill_mask.fill_masks(
            model.model, model.tokenizer, rows, int(model.meta["max_length"]), model.device
        )
        return with_ids(rows, outputs)

    def predict_file(
        self, source: str, flags: dict[str, str | None], model: LoadedModel
    ) -> list[dict[str, Any]]:
        """Fill-mask on each line (or text value) of `source`; errors name its file:line."""
        wheres, texts = zip(*located_texts(source, flags.get("text")), strict=True)
        rows = [{"text": t} for t in texts]
        max_length = int(model.meta["max_length"])
        outputs = fill_mask.fill_masks(
            model.model, model.tokenizer, rows, max_length, model.device, list(wheres)
        )
        return with_ids(rows, outputs)

    def evaluate_file(self, source: str, flags: dict[str, str | None], model: LoadedModel) -> dict[str, Any]:
        """Loss, perplexity and accuracy on `source` masked the way evaluation masks (EVAL_SEED)."""
        meta, tokenizer = model.meta, model.tokenizer
        line_by_line = bool(meta.get("line_by_line"))
        docs = tokenize(tokenizer, read_texts(source, flags.get("text"), line_by_line).texts)
        masking = masking_for(
            tokenizer, float(meta.get("mlm_probability", 0.15)), bool(meta.get("whole_word_mask"))
        )
        inputs, labels = eval_masking(tokenizer, docs, int(meta["max_length"]), line_by_line, masking)
        outputs = model.outputs(Encoded(inputs), masked_sums(labels, tokenizer.padding_side == "left"))
        return {**scores(outputs), "examples": len(inputs)}

    def info(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"mask_token": meta.get("mask_token"), "form": "fill-mask"}


def sequences(
    tokenizer: Any, docs: list[list[int]], max_length: int, line_by_line: bool
) -> tuple[list[list[int]], int]:
    """Training or eval sequences of at most `max_length` tokens, specials included; (sequences,
    texts cut: line-by-line only, blocks cut nothing)."""
    before, after = special_wrap(tokenizer)
    content = max_length - len(before) - len(after)

    def wrap(piece: list[int]) -> list[int]:
        return [*before, *piece, *after]

    if line_by_line:
        return lines(docs, content, wrap)
    return blocks(docs, content, wrap, int(tokenizer.sep_token_id)), 0


def eval_masking(
    tokenizer: Any, docs: list[list[int]], max_length: int, line_by_line: bool, masking: Masking
) -> tuple[list[list[int]], list[list[int]]]:
    """(inputs, labels) of the eval sequences of `docs`, masked the one fixed way (EVAL_SEED): the
    same positions at every evaluation, in `evaluate`, and for any model scored on this text."""
    ids, _ = sequences(tokenizer, docs, max_length, line_by_line)
    return mask_features(masking, ids, range(len(ids)), (EVAL_SEED, EVAL_STREAM))


def special_wrap(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single text ([CLS], [SEP] for
    BERT; <s>, </s> for RoBERTa), read off its own output for a one-word text."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    start = next(i for i in range(len(full) - len(plain) + 1) if full[i : i + len(plain)] == plain)
    return full[:start], full[start + len(plain) :]


def masked_sums(labels: list[list[int]], pad_left: bool) -> Reduce:
    """Per eval sequence: the summed loss, the masked-token count and the correct predictions,
    instead of its [L, vocab] logits."""

    def reduce(indices: Sequence[int], out: Any) -> Outputs:
        logits = out["logits"]  # a ModelOutput, or the dict a packed forward gives
        target = per_token([labels[i] for i in indices], logits.shape[1], pad_left).to(logits.device)
        losses = F.cross_entropy(
            logits.flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE, reduction="none"
        ).view(target.shape)
        counted = target != IGNORE
        correct = (logits.argmax(-1) == target) & counted
        # The top guesses at each sequence's first masked position (the report's examples).
        first = counted.int().argmax(1)
        at_first = logits[torch.arange(len(indices), device=logits.device), first].float()
        top = torch.softmax(at_first, -1).topk(min(examples.TOP_K, at_first.shape[-1]), dim=-1)
        return {
            "loss_sum": losses.sum(1).cpu(),
            "masked": counted.sum(1).float().cpu(),
            "correct": correct.sum(1).float().cpu(),
            "top_ids": top.indices.cpu(),
            "top_probs": top.values.cpu(),
        }

    return reduce


def _encoder(model: torch.nn.Module) -> torch.nn.Module:
    """The encoder inside a transformers masked LM (`bert`, `roberta`, ...), PEFT-wrapped or not."""
    unwrap: Any = getattr(model, "get_base_model", None)
    inner: Any = unwrap() if unwrap is not None else model
    encoder: torch.nn.Module = inner.base_model
    return encoder


def _keep_positions(output: Any, chosen: torch.Tensor) -> Any:
    """The encoder's output with its hidden states cut to the `chosen` positions, as one [1, M, H]
    row: every MLM head reads `output[0]` and works per position."""
    hidden = output[0][chosen].unsqueeze(0)
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    output["last_hidden_state"] = hidden
    return output


def scores(outputs: Outputs) -> dict[str, float]:
    """Loss (mean over masked tokens), its perplexity, and masked-token accuracy."""
    count = float(outputs["masked"].sum())
    loss = float(outputs["loss_sum"].sum()) / count
    return {
        "perplexity": math.exp(min(loss, 700.0)),  # exp overflows past ~709
        "loss": loss,
        "accuracy": float(outputs["correct"].sum()) / count,
        "masked_tokens": count,
    }


def tokenize(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text without special tokens: `sequences` adds them per sequence."""
    ids: list[list[int]] = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)[
        "input_ids"
    ]
    return ids


def _masking_text(config: TrainConfig) -> str:
    words = "whole words" if config.whole_word_mask else "tokens"
    return f"{config.mlm_probability:g} of {words} (80% mask, 10% random, 10% kept), new every epoch"


def _tokenizer_stats(
    tokenizer: Any, texts: list[str], docs: list[list[int]], trained: bool
) -> dict[str, Any]:
    words = sum(len(t.split()) for t in texts)
    return {
        "tokenizer": f"{len(tokenizer):,} tokens" + (" (trained on the training text)" if trained else ""),
        "tokens per word": f"{sum(len(d) for d in docs) / max(words, 1):.2f}",
        "unknown-token rate": _unknown_rate(tokenizer, docs),
    }


def _unknown_rate(tokenizer: Any, docs: list[list[int]]) -> str:
    total = sum(len(d) for d in docs)
    unknown = sum(np.count_nonzero(np.asarray(d) == tokenizer.unk_token_id) for d in docs if d)
    return f"{100 * unknown / max(total, 1):.2f}%"


def _head_message(config: TrainConfig) -> list[str]:
    """Say when the checkpoint has no masked-LM head (a sentence-embedding model such as minilm):
    the head is created, its decoder tied to the input embeddings, its transform layer new."""
    if config.strategy == "scratch":
        return []
    weights = Path(resolve_model(config.model)) / "model.safetensors"
    if not weights.is_file():
        return []  # a Hub id: its files are not here to look at before loading
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            keys = list(f.keys())
    except Exception:  # damaged: loading the model says so, naming the file
        return []
    if any(k.startswith(HEAD_PREFIXES) or ".predictions." in k for k in keys):
        return []
    return [
        f"masked-LM head: new ({config.model} has none saved): its decoder is tied to the input "
        "embeddings, its transform layer and bias start random"
    ]
