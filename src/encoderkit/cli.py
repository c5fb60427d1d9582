"""The `encoderkit` command: parse, call the library, print. Bad input -> exit 2, one `error:` line."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from encoderkit.errors import UserError, brief

COLUMN_FLAGS = ("text_column", "text_pair_column", "label_column")


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one `error:` line and exit code 2 (no usage dump).

    Abbreviations are off: `--label 3` must not silently mean `--label-column 3`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _unknown_flag(parser, args.command, unknown)
    if args.command not in ("train", "compare", "tune"):  # config checked first: a usage error in < 1 s
        _quiet_libraries()
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # training.signals.Interrupted says which signal (exit 128 + its number) and what was saved.
        message = str(exc) or "interrupted (a run continues from its last checkpoint with --resume)"
        print(f"error: {message}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))
    except Exception as exc:  # a bug of ours: one line for the user, the traceback kept for the report
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        print(
            f"error: internal error ({type(exc).__name__}: {first}); the full traceback is in "
            f"{_save_traceback()} (please attach it to a bug report)",
            file=sys.stderr,
        )
        return 1


def _unknown_flag(parser: Parser, command: str, unknown: list[str]) -> NoReturn:
    """An unknown flag, reported by its subcommand (whose --help lists the flags), with the
    closest flag it knows when one is close: `--ephocs` -> `--epochs`."""
    import difflib

    sub = _subcommand(parser, command)
    flag = unknown[0].split("=", 1)[0]
    known = [o for action in sub._actions for o in action.option_strings if o.startswith("--")]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6) if flag.startswith("-") else []
    hint = f"; did you mean {close[0]}?" if close else ""
    sub.error(f"unrecognized argument{'s' if len(unknown) > 1 else ''}: {' '.join(unknown)}{hint}")


def _subcommand(parser: Parser, command: str) -> Parser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: Parser = action.choices[command]
            return found
    return parser


def _save_traceback() -> str:
    """Write the current exception's traceback to a new file in the temp folder; its path."""
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile(
        "w", prefix="encoderkit-traceback-", suffix=".txt", delete=False, encoding="utf-8"
    ) as f:
        f.write(f"{_version()}, argv: {sys.argv!r}\n\n")
        traceback.print_exc(file=f)
    return f.name


