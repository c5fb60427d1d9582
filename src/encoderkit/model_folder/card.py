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

from encoderkit.reporting.formats import format_number, format_value
from encoderkit.reporting.markdown import md_table

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class CardText:
    """What the model card says of a task; each task module declares its own."""

    pipeline_tag: str  # the Hub's pipeline tag
    auto_class: str  # the transformers class that loads the saved folder
    phrase: str  # "fine-tuned for <phrase>"
    example_call: str  # the tokenizer call of the card's usage snippet


@dataclass
class ModelCardInputs:
    """The facts a model card states about one trained model."""

    base_model: str
    task: str  # the registry name, a Hub tag
    text: CardText
    labels: str  # the "Labels" section, as the task writes it (Markdown)
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


def front_matter(inputs: ModelCardInputs) -> str:
    """The Hub metadata block (without the `---` fences), as YAML ending in a newline."""
    meta = {
        "library_name": "transformers",
        "base_model": inputs.base_model,
        "tags": ["encoderkit", inputs.task],
        "pipeline_tag": inputs.text.pipeline_tag,
    }
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)


def metrics_section(metrics: dict[str, float], eval_data: str | None) -> str:
    """The final metrics as a Markdown table, or a note when there was no evaluation."""
    if not metrics:
        return "No evaluation was run." if eval_data is None else "No metrics were recorded."
    return md_table(("metric", "value"), [(name, format_number(v)) for name, v in metrics.items()])


def hyperparameters_section(hyperparameters: dict[str, Any]) -> str:
    """The training hyperparameters as a Markdown table."""
    if not hyperparameters:
        return "Not recorded."
    return md_table(("hyperparameter", "value"), [(k, format_value(v)) for k, v in hyperparameters.items()])


def columns_section(columns: dict[str, str | None]) -> str:
    """A bullet naming the input columns used (those that are set), or nothing."""
    used = [f"{role}: `{name}`" for role, name in columns.items() if name]
    return f"- Columns: {', '.join(used)}\n" if used else ""


def python_usage(text: CardText) -> str:
    """A short, runnable Transformers snippet that loads this folder."""
    return "\n".join(
        [
            f"from transformers import AutoTokenizer, {text.auto_class}",
            "",
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            f'model = {text.auto_class}.from_pretrained("path/to/this/folder")',
            text.example_call,
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
    """
    return _CARD.substitute(
        front_matter=front_matter(inputs),
        model_name=inputs.base_model.rstrip("/").rsplit("/", 1)[-1] or inputs.base_model,
        base_model_ref=base_model_ref(inputs.base_model),
        task_phrase=inputs.text.phrase,
        version=inputs.version,
        train_data=inputs.train_data,
        eval_data=f"`{inputs.eval_data}`" if inputs.eval_data else "none",
        columns=columns_section(inputs.columns),
        labels=inputs.labels,
        metrics=metrics_section(inputs.metrics, inputs.eval_data),
        hyperparameters=hyperparameters_section(inputs.hyperparameters),
        python_usage=python_usage(inputs.text),
    )
