"""Token classification (NER, POS, chunking) as a Task: CoNLL/JSONL words -> windows -> one tag per word.

The pure parts are elsewhere: `data.conll` (reading), `tasks.tag_schemes` (IOB1/IOB2/BIOES ->
IOB2, repairs, entity spans) and `tasks.token_features` (sub-token windows, best-window
decoding). Entity-level metrics are seqeval's strict IOB2 mode (the CoNLL way); tag sets without
entities (POS) get token accuracy and macro F1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field
from transformers import AutoModelForTokenClassification

from encoderkit.config import TrainConfig
from encoderkit.data.conll import Sentence, read_sentences
from encoderkit.data.split import holdout, split_note
from encoderkit.errors import UserError
from encoderkit.features.collate import IGNORE
from encoderkit.model_folder.card import CardText
from encoderkit.reporting.markdown import md_table
from encoderkit.tasks.base import (
    Evaluation,
    LoadedModel,
    Outputs,
    PreparedData,
    Registered,
    data_check_lines,
    label_maps,
)
from encoderkit.tasks.losses import token_loss
from encoderkit.tasks.rows import check_rows, with_ids
from encoderkit.tasks.schemas import Id, Strict, id_field, request_of
from encoderkit.tasks.tag_schemes import PLAIN, detect_scheme, entities, to_iob2
from encoderkit.tasks.token_features import (
    AGGREGATIONS,
    TokenFeatures,
    build_windows,
    word_predictions,
    words_tokenizer,
    words_without_tokens,
)
from encoderkit.tasks.token_report import confusion_table, entity_confusion, examples_list, types_table

ROW_FIELDS = ("text", "tokens", "aggregation")
# Raw text -> words with their character offsets: runs of word characters, and each other
# non-space character alone (punctuation is a token of its own in CoNLL data).
WORD = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


class TokenInput(Strict):
    id: Id = id_field()
    text: str | None = Field(None, description="raw text: split into words, entities come back")
    tokens: list[str] | None = Field(None, description="pre-split words: one tag per word comes back")
    aggregation: Literal["first", "max", "average"] = Field(
        "first", description="a word's tag from its first sub-token, the most confident one, or their mean"
    )


TokenRequest = request_of("TokenRequest", TokenInput)


class Entity(BaseModel):
    type: str
    text: str = Field(description="input[start:end]")
    start: int = Field(description="character offset (raw text input), or word index (tokens input)")
    end: int
    score: float = Field(description="mean probability of the entity's word tags")


class TokenOutput(BaseModel):
    id: Id = None
    tokens: list[str]
    tags: list[str]
    entities: list[Entity]


class TokenResponse(BaseModel):
    task: str
    predictions: list[TokenOutput]


@dataclass
class TokenEvalSet:
    sentences: list[Sentence]  # tags in IOB2
    features: TokenFeatures


class TokenClassificationTask(Registered):
    """One tag per word; long sentences in overlapping windows, every word predicted once."""

    model_class = AutoModelForTokenClassification
    target_keys = ("labels",)
    prepare_fields = (
        "task", "train", "eval", "eval_split", "text_column", "label_column", "max_length", "doc_stride",
        "label_all_subtokens", "labels", "model",
    )  # fmt: skip
    card = CardText(
        pipeline_tag="token-classification",
        auto_class="AutoModelForTokenClassification",
        phrase="token classification (one tag per word)",
        example_call='inputs = tokenizer(["Ada", "lives", "in", "London"], is_split_into_words=True, '
        'return_tensors="pt")',
    )
    request_body = TokenRequest
    response_body = TokenResponse

    # Training --------------------------------------------------------------------------------

    def tokenizer_for(self, config: TrainConfig, tokenizer: Any) -> Any:
        return words_tokenizer(tokenizer)

    def prepare(self, config: TrainConfig, tokenizer: Any, model_limit: int) -> PreparedData:
        """Read, convert and window the data; the data check goes into the summary and messages."""
        assert config.train is not None  # validated by the config
        train = read_sentences(config.train, config.text_column, config.label_column, need_tags=True)
        integer_names = _integer_tag_names(config) if _integer_tags(train) else None
        train = _named(train, integer_names, "--labels")
        scheme = detect_scheme([s.tags or [] for s in train])
        train, repaired = _as_iob2(train, scheme)
        label_names = sorted({t for s in train for t in s.tags or []}, key=_tag_order)
        held = holdout(train, config.eval_split, config.seed) if config.eval_split else None
        if held is not None:  # after the IOB2 repair, with the tags of the whole file
            train, evals = held
        index = {name: i for i, name in enumerate(label_names)}
        max_length = 128 if config.max_length == "auto" else int(config.max_length)
        max_length = min(max_length, model_limit)
        window: dict[str, Any] = dict(
            max_length=max_length, stride=config.doc_stride, label_all=config.label_all_subtokens
        )
        features = build_windows(tokenizer, [s.tokens for s in train], _ids(train, index), **window)
        summary: dict[str, Any] = {
            "train sentences": len(train),
            "train tokens": sum(len(s.tokens) for s in train),
            "tag scheme": f"{scheme}" + (" (converted to IOB2)" if scheme not in ("IOB2", PLAIN) else ""),
            "tags": ", ".join(label_names),
            "tags repaired (I- starting an entity)": repaired,
            "windowed sentences (longer than max_length)": _windowed(features),
            "words with no sub-token (predicted O)": words_without_tokens(
                features, [len(s.tokens) for s in train]
            ),
            "max_length, doc_stride": (max_length, config.doc_stride),
        }
        eval_set = None
        if config.eval:
            evals = read_sentences(config.eval, config.text_column, config.label_column, need_tags=True)
            evals = _named(evals, integer_names, "--labels")
            evals, _ = _as_iob2(evals, detect_scheme([s.tags or [] for s in evals]))
        if config.eval or held is not None:
            _check_known(evals, index)
            eval_features = build_windows(tokenizer, [s.tokens for s in evals], _ids(evals, index), **window)
            eval_set = TokenEvalSet(evals, eval_features)
            summary["eval sentences"] = (
                split_note(share, config.seed, len(evals), "plain")
                if (share := config.eval_split)
                else len(evals)
            )
            summary["eval windowed sentences"] = _windowed(eval_features)
        return PreparedData(
            train=features.encoded(),
            eval=eval_set.features.encoded() if eval_set else None,
            eval_gold=eval_set,
            label_names=label_names,
            columns={"text": config.text_column, "label": config.label_column},
            lengths=[len(ids) for ids in features.input_ids],
            max_length=max_length,
            summary=summary,
            settings={
                "padding_side": tokenizer.padding_side,
                "scheme": scheme,
                "integer_tags": integer_names,
            },
            messages=data_check_lines(summary),
        )

    def model_config(self, data: PreparedData) -> dict[str, Any]:
        names = data.label_names or []
        return label_maps(names)

    def loss_units(self, data: PreparedData, indices: Sequence[int], epoch: int, seed: int) -> int:
        labels = data.train.targets["labels"]
        return sum(sum(1 for label in labels[i] if label != IGNORE) for i in indices)

    def loss(self, logits: Outputs, targets: Outputs, pad: torch.Tensor | None) -> torch.Tensor:
        """Cross-entropy over the labelled sub-tokens only (IGNORE: pads, specials, continuations)."""
        return token_loss(logits["logits"], targets["labels"])

    def decoding(self, config: TrainConfig, data: PreparedData) -> dict[str, Any]:
        return {
            "doc_stride": config.doc_stride,
            "entities": any(n != "O" and n[:2] in ("B-", "I-") for n in data.label_names or []),
            **data.settings,
        }

    def evaluate(self, outputs: Outputs, data: PreparedData, decoding: dict[str, Any]) -> Evaluation:
        eval_set: TokenEvalSet = data.eval_gold
        names = data.label_names or []
        predicted = decode(eval_set.features, outputs["logits"], eval_set.sentences, names, decoding)
        gold = [s.tags or [] for s in eval_set.sentences]
        tags = [[t for t, _ in sentence] for sentence in predicted]
        metrics = score(gold, tags, entity_tags=bool(decoding["entities"]))
        return Evaluation(metrics, extra={"predicted": tags})

    def tuned(self, decoding: dict[str, Any], final: Evaluation | None) -> dict[str, Any]:
        return {}

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]:
        if final is None or not data.eval_gold or "predicted" not in final.extra:
            return []
        eval_set: TokenEvalSet = data.eval_gold
        gold = [s.tags or [] for s in eval_set.sentences]
        predicted = final.extra["predicted"]
        sections = [
            ("Examples (eval set)", examples_list([s.tokens for s in eval_set.sentences], gold, predicted))
        ]
        if not any(k.startswith("f1_") for k in final.metrics):
            return sections  # plain tags (POS): no entities to count
        return [
            ("Entities by type (eval set)", types_table(final.metrics)),
            ("Entity confusion (eval set: exact spans)", confusion_table(entity_confusion(gold, predicted))),
            *sections,
        ]

    def labels_text(self, label_names: list[str] | None) -> str:
        return md_table(("id", "tag"), [(str(i), name) for i, name in enumerate(label_names or [])])

    # Inference -------------------------------------------------------------------------------

    def check_rows(self, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        inputs(check_rows(rows, self.name, ROW_FIELDS))

    def predict_rows(self, rows: list[dict[str, Any]], model: LoadedModel) -> list[dict[str, Any]]:
        words = inputs(check_rows(rows, self.name, ROW_FIELDS))
        return with_ids(
            rows, [_row(w, tagged) for w, tagged in zip(words, tag_words(words, model), strict=True)]
        )

    def predict_file(
        self, source: str, flags: dict[str, str | None], model: LoadedModel
    ) -> list[dict[str, Any]]:
        sentences = read_sentences(source, flags.get("text"), flags.get("label"), need_tags=False)
        words = [Words(s.tokens, None, None, flags.get("aggregation") or "first") for s in sentences]
        return [_row(w, tagged) for w, tagged in zip(words, tag_words(words, model), strict=True)]

    def evaluate_file(self, source: str, flags: dict[str, str | None], model: LoadedModel) -> dict[str, Any]:
        sentences = read_sentences(source, flags.get("text"), flags.get("label"), need_tags=True)
        sentences = _named(sentences, model.meta.get("integer_tags"), "the model's integer tags")
        sentences, _ = _as_iob2(sentences, detect_scheme([s.tags or [] for s in sentences]))
        _check_known(sentences, {n: i for i, n in enumerate(model.meta.get("label_names") or [])})
        predicted = tag_words([Words(s.tokens, None, None) for s in sentences], model)
        tags = [[t for t, _ in p] for p in predicted]
        metrics = score([s.tags or [] for s in sentences], tags, entity_tags=bool(model.meta.get("entities")))
        return {**metrics, "examples": len(sentences)}

    def info(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"entities": bool(meta.get("entities"))}

    def text_lengths(self, tokenizer: Any, source: str, flags: dict[str, str | None]) -> list[int]:
        """Sub-tokens per sentence, uncut: the longer ones train and predict in windows."""
        sentences = read_sentences(source, flags.get("text"), flags.get("label"), need_tags=False)
        enc = words_tokenizer(tokenizer)([s.tokens for s in sentences], is_split_into_words=True)
        return [len(ids) for ids in enc["input_ids"]]


@dataclass(frozen=True)
class Words:
    """A prediction input: words, and for raw text the text and each word's character offsets."""

    tokens: list[str]
    text: str | None
    offsets: list[tuple[int, int]] | None
    aggregation: str = "first"  # token_features.word_predictions