def build_parser() -> Parser:
    parser = Parser(prog="encoderkit", description="Fine-tune transformer encoders on NLU tasks.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = sub.add_parser(
        "train",
        help="fine-tune a model and write a run folder",
        usage="encoderkit train --train FILE --output DIR [--task TASK] [--model MODEL] [options]",
    )
    train.add_argument("--config", help="YAML file of config fields; flags given here override it")
    _add_config_flags(train)
    train.set_defaults(handler=cmd_train)

    compare = sub.add_parser(
        "compare",
        help="train once per strategy and compare them in one report",
        usage="encoderkit compare --train FILE --output DIR [--strategies LIST] [options]",
    )
    compare.add_argument(
        "--strategies", default="full,frozen,lora,scratch", help="comma-separated (default: all four)"
    )
    compare.add_argument("--config", help="YAML file of config fields; flags given here override it")
    _add_config_flags(compare)
    compare.set_defaults(handler=cmd_compare)

    tune = sub.add_parser(
        "tune",
        help="search config fields with Optuna; each trial a run folder under DIR/trials/",
        usage="encoderkit tune --train FILE --eval FILE --space SPACE.yaml --trials N --output DIR [options]",
    )
    search = tune.add_argument_group("search")
    search.add_argument(
        "--space", required=True, help="YAML: `field: [choices]` or `field: {low, high, log}`"
    )
    search.add_argument("--trials", type=int, default=12, help="finished trials to reach (default: 12)")
    search.add_argument(
        "--storage", help="an Optuna storage URL shared by several machines (default: sqlite DIR/study.db)"
    )
    search.add_argument("--pruner", default="median", choices=("median", "hyperband", "none"),
                        help="stops bad trials at an evaluation (default: median)")  # fmt: skip
    search.add_argument(
        "--same-seed", action="store_true", help="every trial with --seed (default: seed + k)"
    )
    search.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    tune.add_argument("--config", help="YAML file of config fields; flags given here override it")
    _add_config_flags(tune)
    tune.set_defaults(handler=cmd_tune)

    demo = sub.add_parser("demo", help="fine-tune the bundled minilm on the bundled demo data (offline, CPU)")
    demo.add_argument("--output", default="runs/demo", help="run folder (replaced if it exists)")
    demo.set_defaults(handler=cmd_demo)

    evaluate = sub.add_parser("evaluate", help="metrics of a saved model on labelled data (one JSON object)")
    evaluate.add_argument("--model", required=True, help="a run's model/ folder")
    evaluate.add_argument("--data", required=True, help="labelled data file")
    evaluate.add_argument("--task", help="must match the saved model's task when given")
    _add_column_flags(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = sub.add_parser("predict", help="predict a file; JSONL out, one line per input")
    predict.add_argument("--model", required=True, help="a run's model/ folder")
    predict.add_argument("--input", required=True, help="JSONL/CSV/TSV file")
    predict.add_argument("--output", required=True, help="JSONL file to write")
    predict.add_argument("--batch-size", type=int, default=64, help="inputs per forward pass (default 64)")
    predict.add_argument(
        "--squad-predictions", help="qa: also write {id: answer} JSON for `encoderkit score`"
    )
    predict.add_argument(
        "--aggregation",
        choices=("first", "max", "average"),
        help="token classification: a word's tag from its first sub-token (default), the most "
        "confident sub-token, or their mean probabilities",
    )
    _add_column_flags(predict)
    predict.set_defaults(handler=cmd_predict)

    lengths = sub.add_parser("lengths", help="token-length statistics and the suggested max_length")
    lengths.add_argument("--model", required=True, help="model name or folder (its tokenizer is used)")
    lengths.add_argument("--data", required=True, help="data file")
    lengths.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    lengths.add_argument(
        "--task",
        default="classification",
        help="how to read --data: classification/regression (rows), token-classification (words)",
    )
    _add_column_flags(lengths)
    lengths.set_defaults(handler=cmd_lengths)

    score = sub.add_parser("score", help="official SQuAD / KorQuAD metrics of a predictions file")
    score.add_argument("--task", required=True, choices=("squad", "squad_v2", "korquad"))
    score.add_argument("--data", required=True, help="gold file (SQuAD-format JSON or JSONL)")
    score.add_argument("--predictions", required=True, help='JSON {"question id": "answer text"}')
    score.add_argument("--na-probs", help="squad_v2: JSON {id: null probability} to find the best threshold")
    score.set_defaults(handler=cmd_score)

    from encoderkit.serving.commands import add_commands

    add_commands(sub)  # serve, fill-mask
    return parser


# `train --help` in sections, in the order a first run needs them; every config field is in one.
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "data": (
        "task", "train", "eval", "eval_split", "text_column", "text_pair_column", "label_column",
        "max_length", "class_weights",
    ),
    "multi-label": ("multi_label", "label_separator", "multi_label_threshold"),
    "model and strategy": ("model", "strategy", "seed"),
    "training": (
        "epochs", "max_steps", "batch_size", "grad_accum", "batch_tokens", "lr", "weight_decay",
        "warmup_ratio", "max_grad_norm", "precision",
    ),
    "evaluation and checkpoints": (
        "eval_batch_size", "eval_steps", "eval_at_start", "metric_for_best", "early_stopping_patience",
        "logging_steps", "save_steps", "keep_checkpoints", "resume", "resume_force",
    ),
    "question answering": ("qa_metric", "doc_stride", "max_query_length", "n_best", "max_answer_length"),
    "token classification": ("labels", "label_all_subtokens"),
    "masked LM": ("mlm_probability", "whole_word_mask", "line_by_line", "train_tokenizer", "vocab_size"),
    "LoRA": ("lora_r", "lora_alpha", "lora_dropout", "lora_targets", "merge"),
    "speed": ("group_by_length", "unpad", "compile", "cache"),
    "tracking": ("report_to", "run_name", "tracking_dir"),
    "output": ("output", "overwrite"),
}  # fmt: skip


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, in FLAG_GROUPS' sections, each help with its default;
    argparse's defaults are suppressed so only given flags override --config."""
    from encoderkit.config import SWITCHES, TrainConfig

    by_name = {f.name: f for f in fields(TrainConfig)}
    for title, names in FLAG_GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            _add_config_flag(group, by_name[name], SWITCHES)


