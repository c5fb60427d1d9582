"""End to end through the real CLI on a tiny random BERT: files, metrics, learning, reload, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from encoderkit.cli import main
from encoderkit.features.batches import token_budget_batches
from tests.conftest import sentiment_rows, write_jsonl

FAST = ["--batch-size", "8", "--lr", "3e-3", "--eval-batch-size", "16"]


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def train_args(tiny_model: str, train: str, output: Path, *extra: str) -> list[str]:
    return ["train", "--model", tiny_model, "--train", train, "--output", str(output), *FAST, *extra]


@pytest.fixture(scope="module")
def finished_run(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    train, dev = sentiment_files
    out = tmp_path_factory.mktemp("runs") / "run"
    assert (
        run_cli(*train_args(tiny_model, train, out, "--eval", dev, "--epochs", "8", "--eval-steps", "24"))
        == 0
    )
    return out


def test_run_folder_holds_every_promised_file(finished_run: Path) -> None:
    for name in ("config.yaml", "metrics.json", "log.jsonl", "report.html", "model/README.md"):
        assert (finished_run / name).is_file(), name
    for name in ("config.json", "model.safetensors", "tokenizer.json", "encoderkit.json"):
        assert (finished_run / "model" / name).is_file(), name
    assert not (finished_run / "checkpoints").exists(), "checkpoints are removed at the end"
    metrics = json.loads((finished_run / "metrics.json").read_text())
    promised = {
        "accuracy",
        "f1",
        "mcc",
        "train_runtime_s",
        "train_samples_per_s",
        "trainable_params",
        "total_params",
    }
    assert promised <= metrics.keys()
    assert metrics["trainable_params"] == metrics["total_params"] > 0
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_log_has_training_and_eval_entries(finished_run: Path) -> None:
    entries = [json.loads(line) for line in (finished_run / "log.jsonl").read_text().splitlines()]
    train_entries = [e for e in entries if "loss" in e]
    eval_entries = [e for e in entries if "eval_accuracy" in e]
    assert train_entries and all({"step", "epoch", "loss", "lr"} <= e.keys() for e in train_entries)
    # 96 examples / batch 8 = 12 steps per epoch, 96 steps, eval before training and every 24.
    assert [e["step"] for e in eval_entries] == [0, 24, 48, 72, 96]
    steps = [e["step"] for e in train_entries]
    assert steps == sorted(steps) and steps[-1] == 96


def test_model_learns_the_toy_task(finished_run: Path) -> None:
    metrics = json.loads((finished_run / "metrics.json").read_text())
    entries = [json.loads(line) for line in (finished_run / "log.jsonl").read_text().splitlines()]
    best = max(e["eval_accuracy"] for e in entries if "eval_accuracy" in e)
    assert metrics["accuracy"] == pytest.approx(best), "metrics.json reports the best checkpoint"
    assert metrics["accuracy"] >= 0.8


def test_config_yaml_is_resolved_and_rerunnable(finished_run: Path, tmp_path: Path) -> None:
    saved = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert isinstance(saved["max_length"], int) and saved["metric_for_best"] == "accuracy"
    again = tmp_path / "again"
    assert run_cli("train", "--config", finished_run / "config.yaml", "--output", again) == 0
    first = json.loads((finished_run / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    assert second["accuracy"] == first["accuracy"] and second["mcc"] == first["mcc"]


def test_saved_model_reloads_and_predicts_the_same_labels(
    finished_run: Path, sentiment_files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, dev = sentiment_files
    out = tmp_path / "pred.jsonl"
    assert run_cli("predict", "--model", finished_run / "model", "--input", dev, "--output", out) == 0
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    rows = [json.loads(line) for line in Path(dev).read_text().splitlines()]
    assert len(predictions) == len(rows)
    # Reload with plain transformers: the same labels, by name, as `encoderkit predict`.
    model = AutoModelForSequenceClassification.from_pretrained(finished_run / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(finished_run / "model")
    with torch.no_grad():
        logits = model(**tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")).logits
    names = [model.config.id2label[i] for i in logits.argmax(-1).tolist()]
    assert [p["label_name"] for p in predictions] == names
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-4 for p in predictions)
    # `evaluate` on the eval file reproduces the metrics of the run.
    capsys.readouterr()
    assert run_cli("evaluate", "--model", finished_run / "model", "--data", dev) == 0
    evaluated = json.loads(capsys.readouterr().out)
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(metrics["accuracy"])
    assert evaluated["examples"] == len(rows)


def test_loss_falls_when_overfitting_16_examples(tiny_model: str, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t16.jsonl", sentiment_rows(16, seed=5))
    out = tmp_path / "overfit"
    args = train_args(tiny_model, str(train), out, "--epochs", "60", "--logging-steps", "2")
    assert run_cli(*args) == 0
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.25 * losses[0], losses


def test_regression_task(tiny_model: str, tmp_path: Path) -> None:
    rows = [{"sentence1": r["text"], "sentence2": "it was", "score": 4.5 if r["label"] == "positive" else 0.5}
            for r in sentiment_rows(48, seed=7)]  # fmt: skip
    train = write_jsonl(tmp_path / "sts.jsonl", rows)
    out = tmp_path / "reg"
    args = train_args(tiny_model, str(train), out, "--task", "regression", "--eval", str(train))
    assert run_cli(*args, "--label-column", "score", "--epochs", "8") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"pearson", "spearman"} <= metrics.keys()
    assert metrics["pearson"] > 0.5
    meta = json.loads((out / "model" / "encoderkit.json").read_text())
    assert meta["columns"] == {"text": "sentence1", "text_pair": "sentence2", "label": "score"}


def test_three_string_labels_from_tsv(tiny_model: str, tmp_path: Path) -> None:
    lines = ["sentence\tlabel"] + [f"{r['text']} {i % 3}\t{['neg', 'neu', 'pos'][i % 3]}"
                                   for i, r in enumerate(sentiment_rows(30))]  # fmt: skip
    train = tmp_path / "three.tsv"
    train.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "three"
    assert run_cli(*train_args(tiny_model, str(train), out, "--eval", str(train), "--epochs", "1")) == 0
    config = json.loads((out / "model" / "config.json").read_text())
    assert list(config["id2label"].values()) == ["neg", "neu", "pos"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_resume_after_kill_reproduces_uninterrupted_weights(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path: Path
) -> None:
    train, dev = sentiment_files
    common = ["--eval", dev, "--epochs", "2", "--save-steps", "5", "--eval-steps", "6"]
    straight = tmp_path / "straight"
    assert run_cli(*train_args(tiny_model, train, straight, *common)) == 0

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "encoderkit", *train_args(tiny_model, train, killed, *common)]
    env = {**os.environ, "ENCODERKIT_KILL_AT_STEP": "13"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert not (killed / "metrics.json").exists(), "a killed run must not look finished"
    assert (killed / "checkpoints" / "step-12").is_dir()  # epoch end (12 steps/epoch); step-10 pruned

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    log_a = (straight / "log.jsonl").read_text().splitlines()
    log_b = (killed / "log.jsonl").read_text().splitlines()
    assert _without_timings(log_a) == _without_timings(log_b)


def test_token_budget_batches_train_and_resume_exactly(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path: Path
) -> None:
    train, dev = sentiment_files
    budget = ["--batch-tokens", "64", "--max-length", "64"]  # the toy rows are 6-16 tokens: none cut
    common = ["--eval", dev, "--epochs", "2", "--save-steps", "4", "--eval-steps", "6", *budget]
    straight = tmp_path / "straight"
    assert run_cli(*train_args(tiny_model, train, straight, *common)) == 0
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = [json.loads(line)["text"] for line in Path(train).read_text().splitlines()]
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    per_epoch = len(token_budget_batches(lengths, 64, seed=42, epoch=0))
    metrics = json.loads((straight / "metrics.json").read_text())
    assert metrics["steps"] == 2 * per_epoch and per_epoch != 96 // 8  # not --batch-size's 12
    assert yaml.safe_load((straight / "config.yaml").read_text())["batch_tokens"] == 64

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "encoderkit", *train_args(tiny_model, train, killed, *common)]
    env = {**os.environ, "ENCODERKIT_KILL_AT_STEP": str(per_epoch + 2)}  # in the second epoch
    assert subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300).returncode == -9
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(straight), _weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    log_a = (straight / "log.jsonl").read_text().splitlines()
    assert _without_timings(log_a) == _without_timings((killed / "log.jsonl").read_text().splitlines())


def _without_timings(lines: list[str]) -> list[dict]:
    timed = ("eval_runtime_s", "examples_per_s")
    return [{k: v for k, v in json.loads(line).items() if k not in timed} for line in lines]


def test_a_second_run_reads_the_tokenized_data_from_the_cache(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # New files: the cache key holds their path and content, so the first run cannot hit an entry
    # of another test.
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(48, seed=11))
    dev = write_jsonl(tmp_path / "dev.jsonl", sentiment_rows(16, seed=12))
    common = ["--eval", str(dev), "--max-steps", "6", "--eval-steps", "3"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_cli(*train_args(tiny_model, str(train), first, *common)) == 0
    assert "tokenized data: cached for next time" in capsys.readouterr().out
    # A new process: it inherits ENCODERKIT_CACHE (the session's folder, set in conftest.py).
    cmd = [sys.executable, "-m", "encoderkit", *train_args(tiny_model, str(train), second, *common)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "tokenized data: from cache" in proc.stdout
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (first, second)]
    timed = ("train_runtime_s", "train_samples_per_s", "wall_time_s", "peak_memory_mb")
    untimed = [{k: v for k, v in m.items() if k not in timed} for m in metrics]
    assert "accuracy" in untimed[0] and untimed[0] == untimed[1]
    log_a, log_b = ((run / "log.jsonl").read_text().splitlines() for run in (first, second))
    assert _without_timings(log_a) == _without_timings(log_b)
    a, b = _weights(first), _weights(second)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_model_card_names_its_sources_without_local_paths(finished_run: Path) -> None:
    """Safe to publish: the base model and the data by their own names, no folder of this machine."""
    card = (finished_run / "model" / "README.md").read_text()
    assert "/tmp" not in card and str(Path.home()) not in card and str(finished_run.parent) not in card
    assert "- Training data: `train.jsonl`" in card and "- Evaluation data: `eval.jsonl`" in card
    assert "base_model: tiny-bert" in card  # the local base model's folder name (tiny-bert0, ...)
    report = (finished_run / "report.html").read_text()
    assert "<td>lr</td>" in report and "<td>lora_r</td>" not in report and "<td>n_best</td>" not in report
    assert "<td>unpadded</td>" not in report  # how it ran, not a metric
    assert "<td>f1 (positive class: positive)</td>" in report


def test_a_bundled_model_is_named_by_its_hub_id() -> None:
    from encoderkit.modeling import published_name

    assert published_name("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert published_name("bert-base-uncased") == "bert-base-uncased"  # a Hub id: as it is
    assert published_name("glue/mrpc:train") == "glue/mrpc:train"


def test_a_plan_too_short_to_learn_is_said_up_front(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """40 rows at batch 32 for 3 epochs: 6 optimizer steps, said up front. The defaults (batch
    and epochs `auto`) give them batch 8 and 6 epochs, 30 steps, and say so."""
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(40, seed=4))
    capsys.readouterr()
    args = ["train", "--model", tiny_model, "--train", train, "--output", tmp_path / "run"]
    assert run_cli(*args, "--epochs", "3", "--batch-size", "32") == 0
    printed = capsys.readouterr().out
    assert "warning: only 6 optimizer steps (40 examples, batch 32, 3 epochs)" in printed
    warnings = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [w["step"] for w in warnings if "warning" in w and "optimizer steps" in w["warning"]] == [0]
    assert run_cli(*args[:-1], tmp_path / "auto") == 0
    printed = capsys.readouterr().out
    assert "batch size: auto -> 8 (40 examples;" in printed
    assert "epochs: auto -> 6 (40 examples, 5 steps an epoch;" in printed
    assert "optimizer steps" not in printed
    assert json.loads((tmp_path / "auto" / "metrics.json").read_text())["steps"] == 30
    assert yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["batch_size"] == 8
