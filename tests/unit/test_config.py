"""config.py: precedence, YAML reading, coercion, validation, save/load round trip; the CLI flags."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from encoderkit.cli import build_parser
from encoderkit.config import TrainConfig, build_config, load_yaml, save_yaml
from encoderkit.errors import UserError

REQUIRED = {"train": "train.jsonl", "output": "runs/x"}


def config_with(**values: Any) -> TrainConfig:
    return build_config({}, {**REQUIRED, **values})


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- precedence ---------------------------------------------------------------------------------


def test_precedence_default_then_file_then_cli() -> None:
    file_values = {**REQUIRED, "batch_size": 16, "lr": 0.001, "seed": 7}
    config = build_config(file_values, {"batch_size": "8"})
    assert config.batch_size == 8  # CLI beats the file
    assert config.lr == 0.001 and config.seed == 7  # the file beats the defaults
    assert config.epochs == TrainConfig().epochs == "auto"  # untouched: the default


def test_yaml_file_feeds_build_config(tmp_path: Path) -> None:
    path = write(tmp_path / "run.yaml", "train: t.jsonl\noutput: out\nepochs: 2\nlr: 1e-3\n")
    config = build_config(load_yaml(path), {"epochs": "5"})
    assert (config.train, config.output, config.epochs, config.lr) == ("t.jsonl", "out", 5.0, 0.001)


def test_yaml_accepts_the_cli_spelling(tmp_path: Path) -> None:
    path = write(tmp_path / "run.yaml", "text-column: review\nlabel-column: stars\nbatch-size: 4\n")
    assert load_yaml(path) == {"text_column": "review", "label_column": "stars", "batch_size": 4}
    assert build_config(load_yaml(path), REQUIRED).text_column == "review"


def test_empty_yaml_is_no_values(tmp_path: Path) -> None:
    assert load_yaml(write(tmp_path / "empty.yaml", "")) == {}


def test_unknown_yaml_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "run.yaml", "train: t.jsonl\nlearning_rate: 0.1\n")
    with pytest.raises(UserError, match=r"run\.yaml.*'learning_rate'"):
        load_yaml(path)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "train: a.jsonl\noutput: out\nepochs: 3: 4\n")
    with pytest.raises(UserError) as info:
        load_yaml(path)
    assert str(info.value).startswith(f"{path}:3:")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("list.yaml", "- train\n- output\n", "expected a mapping"),
        ("missing.yaml", None, "not found"),
        ("folder.yaml", "<dir>", "cannot read"),
        ("latin1.yaml", b"train: caf\xe9\n", "UTF-8"),
    ],
)
def test_unreadable_yaml_is_a_user_error(tmp_path: Path, name: str, content: Any, expected: str) -> None:
    path = tmp_path / name
    if content == "<dir>":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=re.escape(str(path)) + ".*" + expected):
        load_yaml(path)


# --- coercion -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [
        ("max_length", "auto", "auto"),
        ("max_length", "AUTO", "auto"),
        ("max_length", "128", 128),
        ("max_length", 64, 64),
        ("batch_size", "16", 16),
        ("batch_size", 16.0, 16),
        ("max_steps", "100", 100),
        ("epochs", "2.5", 2.5),
        ("lr", "3e-5", 3e-5),
        ("group_by_length", "false", False),
        ("group_by_length", "True", True),
        ("overwrite", "1", True),
        ("resume", "0", False),
        ("resume", True, True),
        ("model", 123, "123"),
        ("eval_steps", None, None),
    ],
)
def test_coercion(field: str, raw: Any, value: Any) -> None:
    got = getattr(config_with(**{field: raw}), field)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("batch_size", "sixteen"),
        ("batch_size", 2.5),
        ("batch_size", "8.0"),
        ("batch_size", None),  # `batch_size: null` in a file: not optional
        ("epochs", None),
        ("lr", "fast"),
        ("group_by_length", "maybe"),
        ("max_length", "long"),
    ],
)
def test_bad_values_name_the_field(field: str, raw: Any) -> None:
    with pytest.raises(UserError, match=f"'{field}'"):
        config_with(**{field: raw})


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -8}, "batch_size"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"batch_size": 32, "grad_accum": 3}, "grad_accum"),
        ({"grad_accum": 0}, "grad_accum"),
        ({"batch_tokens": 0}, "batch_tokens"),
        ({"lr": 0}, "lr"),
        ({"lr": "nan"}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": "inf"}, "epochs"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"warmup_ratio": -0.1}, "warmup_ratio"),
        ({"warmup_ratio": "nan"}, "warmup_ratio"),
        ({"weight_decay": -0.01}, "weight_decay"),
        ({"max_grad_norm": -1}, "max_grad_norm"),
        ({"max_steps": 0}, "max_steps"),  # 0 used to be silently read as "not set"
        ({"eval_steps": 0}, "eval_steps"),
        ({"logging_steps": -1}, "logging_steps"),
        ({"save_steps": -1}, "save_steps"),
        ({"max_length": 4}, "max_length"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
        ({"precision": "fp8"}, "precision"),
        ({"task": "poetry"}, "task"),
        ({"strategy": "partial"}, "strategy"),
        ({"metric_for_best": "acc"}, "metric_for_best"),
        ({"task": "regression", "metric_for_best": "accuracy"}, "metric_for_best"),
        ({"resume": True, "overwrite": True}, "resume"),
        ({"train": None}, "train"),
        ({"output": None}, "output"),
    ],
)
def test_validation_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(UserError, match=f"'{field}'"):
        config_with(**changes)


def test_every_missing_required_field_in_one_error() -> None:
    with pytest.raises(
        UserError, match=r"^fields 'train' and 'output': required \(--train PATH, --output DIR\)$"
    ):
        config_with(train=None, output=None)


def test_valid_edge_values_pass() -> None:
    config = config_with(batch_size=32, grad_accum=4, warmup_ratio=0.0, max_length=8, save_steps=0)
    assert (config.grad_accum, config.warmup_ratio, config.max_length, config.save_steps) == (4, 0.0, 8, 0)
    assert config_with(task="regression", metric_for_best="spearman").metric_for_best == "spearman"


# --- save and reload ----------------------------------------------------------------------------


def test_save_yaml_round_trips(tmp_path: Path) -> None:
    config = config_with(
        task="regression",
        text_column="review",
        epochs="2.5",
        max_steps=40,
        lr="3e-5",
        max_length="auto",
        group_by_length=False,
        precision="fp32",
        resume=True,
    )
    path = tmp_path / "config.yaml"
    save_yaml(config, path)
    assert yaml.safe_load(path.read_text())["resume"] is False
    again = build_config(load_yaml(path), {})
    assert again == config.replace(resume=False)
    assert again != config  # resume is the one thing that does not round-trip


def test_save_yaml_round_trips_resolved_max_length(tmp_path: Path) -> None:
    config = config_with(max_length=128, metric_for_best="f1")
    save_yaml(config, tmp_path / "config.yaml")
    assert build_config(load_yaml(tmp_path / "config.yaml"), {}) == config


# --- the CLI is generated from the dataclass -----------------------------------------------------


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _sample_value(f: Any) -> str:
    return f.metadata["choices"][-1] if f.metadata.get("choices") else "7"


def test_every_config_field_has_a_train_flag() -> None:
    train = _subcommands()["train"]
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            assert getattr(train.parse_args([flag]), f.name) is True, flag
        else:
            assert getattr(train.parse_args([flag, _sample_value(f)]), f.name) == _sample_value(f), flag


def test_bool_flag_with_true_default_can_be_turned_off() -> None:
    train = _subcommands()["train"]
    assert train.parse_args(["--no-group-by-length"]).group_by_length is False


def test_unset_flags_do_not_override_the_config_file() -> None:
    namespace = _subcommands()["train"].parse_args(["--lr", "0.5"])
    given = {f.name for f in fields(TrainConfig)} & set(vars(namespace))
    assert given == {"lr"}


def test_train_help_lists_every_field(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for f in fields(TrainConfig):
        assert re.search(r"--" + f.name.replace("_", "-") + r"(?![\w-])", text), f.name


def test_every_subcommand_help_exits_0(capsys: pytest.CaptureFixture) -> None:
    commands = _subcommands()
    assert {"train", "evaluate", "predict", "lengths", "score"} <= commands.keys()
    for name in commands:
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args([name, "--help"])
        assert info.value.code == 0, name
        assert f"usage: encoderkit {name}" in capsys.readouterr().out


def test_train_help_is_in_sections_with_defaults(capsys: pytest.CaptureFixture) -> None:
    from encoderkit.cli import FLAG_GROUPS

    grouped = [name for names in FLAG_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(f.name for f in fields(TrainConfig)), (
        "every field in exactly one section"
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    positions = [text.index(f"\n{title}:\n") for title in FLAG_GROUPS]
    assert positions == sorted(positions)
    assert re.search(
        r"--batch-size BATCH_SIZE\s+examples per optimizer step \(the global batch\);[^(]*`auto`: 32.*"
        r"\(default: auto\)",
        text,
        re.S,
    )


def test_a_run_lists_only_the_fields_it_reads() -> None:
    plain = config_with().applying()
    assert "lr" in plain and "text_pair_column" in plain
    assert not {"lora_r", "n_best", "doc_stride", "mlm_probability", "labels"} & set(plain)
    qa_lora = config_with(task="qa", strategy="lora").applying()
    assert {"n_best", "doc_stride", "lora_r", "merge"} <= set(qa_lora) and "text_pair_column" not in qa_lora
    ner = config_with(task="ner").applying()  # an alias reads as its task
    assert {"labels", "doc_stride"} <= set(ner) and "n_best" not in ner
    assert len(config_with().to_dict()) > len(plain)  # config.yaml keeps them all
