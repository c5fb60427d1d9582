"""One typed configuration for a training run: defaults, YAML files, CLI flags, validation.

The CLI flags of `encoderkit train` are generated from the fields below (their `help` metadata),
so the config file, the flags and the saved `config.yaml` always name the same things.
Precedence: field default < `--config FILE.yaml` < explicit command-line flags.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from encoderkit import registry
from encoderkit.errors import UserError

TASKS = registry.TRAINABLE
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STRATEGIES = ("full", "frozen", "lora", "scratch")
QA_METRICS = ("auto", "squad", "squad_v2", "korquad")
SWITCHES = ("auto", "on", "off")


def _f(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field carrying its CLI help text (and optional `choices`)."""
    return field(default=default, metadata={"help": help, **extra})


# Fields only some runs read, by task name or strategy (TrainConfig.applying).
ONLY_FOR: dict[str, tuple[str, ...]] = {
    "text_pair_column": ("classification", "regression"),
    "doc_stride": ("qa", "token-classification"),
    **dict.fromkeys(("max_query_length", "n_best", "max_answer_length", "qa_metric"), ("qa",)),
    **dict.fromkeys(("labels", "label_all_subtokens"), ("token-classification",)),
    "class_weights": ("classification",),
    **dict.fromkeys(("label_separator", "multi_label_threshold"), (registry.MULTI_LABEL,)),
    **dict.fromkeys(
        ("line_by_line", "mlm_probability", "whole_word_mask", "train_tokenizer", "vocab_size"), ("mlm",)
    ),
    **dict.fromkeys(("lora_r", "lora_alpha", "lora_dropout", "lora_targets", "merge"), ("lora",)),
}


