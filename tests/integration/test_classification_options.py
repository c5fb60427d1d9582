"""The classification options of a first run, end to end on the tiny model: `--eval-split`,
`--class-weights`, `--multi-label` (train, evaluate, predict, serve)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from encoderkit.cli import main
from encoderkit.inference.predictor import Predictor
from encoderkit.serving.app import create_app
from tests.conftest import sentiment_rows, write_jsonl
from tests.integration.test_serve import LIMITED, running

FAST = ["--batch-size", "8", "--lr", "3e-3", "--eval-batch-size", "16"]


def train(tiny_model: str, data: Path, output: Path, *extra: str) -> dict[str, Any]:
    args = ["train", "--model", tiny_model, "--train", data, "--output", output, *FAST, *extra]
    assert main([str(a) for a in args]) == 0
    return json.loads((output / "metrics.json").read_text())


def test_eval_split_holds_out_a_stratified_seeded_share(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(96, seed=2))
    metrics = train(tiny_model, data, tmp_path / "run", "--eval-split", "0.25", "--max-steps", "6")
    assert "accuracy" in metrics  # there was an eval set: the hold-out
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["eval_split"] == 0.25
    report = (tmp_path / "run" / "report.html").read_text()
    assert "24 (25% of --train held out, stratified by label, seed 42)" in report
    # 72 examples trained on: batch 8, 9 steps an epoch.
    assert "72" in report.split("train examples", 1)[1][:60]
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "Evaluation data: `25% of train.jsonl (seed 42)`" in card and str(tmp_path) not in card


def test_class_weights_are_trained_with_and_reported(tiny_model: str, tmp_path: Path) -> None:
    rows = [r for r in sentiment_rows(120, seed=5) if r["label"] == "negative"][:45]
    rows += [r for r in sentiment_rows(40, seed=6) if r["label"] == "positive"][:15]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    plain = train(tiny_model, data, tmp_path / "plain", "--max-steps", "8", "--eval-split", "0.2")
    weighted = train(
        tiny_model, data, tmp_path / "weighted", "--max-steps", "8", "--eval-split", "0.2",
        "--class-weights", "balanced",
    )  # fmt: skip
    report = (tmp_path / "weighted" / "report.html").read_text()
    # 48 trained examples, 36 negative and 12 positive: 48 / (2 x 36) and 48 / (2 x 12).
    assert "negative 0.667, positive 2 (balanced)" in report
    plain_log = (tmp_path / "plain" / "log.jsonl").read_text()
    assert plain_log != (tmp_path / "weighted" / "log.jsonl").read_text()  # the loss changed
    assert set(plain) == set(weighted)


def multi_label_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Sentiment as one label, and `media` for texts about a film or a book: 0, 1 or 2 labels."""
    rows = []
    for r in sentiment_rows(n, seed):
        labels = [r["label"]] if r["label"] == "positive" else []
        if "film" in r["text"] or "book" in r["text"]:
            labels.append("media")
        rows.append({"text": r["text"], "tags": labels})
    return rows


@pytest.fixture(scope="module")
def multi_label_run(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("multi-label")
    data = write_jsonl(folder / "train.jsonl", multi_label_rows(120, seed=1))
    dev = write_jsonl(folder / "eval.jsonl", multi_label_rows(40, seed=2))
    args = ["--eval", dev, "--label-column", "tags", "--multi-label", "--multi-label-threshold", "tune"]
    train(tiny_model, data, folder / "run", *args, "--epochs", "3")
    return folder / "run", dev


def test_multi_label_saves_tuned_thresholds_and_evaluate_agrees(
    multi_label_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, dev = multi_label_run
    metrics = json.loads((run / "metrics.json").read_text())
    meta = json.loads((run / "model" / "encoderkit.json").read_text())
    assert meta["task"] == "multi-label" and meta["label_names"] == ["media", "positive"]
    assert len(meta["thresholds"]) == 2 and all(0 < t < 1 for t in meta["thresholds"])
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run / "model"), "--data", str(dev)]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # The saved model decides at the tuned thresholds: what the run measured at them.
    assert evaluated["micro_f1"] == pytest.approx(metrics["tuned_micro_f1"], abs=1e-6)
    assert evaluated["examples"] == 40
    assert "Per label (final evaluation)" in (run / "report.html").read_text()


def test_multi_label_predict_and_serve_give_the_labels_over_their_thresholds(
    multi_label_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = multi_label_run
    thresholds = json.loads((run / "model" / "encoderkit.json").read_text())["thresholds"]
    texts = [{"text": "the film was superb"}, {"text": "a dull meal"}, {"text": "my book is awful"}]
    source = write_jsonl(tmp_path / "in.jsonl", texts)
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--model", str(run / "model"), "--input", str(source), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:
        chosen = [
            n for n, t in zip(["media", "positive"], thresholds, strict=True) if row["probabilities"][n] >= t
        ]
        assert row["labels"] == chosen
    with running(create_app(Predictor.load(str(run / "model")), LIMITED)) as url:
        answer = httpx.post(f"{url}/v1/predict", json={"inputs": texts}, timeout=30)
        info = httpx.get(f"{url}/v1/info", timeout=30).json()
    assert answer.status_code == 200
    served = answer.json()["predictions"]
    assert [p["labels"] for p in served] == [r["labels"] for r in rows]
    assert info["task"] == "multi-label" and set(info["multi_label"]["thresholds"]) == {"media", "positive"}


def test_multi_label_reads_a_separated_column_and_names_bad_labels(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        "text,tags",
        "the film was great,positive|media",
        "a dull meal,",
        "my book is fine,media|positive",
    ]
    lines += [f"{r['text']},{'|'.join(r['tags'])}" for r in multi_label_rows(20, seed=3)]
    data = tmp_path / "train.csv"
    data.write_text("\n".join(lines) + "\n")
    args = ["--label-column", "tags", "--multi-label", "--label-separator", "|", "--max-steps", "2"]
    train(tiny_model, data, tmp_path / "run", *args)
    meta = json.loads((tmp_path / "run" / "model" / "encoderkit.json").read_text())
    assert meta["label_names"] == ["media", "positive"] and meta["label_separator"] == "|"
    dev = tmp_path / "dev.csv"
    dev.write_text("text,tags\nthe film was great,positive|sport\n")
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "run" / "model"), "--data", str(dev)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {dev}:2: label 'sport' never appears in the training data (labels: ['media', 'positive'])"
    )