def _add_config_flag(group: Any, f: Any, switches: tuple[str, ...]) -> None:
    flag = "--" + f.name.replace("_", "-")
    # argparse %-formats help texts ("%(default)s"): a literal % must be doubled.
    help_text = (f.metadata["help"] + _default_note(f)).replace("%", "%%")
    kwargs: dict[str, Any] = {"help": help_text, "default": argparse.SUPPRESS, "dest": f.name}
    if f.metadata.get("choices"):
        kwargs["choices"] = f.metadata["choices"]
    if f.type in ("bool", bool):
        kwargs["action"] = "store_true" if f.default is False else argparse.BooleanOptionalAction
    group.add_argument(flag, **kwargs)
    if f.metadata.get("choices") == switches:  # `--no-unpad` reads better than `--unpad off`
        group.add_argument(
            "--no-" + flag[2:], dest=f.name, action="store_const", const="off", default=argparse.SUPPRESS,
            help=f"same as {flag} off",
        )  # fmt: skip


def _default_note(f: Any) -> str:
    """` (default: 32)` for a field whose help does not state its default already."""
    if f.default is None or f.default is False or "default" in f.metadata["help"].lower():
        return ""
    return f" (default: {'on' if f.default is True else f.default})"


def _add_column_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-column", help="text column (default: as trained, then text/sentence/...)")
    parser.add_argument("--text-pair-column", help="second text column")
    parser.add_argument("--label-column", help="label column")


def _column_flags(args: argparse.Namespace) -> dict[str, str | None]:
    return {"text": args.text_column, "text_pair": args.text_pair_column, "label": args.label_column}