@dataclass
class TrainConfig:
    # What to train on.
    task: str = _f("classification", "task to train", choices=TASKS)
    model: str = _f("minilm", "HF model id, local folder, or `minilm` (bundled offline model)")
    train: str | None = _f(
        None, "training data: JSONL/CSV/TSV (optionally .gz) or hub name `glue/mrpc:train`"
    )
    eval: str | None = _f(None, "evaluation data (same formats); enables best-checkpoint selection")
    eval_split: float | None = _f(
        None,
        "no eval file: hold out this share of --train as the eval set (seeded by --seed; "
        "stratified by label for classification, whole paragraphs for qa)",
    )
    output: str | None = _f(None, "run folder to write")
    text_column: str | None = _f(None, "text column (default: text/sentence/sentence1/...)")
    text_pair_column: str | None = _f(None, "second text column for pairs (default: text_pair/sentence2)")
    label_column: str | None = _f(None, "label column (default: label)")
    multi_label: bool = _f(
        False, "classification: several labels per example, one sigmoid each (same as --task multi-label)"
    )
    label_separator: str | None = _f(
        None, "multi-label: split a label cell's text on this (`,` or `|`); JSON lists need none"
    )
    multi_label_threshold: float | str = _f(
        0.5, "multi-label: probability at which a label is predicted, or `tune` (per label, on the eval set)"
    )
    class_weights: str | None = _f(
        None,
        "classification: weight each class's loss: `balanced` (n / (classes x count), as scikit-learn) "
        "or a YAML/JSON file of label: weight; scaled so the average example weighs 1",
    )
    # How long and how fast.
    epochs: float | str = _f(
        "auto",
        "training epochs (fractions allowed); `auto`: 3, fewer for large sets (<= ~60k examples seen), "
        "more for tiny ones (up to 20, to reach 30 optimizer steps)",
    )
    max_steps: int | None = _f(None, "stop after this many optimizer steps (overrides epochs)")
    batch_size: int | str = _f(
        "auto",
        "examples per optimizer step (the global batch); `auto`: 32, or 16 / 8 on a set with fewer "
        "than 10 batches of 32 (a multiple of --grad-accum x processes)",
    )
    grad_accum: int = _f(1, "split each batch into N micro-batches (same result, less memory)")
    batch_tokens: int | None = _f(
        None,
        "token budget per micro-batch instead of a fixed number of examples: examples of similar "
        "length, as many as fit (count x longest <= N); replaces --batch-size (a step is "
        "--grad-accum such micro-batches)",
    )
    eval_batch_size: int = _f(128, "examples per evaluation forward pass")
    lr: float | None = _f(
        None, "peak learning rate (AdamW); default per strategy: full/scratch 1e-4, frozen/lora 1e-3"
    )
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and LayerNorm)")
    warmup_ratio: float = _f(0.1, "share of steps with linear warmup before linear decay")
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 disables)")
    max_length: int | str = _f(
        "auto", "max tokens per example or QA window; `auto`: multiple of 8 covering p99 (qa: 384)"
    )
    doc_stride: int = _f(
        128, "qa, token-classification: tokens shared by consecutive windows over a long context"
    )
    max_query_length: int = _f(64, "qa: questions are cut to this many tokens")
    n_best: int = _f(20, "qa: candidate spans kept per question")
    max_answer_length: int = _f(30, "qa: longest answer in tokens")
    labels: str | None = _f(
        None,
        "token-classification: names of integer tags, comma-separated in id order (O,B-PER,I-PER,...); "
        "default: the model's id2label",
    )
    label_all_subtokens: bool = _f(
        False, "token-classification: label every sub-token of a word, not only its first"
    )
    line_by_line: bool = _f(
        False, "mlm: one text per sequence (cut to max_length) instead of full blocks of concatenated text"
    )
    mlm_probability: float = _f(
        0.15, "mlm: share of tokens (or words) masked: 80% mask, 10% random, 10% kept"
    )
    whole_word_mask: bool = _f(False, "mlm: mask every sub-token of a chosen word together")
    train_tokenizer: bool = _f(
        False,
        "mlm with --strategy scratch: learn a vocabulary from the training text (the model's algorithm)",
    )
    vocab_size: int = _f(8000, "mlm --train-tokenizer: size of the vocabulary to learn")
    qa_metric: str = _f(
        "auto", "qa: official metric (auto: squad_v2 if unanswerable questions)", choices=QA_METRICS
    )
    seed: int = _f(42, "random seed (weights of the new head, dropout, batch order)")
    precision: str = _f("auto", "`auto` = bf16/fp16 autocast on GPU, fp32 on CPU", choices=PRECISIONS)
    strategy: str = _f("full", "which weights train", choices=STRATEGIES)
    lora_r: int = _f(16, "lora: rank of the adapter matrices")
    lora_alpha: int = _f(32, "lora: scaling numerator (the update is scaled by alpha / r)")
    lora_dropout: float = _f(0.1, "lora: dropout on the adapter input")
    lora_targets: str | None = _f(
        None, "lora: comma-separated module names to adapt (default: every linear layer of the encoder)"
    )
    merge: bool = _f(True, "lora: merge the adapter into model/ (--no-merge keeps an adapter folder)")
    group_by_length: bool = _f(True, "batch examples of similar length together (less padding)")
    # Speed switches: each technique can be turned off so its effect can be measured.
    unpad: str = _f(
        "auto",
        "train on packed sequences, no padding work: auto = where varlen attention runs (CUDA, "
        "BERT/RoBERTa family), on = also elsewhere (exact but slower: per-sequence attention), off",
        choices=SWITCHES,
    )
    compile: str = _f("auto", "torch.compile the training step: auto = on CUDA, on, off", choices=SWITCHES)
    cache: bool = _f(True, "reuse tokenized data cached on disk (--no-cache re-tokenizes)")
    # When to log, evaluate, save, stop.
    logging_steps: int | None = _f(None, "log every N steps (default: about 50 points per run)")
    eval_steps: int | None = _f(None, "evaluate every N optimizer steps (default: every epoch)")
    eval_at_start: bool = _f(True, "evaluate before the first step, so curves start from the untrained model")
    save_steps: int | None = _f(500, "write a resumable checkpoint every N steps (and every epoch)")
    keep_checkpoints: int = _f(1, "resumable checkpoints to keep (the newest N; best weights are kept apart)")
    early_stopping_patience: int | None = _f(None, "stop after N evaluations without improvement")
    metric_for_best: str | None = _f(None, "eval metric that selects the best checkpoint (default per task)")
    report_to: str = _f(
        "none",
        "also log the run to: none, or a comma list of tensorboard, mlflow, wandb (Accelerate's trackers)",
    )
    run_name: str | None = _f(None, "the run's name in the trackers (default: the --output folder's name)")
    tracking_dir: str | None = _f(
        None,
        "tensorboard: where the event files go (default OUTPUT/tb); mlflow: the artifact location; "
        "wandb: its local folder",
    )
    resume: bool = _f(False, "continue from the last checkpoint in --output")
    resume_force: bool = _f(False, "resume even though the config or the data changed since the checkpoint")
    overwrite: bool = _f(False, "replace an existing run folder")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def applying(self) -> dict[str, Any]:
        """The fields this run reads: a QA, token-classification, MLM or LoRA setting only when the
        run is one (the report shows these; config.yaml keeps every field)."""
        task = registry.entry(self.task)
        scopes = {task.name if task else self.task, self.strategy}
        return {k: v for k, v in self.to_dict().items() if k not in ONLY_FOR or scopes & set(ONLY_FOR[k])}

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


