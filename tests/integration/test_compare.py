"""`encoderkit compare` on a tiny BERT: every promised file, the table, and the pages in a browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoderkit.cli import main

STRATEGIES = ("full", "frozen", "lora", "scratch")


@pytest.fixture(scope="module")
def comparison(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    train, dev = sentiment_files
    out = tmp_path_factory.mktemp("compare") / "cmp"
    args = ["compare", "--model", tiny_model, "--train", train, "--eval", dev, "--output", str(out)]
    assert main([*args, "--batch-size", "16", "--epochs", "2", "--save-steps", "0"]) == 0
    return out


def test_compare_writes_every_promised_file(comparison: Path) -> None:
    for name in ("comparison.json", "report.html", "plots/loss.png", "plots/eval_accuracy.png"):
        assert (comparison / name).is_file(), name
    for strategy in STRATEGIES:
        for name in ("metrics.json", "report.html", "log.jsonl", "model/config.json"):
            assert (comparison / strategy / name).is_file(), (strategy, name)


def test_comparison_table_compares_like_with_like(comparison: Path) -> None:
    data = json.loads((comparison / "comparison.json").read_text())
    rows = {r["strategy"]: r for r in data["rows"]}
    assert list(rows) == list(STRATEGIES) and data["failed"] == [] and data["metric"] == "accuracy"
    for row in rows.values():
        for key in ("trainable_params", "trainable_pct", "train_runtime_s", "peak_memory_mb"):
            assert row[key] is not None and row[key] > 0, (row["strategy"], key)
        assert 0 <= row["accuracy"] <= 1 and row["before_accuracy"] is not None
    assert rows["full"]["total_params"] == rows["scratch"]["total_params"]
    assert rows["full"]["trainable_pct"] == rows["scratch"]["trainable_pct"] == 100
    assert (
        rows["frozen"]["trainable_params"]
        < rows["lora"]["trainable_params"]
        < rows["full"]["trainable_params"]
    )
    # Same data, seed and budget: every strategy saw the same number of examples.
    steps = {json.loads((comparison / s / "metrics.json").read_text())["steps"] for s in STRATEGIES}
    assert len(steps) == 1


def test_finished_comparison_is_not_overwritten_by_accident(
    comparison: Path, tiny_model: str, sentiment_files: tuple[str, str], capsys: pytest.CaptureFixture
) -> None:
    args = ["compare", "--model", tiny_model, "--train", sentiment_files[0], "--output", str(comparison)]
    assert main(args) == 2
    assert "already holds a finished comparison" in capsys.readouterr().err
    assert main([*args, "--strategies", "full,lasso"]) == 2
    assert "'lasso' is not one of" in capsys.readouterr().err


def _check_page(driver, page: Path, table_id: str) -> int:
    driver.get(page.as_uri())
    images = driver.find_elements("tag name", "img")
    widths = [
        driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) for i in images
    ]
    assert images and all(w and w > 0 for w in widths), widths
    table = driver.find_element("id", table_id)
    assert table.is_displayed() and table.size["height"] > 0
    return len(images)


def test_reports_render_in_a_real_browser(comparison: Path, chromium) -> None:
    """Every plot decodes (naturalWidth > 0) and the metrics table is visible, as a person would see it."""
    assert _check_page(chromium, comparison / "report.html", "comparison") == 2
    # A run report: loss, eval, lengths and confusion matrix plots.
    assert _check_page(chromium, comparison / "full" / "report.html", "metrics") == 4
    assert "Parameters" in chromium.page_source
    chromium.save_screenshot(str(comparison / "report-screenshot.png"))


def test_bad_data_stops_the_comparison_with_the_runs_error(
    tiny_model: str, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "a"}\n{"text": "no label"}\n')
    out = tmp_path / "cmp"
    args = ["compare", "--model", tiny_model, "--train", str(bad), "--output", str(out)]
    assert main([*args, "--strategies", "frozen,lora"]) == 2
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{bad}:2" in errors[0] and "Traceback" not in err
    assert not (out / "comparison.json").exists() and not (out / "lora").exists()
