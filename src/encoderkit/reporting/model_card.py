"""The model card: the README.md saved next to a fine-tuned model.

Data plus a template, as in setfit: `ModelCardInputs` holds the facts, `_CARD` the Markdown, and
one small function per section turns facts into Markdown. The YAML front matter is produced with
`yaml.safe_dump`, so any model name or path yields valid metadata for the Hugging Face Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Template
from typing import Any

import yaml

from encoderkit.reporting.report import format_number, format_value

TASKS = ("classification", "regression", "qa")
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")

_PIPELINE_TAG = {
    "classification": "text-classification",
    "regression": "text-classification",
    "qa": "question-answering",
}
_AUTO_CLASS = {
    "classification": "AutoModelForSequenceClassification",
    "regression": "AutoModelForSequenceClassification",
    "qa": "AutoModelForQuestionAnswering",
}
_TASK_PHRASE = {
    "classification": "text classification",
    "regression": "text regression (one continuous score per input)",
    "qa": "extractive question answering",
}


@dataclass
class ModelCardInputs:
    """The facts a model card states about one trained model."""

    base_model: str
    task: str  # "classification" | "regression" | "qa"
    label_names: list[str] | None
    metrics: dict[str, float]
    hyperparameters: dict[str, Any]
    train_data: str
    eval_data: str | None
    columns: dict[str, str | None]  # e.g. {"text": "sentence", "text_pair": None, "label": "label"}
    version: str  # encoderkit version


_CARD = Template("""---
$front_matter---

# $model_name fine-tuned for $task_phrase

This model is $base_model_ref fine-tuned for $task_phrase with encoderkit $version.

- Training data: `$train_data`
- Evaluation data: $eval_data
$columns
## Labels

$labels

## Evaluation results

$metrics

## Training hyperparameters

$hyperparameters

## How to use

With Transformers:

```python
$python_usage
```

With encoderkit (writes one JSON line of predictions per input):

```bash
encoderkit predict --model path/to/this/folder --input inputs.jsonl --output predictions.jsonl
```

## Framework

Trained with encoderkit $version on PyTorch and Hugging Face Transformers; saved in the
Transformers format (safetensors weights, config and tokenizer), so it loads without encoderkit.
""")


def _md_cell(text: str) -> str:
    """Make text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    """A two-column Markdown table."""
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in rows]
    return "\n".join(lines)


def front_matter(inputs: ModelCardInputs) -> str:
    """The Hub metadata block (without the `---` fences), as YAML ending in a newline."""
    meta = {
        "library_name": "transformers",
        "base_model": inputs.base_model,
        "tags": ["encoderkit", inputs.task],
        "pipeline_tag": _PIPELINE_TAG[inputs.task],
    }
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)


def labels_section(task: str, label_names: list[str] | None) -> str:
    """What the model outputs: the label table for classification, a sentence otherwise."""
    if task == "qa":
        return "The model predicts the start and end of the answer span in the context."
    if task == "regression":
        return "The model outputs one continuous score per input (no labels)."
    if not label_names:
        return "The label names were not recorded; outputs are class ids."
    return _md_table(("id", "label"), [(str(i), name) for i, name in enumerate(label_names)])


def metrics_section(metrics: dict[str, float], eval_data: str | None) -> str:
    """The final metrics as a Markdown table, or a note when there was no evaluation."""
    if not metrics:
        return "No evaluation was run." if eval_data is None else "No metrics were recorded."
    return _md_table(("metric", "value"), [(name, format_number(v)) for name, v in metrics.items()])


def hyperparameters_section(hyperparameters: dict[str, Any]) -> str:
    """The training hyperparameters as a Markdown table."""
    if not hyperparameters:
        return "Not recorded."
    return _md_table(("hyperparameter", "value"), [(k, format_value(v)) for k, v in hyperparameters.items()])


def columns_section(columns: dict[str, str | None]) -> str:
    """A bullet naming the input columns used (those that are set), or nothing."""
    used = [f"{role}: `{name}`" for role, name in columns.items() if name]
    return f"- Columns: {', '.join(used)}\n" if used else ""


def python_usage(task: str) -> str:
    """A short, runnable Transformers snippet that loads this folder."""
    auto = _AUTO_CLASS[task]
    if task == "qa":
        call = 'inputs = tokenizer("Who wrote it?", "It was written by Ada.", return_tensors="pt")'
    else:
        call = 'inputs = tokenizer("An example sentence.", return_tensors="pt")'
    return "\n".join(
        [
            f"from transformers import AutoTokenizer, {auto}",
            "",
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            f'model = {auto}.from_pretrained("path/to/this/folder")',
            call,
            "outputs = model(**inputs)",
        ]
    )


def base_model_ref(base_model: str) -> str:
    """The base model in code style, linked to the Hub when it looks like an `owner/name` id.

    Bare names (`minilm`, `bert-base-uncased`) and local paths are not linked: they may be an
    encoderkit alias or a folder, and a guessed link could point to the wrong model.
    """
    if _HUB_ID.fullmatch(base_model) and not base_model.startswith("."):
        return f"[`{base_model}`](https://huggingface.co/{base_model})"
    return f"`{base_model}`"


def render_model_card(inputs: ModelCardInputs) -> str:
    """The model card (README.md) as Markdown with YAML front matter.

    `base_model` is written as given (Hub id or local path); pass the Hub id where there is one.

    Raises ValueError for a task other than classification, regression or qa.
    """
    if inputs.task not in TASKS:
        raise ValueError(f"unknown task {inputs.task!r}; expected one of {', '.join(TASKS)}")
    return _CARD.substitute(
        front_matter=front_matter(inputs),
        model_name=inputs.base_model.rstrip("/").rsplit("/", 1)[-1] or inputs.base_model,
        base_model_ref=base_model_ref(inputs.base_model),
        task_phrase=_TASK_PHRASE[inputs.task],
        version=inputs.version,
        train_data=inputs.train_data,
        eval_data=f"`{inputs.eval_data}`" if inputs.eval_data else "none",
        columns=columns_section(inputs.columns),
        labels=labels_section(inputs.task, inputs.label_names),
        metrics=metrics_section(inputs.metrics, inputs.eval_data),
        hyperparameters=hyperparameters_section(inputs.hyperparameters),
        python_usage=python_usage(inputs.task),
    )
