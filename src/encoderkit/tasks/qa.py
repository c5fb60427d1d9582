"""Extractive question answering as a Task: SQuAD-format data -> windows -> spans -> official scores.

The hard parts are pure functions elsewhere: `data.squad` (reading, answer repair),
`tasks.qa_features` (windows, labels), `tasks.qa_postprocess` (n-best spans, null score) and
`evaluation.squad_metrics` (official EM/F1). This module wires them to training and evaluation.
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForQuestionAnswering

from encoderkit.config import TrainConfig
from encoderkit.data.qa_types import QAExample
from encoderkit.data.split import holdout, split_note
from encoderkit.data.squad import check_answers, gold_answers, read_squad_file
from encoderkit.errors import UserError
from encoderkit.evaluation.squad_metrics import exact_match, score
from encoderkit.features.encoded import Encoded
from encoderkit.model_folder.card import CardText
from encoderkit.tasks.base import Evaluation, LoadedModel, Outputs, PreparedData, Registered, data_check_lines
from encoderkit.tasks.qa_features import QAFeatures, build_features, feature_stats
from encoderkit.tasks.qa_postprocess import QAPrediction, decode_predictions, null_margins
from encoderkit.tasks.qa_serving import QARequest, QAResponse, qa_examples, qa_row
from encoderkit.tasks.rows import check_rows, with_ids

QA_WINDOW = 384  # `--max-length auto` for QA: the standard SQuAD window


@dataclass
class QAEvalSet:
    """What evaluating QA needs besides the model outputs."""

    examples: list[QAExample]
    features: QAFeatures
    gold: dict[str, list[str]]
    metric: str  # squad | squad_v2 | korquad


def read_qa_examples(source: str) -> list[QAExample]:
    """SQuAD JSON / JSONL files, or a Hub dataset with id/question/context/answers columns."""
    if Path(source).exists() or source.lower().split(":")[0].endswith((".json", ".jsonl", ".gz")):
        return read_squad_file(source)
    from encoderkit.data.tables import read_hub_table

    table = read_hub_table(source)
    examples = []
    for i, row in enumerate(table.rows):
        answers = row.get("answers") or {"text": [], "answer_start": []}
        examples.append(
            QAExample(
                id=str(row.get("id", i)),
                question=str(row["question"]),
                context=str(row["context"]),
                answer_texts=list(answers["text"]),
                answer_starts=[int(s) for s in answers["answer_start"]],
                title=str(row.get("title", "")),
            )
        )
    return examples


def encode(tokenizer: Any, features: QAFeatures) -> Encoded:
    targets: dict[str, list] = {}
    if features.start_positions is not None and features.end_positions is not None:
        targets = {"start_positions": features.start_positions, "end_positions": features.end_positions}
    return Encoded(
        features.input_ids,
        features.token_type_ids,
        targets,
        position_keys=("start_positions", "end_positions"),
    )


def choose_metric(requested: str, examples: list[QAExample]) -> str:
    """`auto`: squad_v2 when any question is unanswerable, else squad (v1.1)."""
    if requested != "auto":
        return requested
    return "squad_v2" if any(e.is_impossible for e in examples) else "squad"


class QATask(Registered):
    """Extractive QA: SQuAD v1.1 / v2.0 and KorQuAD, official metrics, long contexts in windows."""

    model_class = AutoModelForQuestionAnswering
    target_keys = ("start_positions", "end_positions")
    prepare_fields = (
        "task", "train", "eval", "eval_split", "max_length", "doc_stride", "max_query_length", "qa_metric",
    )  # fmt: skip
    card = CardText(
        pipeline_tag="question-answering",
        auto_class="AutoModelForQuestionAnswering",
        phrase="extractive question answering",
        example_call='inputs = tokenizer("Who wrote it?", "It was written by Ada.", return_tensors="pt")',
    )
    request_body = QARequest
    response_body = QAResponse

    # Training --------------------------------------------------------------------------------

    def prepare(self, config: TrainConfig, tokenizer: Any, model_limit: int) -> PreparedData:
        """Read, repair and window the data; the data check goes into the summary and messages."""
        assert config.train is not None  # validated by the config
        max_length = QA_WINDOW if config.max_length == "auto" else int(config.max_length)
        max_length = min(max_length, model_limit)
        raw = read_qa_examples(config.train)
        held = None
        if config.eval_split:  # by paragraph: no eval question reads a context trained on
            raw, held = holdout(raw, config.eval_split, config.seed, groups=[e.context for e in raw])
        train_metric = choose_metric(config.qa_metric, raw)
        check = check_answers(raw)
        if not check.examples:
            raise UserError(f"{config.train}: no usable training questions after the answer check")
        window: dict[str, Any] = dict(
            max_length=max_length, doc_stride=config.doc_stride, max_query_length=config.max_query_length
        )
        train_features = build_features(tokenizer, check.examples, with_labels=True, **window)
        stats = feature_stats(check.examples, train_features)
        summary: dict[str, Any] = {
            "train questions": len(raw),
            "answers repaired (answer_start off)": check.repaired,
            "answers skipped (text not in context)": check.skipped,
            "train windows": stats.features,
            "windows per question (mean)": round(stats.windows_per_example_mean, 2),
            "windows per question (max)": stats.windows_per_example_max,
            "no-answer windows": f"{100 * stats.no_answer_windows_share:.1f}%",
            "answers lost to truncation": stats.answers_lost_to_truncation,
            "window (max_length, doc_stride, max_query_length)": (
                max_length,
                config.doc_stride,
                config.max_query_length,
            ),
        }
        warnings = [f"data check: {m}" for m in check.messages[:20]]
        if len(check.messages) > 20:
            warnings.append(f"data check: {len(check.messages) - 20} more answers skipped")
        eval_encoded, eval_set = None, None
        if config.eval or held is not None:
            source = config.eval or f"{config.train} (--eval-split)"
            evals = read_qa_examples(config.eval) if config.eval else held or []
            eval_set = _eval_set(source, evals, raw, config.qa_metric, tokenizer, window)
            eval_encoded = encode(tokenizer, eval_set.features)
            summary["eval questions"] = len(eval_set.examples)
            if config.eval_split:
                how = "whole paragraphs"
                summary["eval questions"] = split_note(config.eval_split, config.seed, len(evals), how)
            summary["eval windows"] = len(eval_set.features.input_ids)
            summary["metric"] = eval_set.metric
        return PreparedData(
            train=encode(tokenizer, train_features),
            eval=eval_encoded,
            eval_gold=eval_set,
            label_names=None,
            columns={"question": "question", "context": "context", "answers": "answers"},
            lengths=[len(ids) for ids in train_features.input_ids],
            max_length=max_length,
            summary=summary,
            warnings=warnings,
            settings={"padding_side": tokenizer.padding_side, "train_metric": train_metric},
            messages=data_check_lines(summary),
        )

    def model_config(self, data: PreparedData) -> dict[str, Any]:
        return {}

    def loss(self, logits: Outputs, targets: Outputs, pad: torch.Tensor | None) -> torch.Tensor:
        """Mean of the start and end cross-entropies over each sequence's own positions.

        Pads get -inf (a packed batch has them already): HF's QA loss takes the softmax over the
        padded positions too, so an example's loss would depend on the other examples' lengths.
        """
        start, end = logits["start_logits"], logits["end_logits"]
        if pad is not None:
            start, end = start.masked_fill(pad, float("-inf")), end.masked_fill(pad, float("-inf"))
        losses = F.cross_entropy(start.float(), targets["start_positions"])
        return (losses + F.cross_entropy(end.float(), targets["end_positions"])) / 2

    def decoding(self, config: TrainConfig, data: PreparedData) -> dict[str, Any]:
        """Windows and n-best settings a Predictor must reuse so served answers equal evaluated ones."""
        eval_set: QAEvalSet | None = data.eval_gold
        return {
            "doc_stride": config.doc_stride,
            "max_query_length": config.max_query_length,
            "n_best": config.n_best,
            "max_answer_length": config.max_answer_length,
            "padding_side": data.settings["padding_side"],
            "qa_metric": eval_set.metric if eval_set else data.settings["train_metric"],
        }

    def evaluate(self, outputs: Outputs, data: PreparedData, decoding: dict[str, Any]) -> Evaluation:
        eval_set: QAEvalSet = data.eval_gold
        predictions = decode(
            outputs, eval_set.examples, eval_set.features, {**decoding, "null_threshold": None}
        )
        return evaluate_predictions(predictions, eval_set)

    def tuned(self, decoding: dict[str, Any], final: Evaluation | None) -> dict[str, Any]:
        """The null threshold, tuned on the eval set for SQuAD v2; without one, 0.0 (the HF default)
        so a v2 model can still abstain; None for v1 models, which always answer."""
        if final is not None and final.extra.get("null_threshold") is not None:
            return {"null_threshold": float(final.extra["null_threshold"])}
        return {"null_threshold": 0.0 if decoding["qa_metric"] == "squad_v2" else None}

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]:
        if final is None or data.eval_gold is None:
            return []
        return [("Example answers (eval set)", examples_section(final.extra["predictions"], data.eval_gold))]

    def labels_text(self, label_names: list[str] | None) -> str:
        return "The model predicts the start and end of the answer span in the context."

    # Inference -------------------------------------------------------------------------------

    def check_rows(self, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        qa_examples(check_rows(rows, self.name, ("question", "context")))

    def predict_rows(self, rows: list[dict[str, Any]], model: LoadedModel) -> list[dict[str, Any]]:
        examples = qa_examples(check_rows(rows, self.name, ("question", "context")))
        return with_ids(rows, [qa_row(p) for p in answer(examples, model)])

    def predict_file(
        self, source: str, flags: dict[str, str | None], model: LoadedModel
    ) -> list[dict[str, Any]]:
        return [qa_row(p) for p in answer(read_qa_examples(source), model)]

    def evaluate_file(self, source: str, flags: dict[str, str | None], model: LoadedModel) -> dict[str, Any]:
        """Official scores with the saved windows, n-best settings and null threshold."""
        examples = read_qa_examples(source)
        metric = model.meta.get("qa_metric") or choose_metric("auto", examples)
        answers = {p.id: p.answer for p in answer(examples, model)}
        return {**score(metric, gold_answers(examples), answers), "examples": len(examples), "metric": metric}

    def info(self, meta: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "doc_stride",
            "max_query_length",
            "n_best",
            "max_answer_length",
            "null_threshold",
            "qa_metric",
        )
        return {"qa": {k: meta.get(k) for k in keys}}


def _eval_set(
    source: str, examples: list[QAExample], train: list[QAExample], requested: str, tokenizer: Any,
    window: dict[str, Any],
) -> QAEvalSet:  # fmt: skip
    """The eval questions of `source`, windowed, with the metric that scores them (checked
    before training)."""
    if all(e.is_impossible for e in examples) and not any(e.is_impossible for e in train):
        raise UserError(f"{source}: no question has a gold answer; scoring needs answers")
    features = build_features(tokenizer, examples, with_labels=False, **window)
    metric = choose_metric(requested, train + examples)
    unanswerable = next((e for e in examples if e.is_impossible), None)
    if metric != "squad_v2" and unanswerable is not None:
        # Checked here, not at the first evaluation after an epoch of training.
        raise UserError(
            f"{source}: question {unanswerable.id!r} has no answer, which the {metric} "
            "metric cannot score; use --qa-metric squad_v2 (or auto)"
        )
    return QAEvalSet(examples, features, gold_answers(examples), metric)


def decode(
    outputs: Outputs, examples: list[QAExample], features: QAFeatures, settings: dict[str, Any]
) -> list[QAPrediction]:
    """The one QA decoder: n-best spans per question, as evaluation, predict and serve read them."""
    return decode_predictions(
        examples, features, outputs["start_logits"], outputs["end_logits"],
        n_best=int(settings["n_best"]), max_answer_length=int(settings["max_answer_length"]),
        null_threshold=settings.get("null_threshold"), padding_side=settings.get("padding_side", "right"),
    )  # fmt: skip


def answer(examples: list[QAExample], model: LoadedModel) -> list[QAPrediction]:
    """QA predictions of a saved model, with the windows and decoding settings it was saved with."""
    m = model.meta
    features = build_features(
        model.tokenizer, examples, max_length=int(m["max_length"]), doc_stride=int(m["doc_stride"]),
        max_query_length=int(m["max_query_length"]), with_labels=False,
    )  # fmt: skip
    outputs = model.outputs(Encoded(features.input_ids, features.token_type_ids))
    return decode(outputs, examples, features, {**m, "padding_side": model.tokenizer.padding_side})


def evaluate_predictions(predictions: list[QAPrediction], eval_set: QAEvalSet) -> Evaluation:
    """Official scores; for SQuAD v2 also the null threshold that maximises F1 on this set.

    v2 `exact_match`/`f1` are reported at that tuned threshold (saved with the model and used by
    predict), and `best_f1_thresh` records it; HasAns/NoAns follow the official script.
    """
    if eval_set.metric != "squad_v2":
        answers = {p.id: p.answer for p in predictions}
        metrics = score(eval_set.metric, eval_set.gold, answers)
        return Evaluation(metrics, extra={"predictions": predictions, "null_threshold": None})
    margins = null_margins(predictions)
    best_span = {p.id: (p.nbest[0].text if p.nbest else "") for p in predictions}
    tuned = score("squad_v2", eval_set.gold, best_span, na_probs=margins)
    threshold = float(tuned["best_f1_thresh"])
    final = {p.id: ("" if margins[p.id] > threshold else best_span[p.id]) for p in predictions}
    metrics = score("squad_v2", eval_set.gold, final)
    metrics.update({k: tuned[k] for k in ("best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh")})
    # The report shows the answers that were scored: "no answer" where the threshold says so.
    shown = [
        dataclasses.replace(p, answer="", score=p.null_score, start=-1, end=-1) if not final[p.id] else p
        for p in predictions
    ]
    return Evaluation(metrics, extra={"predictions": shown, "null_threshold": threshold})


def examples_section(predictions: list[QAPrediction], eval_set: QAEvalSet, count: int = 12) -> str:
    """An HTML table of right and wrong answers (half each, where there are enough)."""
    rows = []
    for p in predictions:
        gold = eval_set.gold.get(p.id) or [""]
        right = any(exact_match(p.answer, g) for g in gold)
        rows.append((right, p, gold))
    picked = [r for r in rows if r[0]][: count // 2] + [r for r in rows if not r[0]][: count // 2]
    by_id = {e.id: e for e in eval_set.examples}
    cells = []
    for right, p, gold in picked:
        question = html.escape(by_id[p.id].question)
        cells.append(
            f"<tr><td>{'✓' if right else '✗'}</td><td>{question}</td><td>{html.escape(p.answer)}</td>"
            f"<td>{html.escape(' | '.join(gold))}</td><td>{p.score:.2f}</td></tr>"
        )
    head = "<tr><th></th><th>question</th><th>predicted</th><th>gold</th><th>score</th></tr>"
    return f"<table id='qa-examples'>{head}{''.join(cells)}</table>"
