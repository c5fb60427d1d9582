"""Strategies end to end through the CLI on a tiny BERT: LoRA merged and unmerged, warnings, step 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification

from encoderkit.cli import main
from encoderkit.inference.predictor import Predictor

FAST = ["--batch-size", "8", "--eval-batch-size", "32", "--epochs", "3", "--save-steps", "0"]


def _train(tiny_model: str, files: tuple[str, str], out: Path, *extra: str) -> Path:
    train, dev = files
    args = ["train", "--model", tiny_model, "--train", train, "--eval", dev, "--output", str(out)]
    assert main([*args, *FAST, *extra]) == 0
    return out


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def lora_runs(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The same LoRA run twice: merged into model/ (the default) and kept as an adapter."""
    root = tmp_path_factory.mktemp("lora")
    merged = _train(tiny_model, sentiment_files, root / "merged", "--strategy", "lora")
    adapter = _train(tiny_model, sentiment_files, root / "adapter", "--strategy", "lora", "--no-merge")
    return merged, adapter


def test_lora_run_saves_a_plain_merged_model(lora_runs: tuple[Path, Path]) -> None:
    merged, _ = lora_runs
    metrics = json.loads((merged / "metrics.json").read_text())
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert not (merged / "model" / "adapter_config.json").exists()
    model = AutoModelForSequenceClassification.from_pretrained(merged / "model")  # no PEFT needed
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert "lr: 0.001" in (merged / "config.yaml").read_text()  # the LoRA default learning rate


def test_unmerged_adapter_predicts_like_the_merged_model(
    lora_runs: tuple[Path, Path], sentiment_files: tuple[str, str]
) -> None:
    merged, adapter = lora_runs
    assert (adapter / "model" / "adapter_config.json").is_file()
    assert not (adapter / "model" / "model.safetensors").exists()
    texts = ["the film was great", "a really dull and boring book", "my meal"]
    a = Predictor.from_dir(merged / "model").predict_texts(texts)
    b = Predictor.from_dir(adapter / "model").predict_texts(texts)
    assert [p["label"] for p in a] == [p["label"] for p in b]
    for pa, pb in zip(a, b, strict=True):
        for label, prob in pa["probabilities"].items():
            assert prob == pytest.approx(pb["probabilities"][label], abs=1e-5)


def test_every_eval_curve_starts_at_step_0(lora_runs: tuple[Path, Path]) -> None:
    evals = [e for e in _log(lora_runs[0]) if "eval_accuracy" in e]
    assert evals[0]["step"] == 0
    assert len(evals) == 4  # step 0 and one per epoch
    metrics = json.loads((lora_runs[0] / "metrics.json").read_text())
    assert metrics["best_step"] > 0  # the untrained model is reported, never selected


def test_lora_settings_that_cannot_learn_are_flagged(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _train(
        tiny_model, sentiment_files, tmp_path / "run", "--strategy", "lora", "--lora-r", "8",
        "--lora-alpha", "1", "--lr", "2e-5", "--epochs", "1",
    )  # fmt: skip
    warnings = [e["warning"] for e in _log(run) if "warning" in e]
    assert any("alpha/r" in w for w in warnings)
    assert any("may not be learning" in w for w in warnings)
    assert "warning: LoRA scaling" in capsys.readouterr().out
    report = (run / "report.html").read_text()
    assert "LoRA scaling" in report and "may not be learning" in report


def test_lora_and_frozen_for_qa(tiny_model: str, tmp_path: Path) -> None:
    """QA trains its span head under both strategies; LoRA leaves the embeddings as they were."""
    import torch
    from transformers import AutoModelForQuestionAnswering, BertModel

    from tests.integration.test_qa_cli import predict, qa_records, train_qa, write_squad

    records = qa_records(16, seed=5)
    train = write_squad(tmp_path / "train.json", records)
    base = BertModel.from_pretrained(tiny_model)
    for strategy in ("lora", "frozen"):
        out = tmp_path / strategy
        train_qa(tiny_model, train, out, "--eval", train, "--strategy", strategy, "--epochs", "2")
        model = AutoModelForQuestionAnswering.from_pretrained(out / "model")
        assert torch.equal(
            model.bert.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight
        )
        query = model.bert.encoder.layer[0].attention.self.query.weight
        # Merged LoRA moved the adapted layers; frozen left the encoder exactly as it was.
        assert torch.equal(query, base.encoder.layer[0].attention.self.query.weight) == (strategy == "frozen")
        rows, official = predict(out / "model", records[:4], tmp_path)
        assert len(rows) == 4 and set(official) == {r["id"] for r in records[:4]}
