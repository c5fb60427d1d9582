"""Faults injected into real training runs of the tiny BERT, and what the run folder makes of them.

kill -9 at seven points of one run, SIGTERM and SIGINT, a second run on a busy folder, a full disk,
a diverging loss, a changed config or data: each ends with a clear outcome, and every resumed run
ends with exactly the weights, log and metrics of the uninterrupted run.

The runs that must die (kill -9, signals, the disk limit) are forked from a server that imported
encoderkit once (multiprocessing "forkserver"), so each costs a second, not a torch import.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoderkit.cli import main
from encoderkit.training import faults
from tests.conftest import sentiment_rows, write_jsonl

# 96 examples / batch 8 = 12 steps an epoch, 24 in all. Checkpoints at 5, 10, 12 (epoch end), 15,
# 20; evaluations at 0, 3, 6, ..., 24; log entries every 4 steps, so a resumed run must carry the
# loss sum of an unfinished logging window. Regression, best by eval mse: the training scores
# (4.5 / 0.5) pull the predictions from about 0 up towards their mean 2.5, while the eval scores
# (0.85 / 0.35) sit near 0.6, so eval mse falls for the first ~9 steps and then rises again: the
# best step changes during the run (best weights kept per step) and is never the last one,
# whatever the random encoder (a pearson-chosen best step was, on another CPU).
RUN = [
    "--task", "regression", "--label-column", "score", "--batch-size", "8", "--lr", "3e-3",
    "--eval-batch-size", "16", "--epochs", "2", "--save-steps", "5", "--eval-steps", "3",
    "--logging-steps", "4", "--metric-for-best", "mse",
]  # fmt: skip
# Figures that measure the machine, not the run: they differ between identical runs.
TIMED = {
    "eval_runtime_s", "examples_per_s", "train_runtime_s", "train_samples_per_s", "wall_time_s",
    "peak_memory_mb",
}  # fmt: skip
CHILD_TIMEOUT_S = 240


# --- runs ----------------------------------------------------------------------------------------


def score_rows(n: int, seed: int, scores: tuple[float, float] = (4.5, 0.5)) -> list[dict]:
    """Rows scored `scores[0]` when positive, `scores[1]` when negative."""
    return [
        {"text": r["text"], "score": scores[0] if r["label"] == "positive" else scores[1]}
        for r in sentiment_rows(n, seed=seed)
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("scores")
    return write_jsonl(folder / "train.jsonl", score_rows(96, 2)), write_jsonl(
        folder / "eval.jsonl", score_rows(32, 3, scores=(0.85, 0.35))
    )


def argv(tiny_model: str, files: tuple[Path, Path], output: Path, *extra: str) -> list[str]:
    train, dev = files
    return [
        "train",
        "--model",
        tiny_model,
        "--train",
        str(train),
        "--eval",
        str(dev),
        "--output",
        str(output),
        *RUN,
        *extra,
    ]


@pytest.fixture(scope="module")
def straight(tiny_model: str, files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every resumed run must reproduce."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert main(argv(tiny_model, files, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_step"] not in (None, metrics["steps"]), "the test wants a best step before the end"
    return out


@pytest.fixture(scope="module")
def forkserver() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    # What a run imports, lazily too, so that no child imports anything itself.
    lazily = ["encoderkit.tasks.sequence", "encoderkit.tasks.qa", "transformers.models.bert.modeling_bert"]
    lazily += ["matplotlib.backends.backend_agg"]
    context.set_forkserver_preload(["encoderkit.cli", "encoderkit.training.run", *lazily, __name__])
    return context


def _child(args: list[str], env: dict[str, str], output: str) -> None:
    """In the forked process: the CLI as `encoderkit` runs it, stdout and stderr to `output`."""
    os.environ.update(env)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    # A test run started in the background inherits an ignored SIGINT; a terminal user does not.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(args))


def start(context: ForkServerContext, args: list[str], output: Path, **env: str) -> BaseProcess:
    process = context.Process(target=_child, args=(args, env, str(output)))
    process.start()
    return process


def finish(process: BaseProcess) -> int:
    process.join(CHILD_TIMEOUT_S)
    if process.is_alive():
        process.kill()
        pytest.fail(f"run still going after {CHILD_TIMEOUT_S} s")
    assert process.exitcode is not None
    return process.exitcode


def wait_for_step(process: BaseProcess, run_dir: Path, step: int) -> None:
    """Until log.jsonl has an entry for `step` (the run is then paused there)."""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while time.monotonic() < deadline and process.is_alive():
        if any(e.get("step") == step for e in log_entries(run_dir)):
            return
        time.sleep(0.05)
    pytest.fail(f"the run did not reach step {step} (exit code {process.exitcode})")


# --- outcomes ------------------------------------------------------------------------------------


def log_entries(run_dir: Path) -> list[dict]:
    path = run_dir / "log.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.endswith("}")]


def untimed(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in TIMED}


def assert_same_run(run_dir: Path, straight: Path) -> None:
    a = load_file(str(straight / "model" / "model.safetensors"))
    b = load_file(str(run_dir / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"weights differ from the uninterrupted run: {differ[:3]}"
    assert [untimed(e) for e in log_entries(run_dir)] == [untimed(e) for e in log_entries(straight)]
    metrics = [untimed(json.loads((d / "metrics.json").read_text())) for d in (straight, run_dir)]
    assert metrics[0] == metrics[1]
    assert not (run_dir / "checkpoints").exists() and not (run_dir / ".lock").exists()


def checkpoints(run_dir: Path) -> list[str]:
    """The checkpoint folders (published or being written) of a run."""
    root = run_dir / "checkpoints"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "best") if root.is_dir() else []


def error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, text
    assert "Traceback" not in text, text
    return lines[0]


# --- kill -9 -------------------------------------------------------------------------------------

# (where the run dies, the published checkpoints it leaves): each run resumes the one before.
KILLS = [
    ("step:2", []),  # before the first checkpoint: --resume starts again from step 0
    ("best:3", []),  # while writing the first best weights
    ("checkpoint:5", [".tmp-step-5"]),  # the checkpoint written but not yet renamed into place
    ("publish:10", ["step-10", "step-5"]),  # renamed into place, the older one not yet pruned
    ("step:14", ["step-12"]),  # mid-epoch, after the epoch-end checkpoint
    ("eval:18", ["step-15"]),  # during an evaluation
    ("finish", ["step-20"]),  # model/ and report written, metrics.json not yet
]


def test_kill_9_at_seven_points_then_resume_gives_the_uninterrupted_run(
    tiny_model: str, files: tuple[Path, Path], straight: Path, forkserver: ForkServerContext, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    for i, (point, left) in enumerate(KILLS):
        args = argv(tiny_model, files, out, *(["--resume"] if i else []))
        code = finish(start(forkserver, args, tmp_path / f"kill-{i}.txt", **{faults.KILL_AT_ENV: point}))
        assert code == -signal.SIGKILL, (point, (tmp_path / f"kill-{i}.txt").read_text())
        assert not (out / "metrics.json").exists(), f"killed at {point}, the run looks finished"
        assert checkpoints(out) == left, point
    assert (out / "model" / "model.safetensors").exists(), "written before the last kill, redone now"
    assert main(argv(tiny_model, files, out, "--resume")) == 0
    assert_same_run(out, straight)


# --- signals and the lock ------------------------------------------------------------------------


def test_sigterm_saves_a_checkpoint_and_a_second_run_is_refused_meanwhile(
    tiny_model: str,
    files: tuple[Path, Path],
    straight: Path,
    forkserver: ForkServerContext,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    out, text = tmp_path / "run", tmp_path / "first.txt"
    first = start(forkserver, argv(tiny_model, files, out), text, **{faults.PAUSE_AT_STEP_ENV: "8"})
    try:
        wait_for_step(first, out, 8)
        capsys.readouterr()
        # Even --overwrite must not touch a folder another run is writing.
        assert main(argv(tiny_model, files, out, "--overwrite")) == 2
        assert error_line(capsys.readouterr().err) == (
            f"error: {out}: another encoderkit run is writing this folder (pid {first.pid})"
        )
        assert checkpoints(out) == ["step-5"]
        os.kill(first.pid, signal.SIGTERM)
        code = finish(first)
    finally:
        first.kill()
    assert code == 128 + signal.SIGTERM, text.read_text()
    assert error_line(text.read_text()) == (
        "error: stopped by SIGTERM after step 8, checkpoint saved; "
        "add --resume to the same command to continue"
    )
    assert checkpoints(out) == ["step-8"] and not (out / "metrics.json").exists()
    assert main(argv(tiny_model, files, out, "--resume")) == 0
    assert_same_run(out, straight)


def test_sigint_at_an_epoch_end_saves_a_checkpoint_that_resumes_into_the_epoch_end(
    tiny_model: str, files: tuple[Path, Path], straight: Path, forkserver: ForkServerContext, tmp_path: Path
) -> None:
    out, text = tmp_path / "run", tmp_path / "first.txt"
    first = start(forkserver, argv(tiny_model, files, out), text, **{faults.PAUSE_AT_STEP_ENV: "12"})
    try:
        wait_for_step(first, out, 12)
        os.kill(first.pid, signal.SIGINT)
        code = finish(first)
    finally:
        first.kill()
    assert code == 128 + signal.SIGINT, text.read_text()
    assert "stopped by SIGINT after step 12, checkpoint saved" in error_line(text.read_text())
    assert checkpoints(out) == ["step-12"]
    assert main(argv(tiny_model, files, out, "--resume")) == 0
    assert_same_run(out, straight)


# --- full disk -----------------------------------------------------------------------------------


def test_a_failing_disk_keeps_the_last_good_checkpoint_which_resumes(
    tiny_model: str, files: tuple[Path, Path], straight: Path, forkserver: ForkServerContext, tmp_path: Path
) -> None:
    out, text = tmp_path / "run", tmp_path / "first.txt"
    # From the checkpoint of step 10 on, every file write past 16 KiB fails (EFBIG, as ENOSPC would).
    run = start(forkserver, argv(tiny_model, files, out), text, **{faults.DISK_FULL_AT_STEP_ENV: "10"})
    assert finish(run) == 2, text.read_text()
    assert error_line(text.read_text()) == (
        f"error: {out / 'checkpoints' / '.tmp-step-10'}: File too large while writing the run; the last "
        f"good checkpoint is kept: {out / 'checkpoints' / 'step-5'}; make room (or fix the folder), then "
        "add --resume to the same command"
    )
    assert sorted(os.listdir(out / "checkpoints")) == ["best", "step-5"], "no half-written checkpoint"
    assert not (out / "metrics.json").exists()
    assert main(argv(tiny_model, files, out, "--resume")) == 0
    assert_same_run(out, straight)


def test_not_enough_free_space_is_reported_before_training(
    tiny_model: str,
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=100_000))
    out = tmp_path / "run"
    assert main(argv(tiny_model, files, out)) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {out}: not enough free disk space: the run needs about "), line
    assert line.endswith("for its checkpoints and model, 98 KB is free"), line
    assert not out.exists(), "nothing is left behind"


def test_an_output_that_cannot_be_created_is_reported_before_training(
    tiny_model: str, files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "a-file" / "run"
    assert main(argv(tiny_model, files, out)) == 2
    assert (
        error_line(capsys.readouterr().err) == f"error: {out}: cannot create the run folder (Not a directory)"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_is_reported_before_training(
    tiny_model: str, files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert main(argv(tiny_model, files, parent / "run")) == 2
    finally:
        parent.chmod(0o755)
    assert "cannot create the run folder (Permission denied)" in error_line(capsys.readouterr().err)


# --- diverging loss ------------------------------------------------------------------------------


@pytest.fixture
def nan_at_8(
    tiny_model: str,
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Path, str]]:
    """A run whose loss turns nan at step 8, after the checkpoint of step 5: (run folder, error line)."""
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setenv(faults.NAN_AT_STEP_ENV, "8")
        code = main(argv(tiny_model, files, out))
    assert code == 2
    yield out, error_line(capsys.readouterr().err)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_model: str, files: tuple[Path, Path], straight: Path, nan_at_8: tuple[Path, str]
) -> None:
    out, line = nan_at_8
    assert line == (
        "error: training loss is nan at step 8; "
        f"the last good checkpoint is kept: {out / 'checkpoints' / 'step-5'}; "
        "try a lower --lr (this run: 0.003) and add --resume --resume-force to continue from it, "
        "or --overwrite to start again"
    )
    assert checkpoints(out) == ["step-5"] and not (out / "metrics.json").exists()
    assert max(e["step"] for e in log_entries(out)) < 8
    assert main(argv(tiny_model, files, out, "--resume")) == 0
    assert_same_run(out, straight)


def test_an_absurd_learning_rate_stops_at_the_first_nan(
    tiny_model: str, files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    assert main(argv(tiny_model, files, out, "--lr", "1e30")) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: training ") and " at step " in line and "before any checkpoint" in line, (
        line
    )
    assert "(this run: 1e+30)" in line
    assert not (out / "metrics.json").exists()


# --- what a checkpoint was trained with ----------------------------------------------------------


def test_resume_refuses_other_data_or_config_unless_forced(
    tiny_model: str,
    files: tuple[Path, Path],
    nan_at_8: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    out, _ = nan_at_8
    dev = files[1]
    changed = write_jsonl(tmp_path / "changed.jsonl", score_rows(96, 2)[:-1] + score_rows(1, 9))
    assert main(argv(tiny_model, (changed, dev), out, "--resume")) == 2
    assert error_line(capsys.readouterr().err) == (
        f"error: --resume: the training data changed since the checkpoint (train: {changed}); "
        "use --resume-force to continue anyway"
    )
    assert main(argv(tiny_model, files, out, "--resume", "--lr", "1e-3")) == 2
    assert error_line(capsys.readouterr().err) == (
        "error: --resume: the config changed since the checkpoint (lr: 0.003 -> 0.001); "
        "use --resume-force to continue anyway"
    )
    assert checkpoints(out) == ["step-5"], "a refused resume changes nothing"
    assert main(argv(tiny_model, files, out, "--resume", "--lr", "1e-3", "--resume-force")) == 0
    assert "warning: --resume-force: lr: 0.003 -> 0.001" in capsys.readouterr().out
    assert (out / "metrics.json").exists()


def test_resume_with_moved_data_and_other_save_steps_is_the_same_run(
    tiny_model: str, files: tuple[Path, Path], straight: Path, nan_at_8: tuple[Path, str], tmp_path: Path
) -> None:
    # What does not change the result may differ: the data's path, how often checkpoints are saved.
    out, _ = nan_at_8
    train, dev = files
    moved = Path(shutil.copy(train, tmp_path / "moved.jsonl"))
    assert main(argv(tiny_model, (moved, dev), out, "--resume", "--save-steps", "7")) == 0
    assert_same_run(out, straight)
