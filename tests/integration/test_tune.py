"""`encoderkit tune` on the tiny model: masked-LM perplexity is the objective (it falls within a
few steps at a usable learning rate and stays put at a tiny one, so trials differ for sure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from encoderkit.cli import main  # noqa: E402
from encoderkit.config import build_config  # noqa: E402
from encoderkit.errors import UserError  # noqa: E402
from encoderkit.tune import STUDY, read_space, tune  # noqa: E402
from tests.conftest import sentiment_rows, write_jsonl  # noqa: E402

RUN = ["--task", "mlm", "--batch-size", "8", "--max-length", "32", "--max-steps", "8", "--eval-steps", "4"]


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("tune-data")
    train = write_jsonl(folder / "train.jsonl", sentiment_rows(64, seed=2))
    dev = write_jsonl(folder / "dev.jsonl", sentiment_rows(24, seed=3))
    return str(train), str(dev)


def tune_args(tiny_model: str, texts: tuple[str, str], space: Path, output: Path, *extra: str) -> list[str]:
    train, dev = texts
    return [
        "tune", "--model", tiny_model, "--train", train, "--eval", dev, "--space", str(space),
        "--output", str(output), *RUN, *extra,
    ]  # fmt: skip


def test_a_killed_search_resumes_to_its_trials_and_names_the_best(
    tiny_model: str, texts: tuple[str, str], tmp_path: Path
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 1.0e-4, high: 1.0e-2, log: true}\nwarmup_ratio: [0.0, 0.1]\n")
    folder = tmp_path / "search"
    cmd = [
        sys.executable,
        "-m",
        "encoderkit",
        *tune_args(tiny_model, texts, space, folder, "--trials", "4", "--pruner", "none"),
    ]
    killed = subprocess.run(
        cmd, env={**os.environ, "ENCODERKIT_KILL_AT": "trial:2"}, capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == -9, killed.stderr
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "trial 2 was interrupted: its parameters run again" in resumed.stdout

    trials = json.loads((folder / "trials.json").read_text())["trials"]
    complete = [t for t in trials if t["state"] == "complete"]
    assert [t["trial"] for t in complete] == [0, 1, 3, 4]  # 2 was killed; 3 re-ran its parameters
    assert [t["state"] for t in trials if t["trial"] == 2] == ["fail"]
    by_number = {t["trial"]: t for t in trials}
    assert (by_number[3]["lr"], by_number[3]["warmup_ratio"]) == (
        by_number[2]["lr"],
        by_number[2]["warmup_ratio"],
    )
    assert sorted(p.name for p in (folder / "trials").iterdir()) == ["000", "001", "003", "004"]
    for t in complete:  # each trial a finished run: its own seed, its value its run's metric
        run = folder / "trials" / t["folder"]
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 42 + t["trial"]
        assert json.loads((run / "metrics.json").read_text())["perplexity"] == pytest.approx(t["value"])

    best = min(complete, key=lambda t: t["value"])  # perplexity: lower is better
    again = yaml.safe_load((folder / "best.yaml").read_text())
    assert again["lr"] == pytest.approx(best["lr"]) and again["seed"] == 42 + best["trial"]
    assert again["output"] == str(folder / "best") and build_config({}, again).task == "mlm"
    summary = json.loads(resumed.stdout.strip().splitlines()[-3])
    assert summary["best_trial"] == best["trial"] and summary["COMPLETE"] == 4
    report = (folder / "report.html").read_text()
    assert '<table id="trials">' in report and report.count("<img") >= 2


def test_the_median_pruner_stops_a_bad_trial_early(
    tiny_model: str, texts: tuple[str, str], tmp_path: Path
) -> None:
    """Trials 0 and 1 learn (lr 3e-3); trial 2's lr is 1e-9, so its perplexity stays at the
    untrained model's, above the median of the others at its first evaluation: pruned there."""
    train, dev = texts
    space = tmp_path / "space.yaml"
    space.write_text("lr: [0.003, 1.0e-9]\n")
    folder = tmp_path / "search"
    folder.mkdir()
    storage = f"sqlite:///{folder / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name=STUDY, direction="minimize")
    for lr in (3e-3, 3e-3, 1e-9):
        study.enqueue_trial({"lr": lr})
    values = {"model": tiny_model, "train": train, "eval": dev, "output": str(folder), "resume": True}
    values.update(task="mlm", batch_size=8, max_length=32, max_steps=8, eval_steps=4)
    base = build_config({}, values)
    result = tune(base, read_space(str(space), base), trials=3, echo=lambda _line: None)
    assert result.counts == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 0}
    pruned = [t for t in json.loads((folder / "trials.json").read_text())["trials"] if t["state"] == "pruned"]
    assert [(t["trial"], t["lr"], t["last_step"]) for t in pruned] == [(2, 1e-9, 4)]
    log = (folder / "trials" / "002" / "log.jsonl").read_text().splitlines()
    assert max(json.loads(line)["step"] for line in log) == 4  # stopped at step 4 of 8


def test_a_bad_space_is_refused_before_any_trial(
    tiny_model: str, texts: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = build_config(
        {}, {"model": tiny_model, "train": texts[0], "eval": texts[1], "output": str(tmp_path / "s")}
    )
    cases = {
        "lr: {low: 1.0e-2, high: 1.0e-4}\n": "lr: needs low < high",
        "seed: [1, 2]\n": "'seed' cannot be searched",
        "lerning_rate: [0.1]\n": "'lerning_rate' is not a config field",
        "strategy: [full, lora, sideways]\n": "strategy = 'sideways': field 'strategy'",
    }
    for text, message in cases.items():
        space = tmp_path / "space.yaml"
        space.write_text(text)
        with pytest.raises(UserError, match=message):
            read_space(str(space), base)
    capsys.readouterr()
    assert main(tune_args(tiny_model, texts, tmp_path / "missing.yaml", tmp_path / "s")) == 2
    assert "missing.yaml: search space file not found" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_best_yaml_of_a_trial_run_on_another_machine_is_the_search_config_with_its_parameters(
    tiny_model: str, texts: tuple[str, str], tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from encoderkit.tune import _write_best

    base = build_config(
        {}, {"model": tiny_model, "train": texts[0], "eval": texts[1], "output": str(tmp_path)}
    )
    elsewhere = SimpleNamespace(
        params={"lr": 0.002}, user_attrs={"folder": "/elsewhere/trials/007", "seed": 49}
    )
    _write_best(elsewhere, base, tmp_path)
    again = build_config({}, yaml.safe_load((tmp_path / "best.yaml").read_text()))
    assert (again.lr, again.seed, again.output, again.train) == (0.002, 49, str(tmp_path / "best"), texts[0])
