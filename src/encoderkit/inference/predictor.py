"""Load a saved model folder and predict or evaluate; one Predictor for the CLI and the server.

A model folder carries `encoderkit.json` (task, columns, max_length, labels, QA decoding settings
and the tuned SQuAD v2 null threshold), so predictions use exactly what evaluation used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification

from encoderkit.data.columns import Columns, resolve_columns
from encoderkit.data.qa_types import QAExample
from encoderkit.data.tables import Table, read_table
from encoderkit.errors import UserError
from encoderkit.inference.forward import forward_all
from encoderkit.inference.rows import check_rows, qa_examples, text_examples, with_ids
from encoderkit.modeling import load_tokenizer
from encoderkit.tasks import classification as cls
from encoderkit.training.batching import Encoded
from encoderkit.training.outputs import METADATA_FILE

MODEL_CLASSES = {
    "classification": AutoModelForSequenceClassification,
    "regression": AutoModelForSequenceClassification,
    "qa": AutoModelForQuestionAnswering,
}


@dataclass
class Predictor:
    """A fine-tuned model with what it was trained with."""

    model: Any
    tokenizer: Any
    meta: dict[str, Any]
    device: torch.device
    batch_size: int = 64

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def label_names(self) -> list[str] | None:
        return self.meta.get("label_names")

    @classmethod
    def from_dir(cls_, path: str | Path, device: str | None = None, batch_size: int = 64) -> Predictor:
        """Load `path` (a run's `model/` folder, or the run folder itself).

        Raises:
            UserError: the folder is missing or was not written by encoderkit.
        """
        path = Path(path)
        if (path / "model" / METADATA_FILE).exists():
            path = path / "model"
        meta_path = path / METADATA_FILE
        if not meta_path.exists():
            raise UserError(f"{path}: not an encoderkit model folder (no {METADATA_FILE})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("task") not in MODEL_CLASSES:
            raise UserError(f"{meta_path}: unknown task {meta.get('task')!r}")
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = _load_model(MODEL_CLASSES[meta["task"]], path, meta).to(target).eval()
        return cls_(model, load_tokenizer(str(path)), meta, target, batch_size)

    @classmethod
    def from_masked_lm(cls_, name: str, device: str | None = None) -> Predictor:
        """A fill-mask predictor on a masked-LM checkpoint (`minilm`, a folder or a Hub id)."""
        from encoderkit.inference.fill_mask import load_masked_lm

        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, tokenizer, meta = load_masked_lm(name, target)
        return cls_(model, tokenizer, meta, target)

    @classmethod
    def load(cls_, name: str, device: str | None = None, batch_size: int = 64) -> Predictor:
        """An encoderkit model folder (task from its encoderkit.json), else a masked-LM checkpoint.

        Raises:
            UserError: neither; the message says why for both.
        """
        path = Path(name)
        if (path / METADATA_FILE).exists() or (path / "model" / METADATA_FILE).exists():
            return cls_.from_dir(path, device, batch_size)
        try:
            return cls_.from_masked_lm(name, device)
        except UserError as exc:
            why = f"not an encoderkit model folder (no {METADATA_FILE}) and not a fill-mask model"
            raise UserError(f"{name}: {why}: {exc}") from None

    def outputs(self, encoded: Encoded) -> dict[str, torch.Tensor]:
        pad_left = self.tokenizer.padding_side == "left"
        return forward_all(
            self.model, encoded, self.batch_size, self.device, self.tokenizer.pad_token_id, pad_left
        )

    # Classification and regression -------------------------------------------------------

    def resolve(self, table: Table, flags: dict[str, str | None], need_label: bool) -> Columns:
        """Columns from the flags, falling back to those the model was trained with, then defaults."""
        trained = self.meta.get("columns", {})

        def pick(role: str) -> str | None:
            if flags.get(role):
                return flags[role]
            name = trained.get(role)
            return name if name in table.columns else None

        return resolve_columns(table, pick("text"), pick("text_pair"), pick("label"), need_label)

    def logits(self, examples: list[cls.TextExample]) -> torch.Tensor:
        return self.outputs(cls.tokenize(self.tokenizer, examples, int(self.meta["max_length"])))["logits"]

    def predict_text(self, examples: list[cls.TextExample]) -> list[dict[str, Any]]:
        """Label id, name and probabilities (classification) or a score (regression) per example."""
        return cls.format_predictions(self.logits(examples), self.label_names)

    def predict_texts(self, texts: list[str], pairs: list[str] | None = None) -> list[dict[str, Any]]:
        """Predict raw strings (the Python API): one dict per text."""
        examples = [
            cls.TextExample(t, pairs[i] if pairs else None, None, f"input[{i}]") for i, t in enumerate(texts)
        ]
        return cls.format_predictions(self.logits(examples), self.label_names)

    # Question answering ------------------------------------------------------------------

    def answer(self, examples: list[QAExample]) -> list[Any]:
        """QA predictions with the saved windows, n-best settings and null threshold."""
        from encoderkit.tasks.qa_features import build_features
        from encoderkit.tasks.qa_postprocess import decode_predictions

        m = self.meta
        features = build_features(
            self.tokenizer, examples, max_length=int(m["max_length"]), doc_stride=int(m["doc_stride"]),
            max_query_length=int(m["max_query_length"]), with_labels=False,
        )  # fmt: skip
        out = self.outputs(Encoded(features.input_ids, features.token_type_ids))
        return decode_predictions(
            examples, features, out["start_logits"], out["end_logits"], n_best=int(m["n_best"]),
            max_answer_length=int(m["max_answer_length"]), null_threshold=m.get("null_threshold"),
            padding_side=self.tokenizer.padding_side,
        )  # fmt: skip

    def answer_one(self, question: str, context: str) -> dict[str, Any]:
        return qa_row(self.answer([QAExample("q0", question, context)])[0])

    # In-memory inputs: the server and the Python API -------------------------------------

    def predict_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Predict a list of input objects, one output object per input, as `predict` writes them.

        Rows hold `question` and `context` (qa), `text` [and `text_pair`] (classification,
        regression) or `text` with the mask token [and `top_k`] (fill-mask); an `id` is copied to
        the output. QA goes through the saved windows, n-best settings and null threshold, as
        `predict_file` and evaluation do.

        Raises:
            UserError: a row is malformed; the message names the field as `inputs[i].name`.
        """
        rows = check_rows(rows, self.task)
        if self.task == "qa":
            outputs = [qa_row(p) for p in self.answer(qa_examples(rows))]
        elif self.task == "fill-mask":
            from encoderkit.inference.fill_mask import fill_masks

            outputs = fill_masks(self.model, self.tokenizer, rows, int(self.meta["max_length"]), self.device)
        else:
            outputs = self.predict_text(text_examples(rows, self.pairs))
        return with_ids(rows, outputs)

    def validate_rows(self, rows: list[dict[str, Any]]) -> None:
        """Raise the UserError `predict_rows` would raise for these rows, without running the model.

        Only a fill-mask text longer than the model is left to `predict_rows`: this check must not
        touch the tokenizer, which the server's model thread may be using at the same time.
        """
        rows = check_rows(rows, self.task)
        if self.task == "qa":
            qa_examples(rows)
        elif self.task == "fill-mask":
            from encoderkit.inference import fill_mask

            fill_mask.check_rows(rows, str(self.meta["mask_token"]))
        else:
            text_examples(rows, self.pairs)

    @property
    def pairs(self) -> bool:
        """Whether the model was trained on (text, text_pair) inputs."""
        return bool((self.meta.get("columns") or {}).get("text_pair"))

    # Files -------------------------------------------------------------------------------

    def predict_file(self, source: str, flags: dict[str, str | None]) -> list[dict[str, Any]]:
        """Predict every input of a file; rows keep their `id` when there is one."""
        self._files_supported("predict")
        if self.task == "qa":
            from encoderkit.tasks.qa import read_qa_examples

            return [qa_row(p) for p in self.answer(read_qa_examples(source))]
        table = read_table(source)
        columns = self.resolve(table, flags, need_label=False)
        examples = cls.read_examples(table, Columns(columns.text, columns.text_pair, None), need_label=False)
        predictions = self.predict_text(examples)
        if "id" in table.columns:
            predictions = [{"id": row.get("id"), **p} for row, p in zip(table.rows, predictions, strict=True)]
        return predictions

    def evaluate_file(self, source: str, flags: dict[str, str | None]) -> dict[str, Any]:
        """Metrics on a labelled file, computed as training computed them on its eval set."""
        self._files_supported("evaluate")
        if self.task == "qa":
            return self._evaluate_qa(source)
        table = read_table(source)
        columns = self.resolve(table, flags, need_label=True)
        examples = cls.read_examples(table, columns, need_label=True)
        names = self.label_names
        targets = cls.label_ids(examples, names) if names else cls.regression_targets(examples)
        result = cls.evaluate_logits(self.logits(examples), targets, names)
        return {**result.metrics, "examples": len(examples)}

    def _files_supported(self, what: str) -> None:
        if self.task == "fill-mask":
            raise UserError(f"{what}: a fill-mask model takes texts (`encoderkit fill-mask`, predict_rows)")

    def _evaluate_qa(self, source: str) -> dict[str, Any]:
        from encoderkit.data.squad import gold_answers
        from encoderkit.evaluation.squad_metrics import score
        from encoderkit.tasks.qa import choose_metric, read_qa_examples

        examples = read_qa_examples(source)
        metric = self.meta.get("qa_metric") or choose_metric("auto", examples)
        answers = {p.id: p.answer for p in self.answer(examples)}
        return {**score(metric, gold_answers(examples), answers), "examples": len(examples), "metric": metric}


def _load_model(model_class: Any, path: Path, meta: dict[str, Any]) -> Any:
    """The saved weights, or (for a `--no-merge` LoRA run) base model + adapter, merged for speed."""
    if not meta.get("adapter"):
        return model_class.from_pretrained(path)
    from peft import PeftModel
    from transformers import AutoConfig

    from encoderkit.modeling import resolve_model

    base = model_class.from_pretrained(
        resolve_model(str(meta["base_model"])), config=AutoConfig.from_pretrained(path), dtype=torch.float32
    )
    return PeftModel.from_pretrained(base, path).merge_and_unload()


def qa_row(prediction: Any) -> dict[str, Any]:
    """One JSONL line: id, answer, score, character offsets into the context, n-best list."""
    return {
        "id": prediction.id,
        "answer": prediction.answer,
        "score": round(prediction.score, 4),
        "start": prediction.start,
        "end": prediction.end,
        "nbest": [
            {"text": s.text, "score": round(s.score, 4), "start": s.start, "end": s.end}
            for s in prediction.nbest
        ],
    }