def inputs(rows: list[dict[str, Any]]) -> list[Words]:
    """Each row's words: `tokens` as given, or `text` split into words with character offsets."""
    out = []
    for i, row in enumerate(rows):
        where = f"inputs[{i}]"
        text, tokens = row.get("text"), row.get("tokens")
        aggregation = row.get("aggregation", "first")
        if aggregation not in AGGREGATIONS:
            raise UserError(
                f"{where}.aggregation: expected one of {', '.join(AGGREGATIONS)}, got {aggregation!r}"
            )
        if (text is None) == (tokens is None):
            raise UserError(f"{where}: give exactly one of 'text' (raw text) or 'tokens' (pre-split words)")
        if tokens is not None:
            if (
                not isinstance(tokens, list)
                or not tokens
                or not all(isinstance(t, str) and t for t in tokens)
            ):
                raise UserError(f"{where}.tokens: expected a non-empty list of non-empty strings")
            out.append(Words(list(tokens), None, None, aggregation))
            continue
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}.text: expected a non-empty string")
        matches = list(WORD.finditer(text))
        spans = [(m.start(), m.end()) for m in matches]
        out.append(Words([m.group() for m in matches], text, spans, aggregation))
    return out


def tag_words(words: list[Words], model: LoadedModel) -> list[list[tuple[str, float]]]:
    """(tag, probability) per word of each input, with the saved window settings and each input's
    aggregation."""
    meta = model.meta
    features = build_windows(
        model.tokenizer, [w.tokens for w in words], None, int(meta["max_length"]), int(meta["doc_stride"])
    )
    logits = model.outputs(features.encoded())["logits"]
    decoding = {**meta, "padding_side": model.tokenizer.padding_side}
    return decode(
        features, logits, words, list(meta["label_names"]), decoding, [w.aggregation for w in words]
    )


