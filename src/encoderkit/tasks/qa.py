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
from transformers import AutoModelForQuestionAnswering

from encoderkit.data.qa_types import QAExample
from encoderkit.data.squad import check_answers, gold_answers, read_squad_file
from encoderkit.errors import UserError
from encoderkit.evaluation.squad_metrics import score
from encoderkit.tasks import Evaluation, PreparedData
from encoderkit.tasks.qa_features import QAFeatures, build_features, feature_stats
from encoderkit.tasks.qa_postprocess import QAPrediction, decode_predictions, null_margins
from encoderkit.training.batching import Encoded

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
    from encoderkit.data.hub import read_hub_table

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


class QATask:
    name = "qa"
    model_class = AutoModelForQuestionAnswering
    default_metric = "f1"

    def __init__(self) -> None:
        self.config: Any = None
        self.padding_side = "right"
        self.train_metric = "squad"  # what the training data implies (squad_v2 if unanswerable)

    def prepare(self, config: Any, tokenizer: Any, model_limit: int) -> PreparedData:
        """Read, repair and window the data; the data check goes into the summary and warnings."""
        self.config = config
        self.padding_side = tokenizer.padding_side
        max_length = QA_WINDOW if config.max_length == "auto" else int(config.max_length)
        max_length = min(max_length, model_limit)
        raw = read_qa_examples(config.train)
        self.train_metric = choose_metric(config.qa_metric, raw)
        check = check_answers(raw)
        if not check.examples:
            raise UserError(f"{config.train}: no usable training questions after the answer check")
        window = dict(
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
        if config.eval:
            examples = read_qa_examples(config.eval)
            if all(e.is_impossible for e in examples) and not any(e.is_impossible for e in raw):
                raise UserError(f"{config.eval}: no question has a gold answer; scoring needs answers")
            features = build_features(tokenizer, examples, with_labels=False, **window)
            metric = choose_metric(config.qa_metric, raw + examples)
            unanswerable = next((e for e in examples if e.is_impossible), None)
            if metric != "squad_v2" and unanswerable is not None:
                # Checked here, not at the first evaluation after an epoch of training.
                raise UserError(
                    f"{config.eval}: question {unanswerable.id!r} has no answer, which the {metric} "
                    "metric cannot score; use --qa-metric squad_v2 (or auto)"
                )
            eval_set = QAEvalSet(examples, features, gold_answers(examples), metric)
            eval_encoded = encode(tokenizer, features)
            summary["eval questions"] = len(examples)
            summary["eval windows"] = len(features.input_ids)
            summary["metric"] = metric
        print_data_check(summary)
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
        )

    def model_config(self, data: PreparedData) -> dict[str, Any]:
        return {}

    def evaluate(self, outputs: dict[str, torch.Tensor], data: PreparedData) -> Evaluation:
        eval_set: QAEvalSet = data.eval_gold
        predictions = self.decode(outputs, eval_set.examples, eval_set.features, null_threshold=None)
        return evaluate_predictions(predictions, eval_set)

    def decode(
        self, outputs: dict[str, torch.Tensor], examples: list[QAExample], features: QAFeatures,
        null_threshold: float | None,
    ) -> list[QAPrediction]:  # fmt: skip
        return decode_predictions(
            examples, features, outputs["start_logits"], outputs["end_logits"],
            n_best=self.config.n_best, max_answer_length=self.config.max_answer_length,
            null_threshold=null_threshold, padding_side=self.padding_side,
        )  # fmt: skip

    def saved_settings(self, data: PreparedData, final: Evaluation | None) -> dict[str, Any]:
        """Decoding settings a Predictor must reuse so served answers equal evaluated answers."""
        return {
            "doc_stride": self.config.doc_stride,
            "max_query_length": self.config.max_query_length,
            "n_best": self.config.n_best,
            "max_answer_length": self.config.max_answer_length,
            "null_threshold": self._null_threshold(final),
            "qa_metric": data.eval_gold.metric if data.eval_gold else self.train_metric,
        }

    def _null_threshold(self, final: Evaluation | None) -> float | None:
        """Tuned on the eval set for SQuAD v2; without one, 0.0 (the HF default) so a v2 model can
        still abstain; None for v1 models, which always answer."""
        if final is not None and final.extra.get("null_threshold") is not None:
            return float(final.extra["null_threshold"])
        return 0.0 if self.train_metric == "squad_v2" else None

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]:
        if final is None or data.eval_gold is None:
            return []
        return [("Example answers (eval set)", examples_section(final.extra["predictions"], data.eval_gold))]


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


def print_data_check(summary: dict[str, Any]) -> None:
    width = max(len(k) for k in summary)
    print("data check:")
    for key, value in summary.items():
        print(f"  {key:<{width}}  {value}")


def examples_section(predictions: list[QAPrediction], eval_set: QAEvalSet, count: int = 12) -> str:
    """An HTML table of right and wrong answers (half each, where there are enough)."""
    from encoderkit.evaluation.squad_metrics import exact_match

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