FIELD_NAMES = tuple(f.name for f in fields(TrainConfig))


def read_yaml_mapping(path: str | Path, what: str, of: str) -> dict[Any, Any]:
    """The mapping a YAML (or JSON) file holds ({} when empty), or a UserError naming the file,
    the line of a syntax error, and `what` the file is (`config file`) and `of` what (`config
    fields`). One reader for the config, class-weights and search-space files."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except OSError as exc:  # a folder, no permission, ...
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: {what} is not valid UTF-8 (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: invalid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of {of}, got {type(data).__name__}")
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file into a dict of known fields, or raise UserError naming the problem."""
    data = read_yaml_mapping(path, "config file", "config fields")
    # Accept the CLI spelling too (text-column) so a user can copy flags into a file.
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(FIELD_NAMES))
    if unknown:
        raise UserError(f"{path}: unknown config field '{unknown[0]}'")
    return data


def build_config(file_values: dict[str, Any], cli_values: dict[str, Any]) -> TrainConfig:
    """Merge defaults < file < CLI, coerce types, validate. Raises UserError on bad values."""
    merged = {**file_values, **cli_values}
    coerced = {name: _coerce(name, value) for name, value in merged.items()}
    if coerced.get("multi_label"):
        task = registry.entry(str(coerced.get("task", "classification")))
        if task is None or task.name not in ("classification", registry.MULTI_LABEL):
            raise UserError("field 'multi_label': only with --task classification")
        coerced["task"] = registry.MULTI_LABEL
    config = TrainConfig(**coerced)
    validate(config)
    return config


_FIELD_TYPES = {f.name: f.type for f in fields(TrainConfig)}
AUTO_FIELDS = ("max_length", "epochs", "batch_size")  # fields that also take the word `auto`
WORDS = {"multi_label_threshold": "tune"}  # a number field that also takes one word


def _coerce(name: str, value: Any) -> Any:
    """Turn YAML/CLI values into the field's type; `max_length` also takes the word `auto`."""
    kind = str(_FIELD_TYPES[name])
    if value is None:
        # `batch_size: null` in a file must not reach validate() as None (a TypeError there).
        if "None" not in kind:
            raise UserError(f"field '{name}': a value is required, got null")
        return None
    try:
        if name in AUTO_FIELDS and str(value).lower() == "auto":
            return "auto"
        if name in WORDS and str(value).lower() == WORDS[name]:
            return WORDS[name]
        if name in ("epochs", "multi_label_threshold"):
            return float(value)
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            return {"true": True, "false": False, "1": True, "0": False}[str(value).lower()]
        if kind.startswith("int"):  # (max_length and batch_size too: `int | str`)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind.startswith("float"):
            return float(value)
        return str(value)
    except (ValueError, KeyError):
        raise UserError(f"field '{name}': invalid value {value!r}") from None