def cmd_train(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    from encoderkit.training.run import train

    result = train(config)
    if result.main_process:  # under torchrun / accelerate launch, one process prints the summary
        _print_result(result)
    return 0


def _config_from_args(args: argparse.Namespace) -> Any:
    from encoderkit.config import FIELD_NAMES, build_config, load_yaml

    file_values = load_yaml(args.config) if args.config else {}
    cli_values = {k: v for k, v in vars(args).items() if k in FIELD_NAMES}
    config = build_config(file_values, cli_values)  # fail fast, before importing torch or transformers
    _quiet_libraries()
    return config


def cmd_compare(args: argparse.Namespace) -> int:
    from encoderkit.compare import StrategyStopped, compare, parse_strategies

    if "strategy" in vars(args):
        raise UserError("--strategy: compare runs every strategy named by --strategies")
    strategies = parse_strategies(args.strategies)
    config = _config_from_args(args)
    try:
        result = compare(config, strategies)
    except StrategyStopped as stopped:
        return stopped.code  # the strategy's run already printed its one `error:` line
    for row in result.rows:
        print(json.dumps(row))
    print(f"report: {result.report}")
    return 1 if result.failed else 0


def cmd_tune(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    if args.trials < 1:
        raise UserError("--trials: must be >= 1")
    if config.eval is None and config.eval_split is None:
        raise UserError("--eval or --eval-split: a search needs an eval set to score its trials")
    from encoderkit.tune import read_space, tune

    result = tune(
        config, read_space(args.space, config), args.trials, args.storage, args.pruner,
        args.same_seed, args.timeout,
    )  # fmt: skip
    print(json.dumps({"best_trial": result.best_number, result.metric: result.best_value, **result.counts}))
    print(f"best config: {result.folder / 'best.yaml'}")
    print(f"report: {result.report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from encoderkit.config import build_config
    from encoderkit.training.run import train

    demo = resources.files("encoderkit") / "demo"
    config = build_config(
        {},
        {
            "task": "classification",
            "model": "minilm",
            "train": str(demo / "train.jsonl"),
            "eval": str(demo / "eval.jsonl"),
            "output": args.output,
            "epochs": 4,
            "batch_size": 16,
            "overwrite": True,
        },
    )
    _print_result(train(config))
    return 0


def _print_result(result: Any) -> None:
    shown = {k: v for k, v in result.metrics.items() if isinstance(v, float | int)}
    print(json.dumps(shown, indent=2))
    print(f"model:  {result.run_dir / 'model'}")
    print(f"report: {result.report}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from encoderkit.inference.predictor import Predictor

    predictor = Predictor.from_dir(args.model)
    if args.task and args.task != predictor.task:
        raise UserError(
            f"--task: the model at {args.model} was trained for '{predictor.task}', not '{args.task}'"
        )
    print(json.dumps(predictor.evaluate_file(args.data, _column_flags(args))))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from encoderkit.atomic import write_atomic
    from encoderkit.inference.predictor import Predictor

    predictor = Predictor.from_dir(args.model, batch_size=args.batch_size)
    if args.squad_predictions and predictor.meta.get("qa_metric") is None:  # only QA models are scored so
        raise UserError("--squad-predictions: only for qa models")
    predictions = predictor.predict_file(args.input, {**_column_flags(args), "aggregation": args.aggregation})
    output = Path(args.output)
    if output.parent and not output.parent.exists():
        raise UserError(f"{output.parent}: folder for --output does not exist")
    write_atomic(output, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    if args.squad_predictions:
        official = {p["id"]: p["answer"] for p in predictions}
        write_atomic(Path(args.squad_predictions), json.dumps(official, ensure_ascii=False) + "\n")
    print(f"{len(predictions)} predictions -> {output}", file=sys.stderr)
    return 0


def cmd_lengths(args: argparse.Namespace) -> int:
    from encoderkit.data.lengths import length_stats
    from encoderkit.modeling import load_config, load_tokenizer, model_max_length
    from encoderkit.tasks import get_task

    task = get_task(args.task)
    tokenizer = load_tokenizer(args.model)
    limit = model_max_length(load_config(args.model), tokenizer)
    stats = length_stats(task.text_lengths(tokenizer, args.data, _column_flags(args)), limit)
    print(json.dumps(stats.__dict__) if args.json else stats.table())
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from encoderkit.data.squad import gold_answers, read_squad_file
    from encoderkit.evaluation.squad_metrics import score

    gold = gold_answers(read_squad_file(args.data))
    predictions = _read_json_object(args.predictions, "predictions")
    na_probs = _read_json_object(args.na_probs, "na-probs") if args.na_probs else None
    for qid, answer in predictions.items():
        if not isinstance(answer, str):
            raise UserError(f"{args.predictions}: answer for id {brief(qid)} is not a string")
    for qid, prob in (na_probs or {}).items():
        finite = isinstance(prob, int) or (isinstance(prob, float) and math.isfinite(prob))
        if isinstance(prob, bool) or not finite:  # not math.isfinite(int): it overflows past 1e308
            raise UserError(f"{args.na_probs}: null probability for id {brief(qid)} is not a finite number")
    print(json.dumps(score(args.task, gold, predictions, na_probs)))
    return 0


def _read_json_object(path: str, what: str) -> dict[str, Any]:
    from encoderkit.data.files import loads_json, read_text

    if not Path(path).exists():
        raise UserError(f"{path}: {what} file not found")
    # The data loaders' reader: a folder, bad UTF-8, NULs, gzip, deep nesting, huge numbers -> file:line.
    data = loads_json(read_text(Path(path)), path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object of id -> value")
    return data


def _quiet_libraries() -> None:
    """Hide load reports and progress bars of the libraries; encoderkit prints its own summary."""
    import logging
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    # Accelerate warns on every checkpoint that tied weights (an MLM decoder) are saved once; they
    # are, by design, and load_state ties them back.
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    transformers.utils.logging.disable_progress_bar()
    # PEFT calls a transformers method deprecated in 5.x; the warning is for PEFT, not for our users.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _version() -> str:
    from encoderkit.version import __version__

    return f"encoderkit {__version__}"


if __name__ == "__main__":
    sys.exit(main())