def decode(
    features: TokenFeatures,
    logits: torch.Tensor,
    sentences: Any,
    names: list[str],
    decoding: dict[str, Any],
    aggregations: list[str] | None = None,
) -> list[list[tuple[str, float]]]:
    """The one token-classification decoder: best-window tag per word (`aggregations`: how each
    sentence reads a word of several sub-tokens; default its first), repaired to valid IOB2."""
    lengths = [len(s.tokens) for s in sentences]
    pad_left = decoding.get("padding_side") == "left"
    out = []
    for sentence in word_predictions(features, logits, lengths, pad_left, aggregations):
        tags = [names[label] if label >= 0 else "O" for label, _ in sentence]
        if decoding.get("entities"):
            tags, _ = to_iob2(tags, "IOB2")  # a predicted I- after O starts an entity, as seqeval reads it
        out.append([(t, p) for t, (_, p) in zip(tags, sentence, strict=True)])
    return out


def score(gold: list[list[str]], predicted: list[list[str]], entity_tags: bool) -> dict[str, float]:
    """Entity-level precision/recall/F1 (seqeval, strict IOB2), per type too, and token accuracy;
    for tag sets without entities, accuracy and macro F1 over the tags."""
    flat_gold = [t for s in gold for t in s]
    flat_pred = [t for s in predicted for t in s]
    accuracy = float(np.mean([g == p for g, p in zip(flat_gold, flat_pred, strict=True)]))
    if not entity_tags:
        from sklearn.metrics import f1_score

        return {
            "accuracy": accuracy,
            "f1": float(f1_score(flat_gold, flat_pred, average="macro", zero_division=0)),
        }
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(
        gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    micro = report["micro avg"]
    metrics = {
        "precision": micro["precision"],
        "recall": micro["recall"],
        "f1": micro["f1-score"],
        "accuracy": accuracy,
    }
    for kind, values in report.items():
        if not kind.endswith(" avg"):
            metrics.update(
                {
                    f"{m}_{kind}": values[key]
                    for m, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"))
                }
            )
    return {k: float(v) for k, v in metrics.items()}


def _row(words: Words, tagged: list[tuple[str, float]]) -> dict[str, Any]:
    tags = [t for t, _ in tagged]
    found = []
    for kind, first, end in entities(tags):
        score = round(float(np.mean([p for _, p in tagged[first:end]])), 4)
        if words.text is not None and words.offsets is not None:
            start, stop = words.offsets[first][0], words.offsets[end - 1][1]
            found.append(
                {"type": kind, "text": words.text[start:stop], "start": start, "end": stop, "score": score}
            )
        else:
            text = " ".join(words.tokens[first:end])
            found.append({"type": kind, "text": text, "start": first, "end": end, "score": score})
    return {"tokens": words.tokens, "tags": tags, "entities": found}


def _integer_tags(sentences: list[Sentence]) -> bool:
    """Tags given as ids (JSONL `ner_tags` of a Hub export): every tag a number."""
    return all(t.isdigit() for s in sentences for t in s.tags or [])


def _integer_tag_names(config: TrainConfig) -> list[str]:
    """The names of integer tags: --labels, else the model's own id2label (a fine-tuned NER model)."""
    if config.labels:
        return [name.strip() for name in config.labels.split(",")]
    from encoderkit.modeling import load_config

    id2label = getattr(load_config(config.model), "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label)]
    if not names or all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        raise UserError(
            "field 'labels': the tags are integers and the model names none; give their names in id "
            "order, e.g. --labels O,B-PER,I-PER"
        )
    return names


def _named(sentences: list[Sentence], names: list[str] | None, source: str) -> list[Sentence]:
    """Integer tags replaced by their names; string tags as they are."""
    if names is None or not _integer_tags(sentences):
        return sentences
    out = []
    for s in sentences:
        for tag in s.tags or []:
            if int(tag) >= len(names):
                raise UserError(f"{s.where}: tag id {tag} has no name ({source} names {len(names)})")
        out.append(Sentence(s.tokens, [names[int(t)] for t in s.tags or []], s.where))
    return out


def _as_iob2(sentences: list[Sentence], scheme: str) -> tuple[list[Sentence], int]:
    out, repaired = [], 0
    for s in sentences:
        tags, fixed = to_iob2(s.tags or [], scheme)
        repaired += fixed
        out.append(Sentence(s.tokens, tags, s.where))
    return out, repaired


def _tag_order(tag: str) -> tuple[int, str, str]:
    """`O` first, then by entity type, B before I: a readable label table."""
    prefix, _, kind = tag.partition("-")
    return (0, "", "") if tag == "O" else (1, kind or prefix, prefix)


def _ids(sentences: list[Sentence], index: dict[str, int]) -> list[list[int]]:
    return [[index[t] for t in s.tags or []] for s in sentences]


def _check_known(sentences: list[Sentence], index: dict[str, int]) -> None:
    for s in sentences:
        for tag in s.tags or []:
            if tag not in index:
                raise UserError(
                    f"{s.where}: tag {tag!r} never appears in the training data (tags: {', '.join(index)})"
                )


def _windowed(features: TokenFeatures) -> int:
    """Sentences cut into more than one window."""
    counts: dict[int, int] = {}
    for s in features.sentence:
        counts[s] = counts.get(s, 0) + 1
    return sum(1 for n in counts.values() if n > 1)