def validate(config: TrainConfig) -> None:
    """Check ranges and choices once, so the rest of the code can trust the config."""
    for f in fields(config):
        choices = f.metadata.get("choices")
        value = getattr(config, f.name)
        if choices and value not in choices:
            raise UserError(f"field '{f.name}': {value!r} is not one of {', '.join(choices)}")
    positive = ["grad_accum", "eval_batch_size", "doc_stride", "max_query_length"]
    positive += ["n_best", "max_answer_length", "lora_r", "lora_alpha", "vocab_size"]
    # None means "the default"; 0 is not a step count (it used to be silently read as None).
    optional = ("lr", "max_steps", "logging_steps", "eval_steps", "batch_tokens")
    positive += [n for n in optional if getattr(config, n) is not None]
    positive += ["batch_size"] if config.batch_size != "auto" else []
    for name in positive:
        value = getattr(config, name)
        if not (value > 0 and math.isfinite(value)):  # also rejects nan and inf
            raise UserError(f"field '{name}': must be > 0, got {value}")
    if config.save_steps is not None and config.save_steps < 0:
        raise UserError(f"field 'save_steps': must be >= 0 (0: only at epoch ends), got {config.save_steps}")
    if config.keep_checkpoints < 1:
        raise UserError(f"field 'keep_checkpoints': must be >= 1, got {config.keep_checkpoints}")
    if (
        config.batch_tokens is None
        and config.batch_size != "auto"
        and int(config.batch_size) % config.grad_accum
    ):
        raise UserError(
            f"field 'grad_accum': {config.grad_accum} does not divide batch_size {config.batch_size}"
        )
    if config.epochs != "auto" and not (float(config.epochs) > 0 and math.isfinite(float(config.epochs))):
        raise UserError(f"field 'epochs': must be > 0, got {config.epochs}")
    if not 0 <= config.warmup_ratio < 1:
        raise UserError(f"field 'warmup_ratio': must be in [0, 1), got {config.warmup_ratio}")
    for name in ("weight_decay", "max_grad_norm"):
        if not (getattr(config, name) >= 0 and math.isfinite(getattr(config, name))):
            raise UserError(f"field '{name}': must be >= 0, got {getattr(config, name)}")
    # A misspelled --metric-for-best fails now, not with a KeyError after an epoch.
    task, metric = registry.entry(config.task), config.metric_for_best
    if task is not None and task.checked_metrics and metric is not None and metric not in task.metrics:
        raise UserError(f"field 'metric_for_best': {metric!r} is not one of {', '.join(task.metrics)}")
    if isinstance(config.max_length, int) and config.max_length < 8:
        raise UserError(f"field 'max_length': must be >= 8 or 'auto', got {config.max_length}")
    if config.early_stopping_patience is not None and config.early_stopping_patience < 1:
        raise UserError("field 'early_stopping_patience': must be >= 1")
    missing = [
        flag
        for flag, value in (("--train PATH", config.train), ("--output DIR", config.output))
        if value is None
    ]
    if missing:  # all at once: a first run should not learn them one error at a time
        fields_named = " and ".join(f"'{flag.split()[0][2:]}'" for flag in missing)
        raise UserError(
            f"field{'s' if len(missing) > 1 else ''} {fields_named}: required ({', '.join(missing)})"
        )
    if config.eval_split is not None:
        if config.eval is not None:
            raise UserError(
                "fields 'eval_split' and 'eval' exclude each other (the eval set is one or the other)"
            )
        if not 0 < config.eval_split <= 0.5:
            raise UserError(f"field 'eval_split': must be in (0, 0.5], got {config.eval_split}")
    threshold = config.multi_label_threshold
    if threshold != "tune" and not 0 < float(threshold) < 1:
        raise UserError(f"field 'multi_label_threshold': must be in (0, 1) or 'tune', got {threshold}")
    if config.label_separator == "":
        raise UserError("field 'label_separator': must not be empty")
    if config.class_weights is not None and task is not None and task.name not in ONLY_FOR["class_weights"]:
        # Not ignored like a LoRA flag on a full run: it would change the loss the user asked for.
        raise UserError(f"field 'class_weights': only for --task {', '.join(ONLY_FOR['class_weights'])}")
    if not 0 <= config.lora_dropout < 1:
        raise UserError(f"field 'lora_dropout': must be in [0, 1), got {config.lora_dropout}")
    if not 0 < config.mlm_probability < 1:
        raise UserError(f"field 'mlm_probability': must be in (0, 1), got {config.mlm_probability}")
    if config.train_tokenizer and config.strategy != "scratch":
        raise UserError(
            "field 'train_tokenizer': only with --strategy scratch "
            "(a new vocabulary has no pretrained embeddings)"
        )
    check_trackers(config.report_to)
    if config.resume and config.overwrite:
        raise UserError("fields 'resume' and 'overwrite' exclude each other")
    if config.resume_force and not config.resume:
        raise UserError("field 'resume_force': only together with --resume")


TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # name: module to import


def trackers_of(report_to: str) -> list[str]:
    """The tracker names of `--report-to` (`none`: no tracker).

    Raises:
        UserError: an unknown name, or `none` beside a tracker.
    """
    names = [n.strip().lower() for n in report_to.split(",") if n.strip()]
    unknown = next((n for n in names if n not in (*TRACKERS, "none")), None)
    if unknown is not None:
        raise UserError(f"field 'report_to': {unknown!r} is not one of none, {', '.join(TRACKERS)}")
    if "none" in names and len(names) > 1:
        raise UserError("field 'report_to': 'none' cannot be combined with a tracker")
    return [n for n in dict.fromkeys(names) if n != "none"]


def check_trackers(report_to: str) -> None:
    """Each tracker's package is installed (looked up, not imported: a usage error stays fast)."""
    for name in trackers_of(report_to):
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise UserError(
                f"field 'report_to': {name} needs the {TRACKERS[name]} package: "
                f"pip install 'encoderkit[{name}]'"
            )


DEFAULT_LR = {"full": 1e-4, "scratch": 1e-4, "frozen": 1e-3, "lora": 1e-3}


def default_lr(strategy: str) -> float:
    """Adapters and a lone head need ~10x the step size of full fine-tuning to move in the same budget."""
    return DEFAULT_LR[strategy]


def save_yaml(config: TrainConfig, path: Path) -> None:
    """Write the resolved config; `encoderkit train --config` reads it back unchanged."""
    values = config.to_dict()
    values["resume"] = False  # a saved config describes the run, not how it was started
    values["resume_force"] = False
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
