"""2-process training on CPU (gloo), launched with torchrun as a user would, against 1 process.

The global-batch rule makes a 2-process run compute the same optimizer steps as a 1-process run
with the same `--batch-size`; only float rounding differs (other batch shapes, a gradient
all-reduce). Dropout is off in the model used here, so the two runs can be compared.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import sentiment_rows, write_jsonl
from tests.integration.test_qa_cli import WINDOW, qa_records, write_squad
from tests.integration.test_token_cli import write_conll

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
        reason="torch.distributed with the gloo backend is needed",
    ),
]

TIMEOUT_S = 240
# 81 training rows at batch 10: the last step holds one example, so one rank has none (and must
# still join the gradient all-reduce); 33 eval rows at eval batch 4 split unevenly over 2 ranks.
CLASSIFICATION = ["--task", "classification", "--batch-size", "10", "--epochs", "2", "--lr", "5e-3"]
QA = ["--task", "qa", "--batch-size", "8", "--max-steps", "6", "--lr", "3e-3", *WINDOW]
NER = ["--task", "ner", "--batch-size", "10", "--epochs", "2", "--lr", "5e-3"]
# One text per sequence: 81 sequences, so the last batch is short here too.
MLM = [
    "--task",
    "mlm",
    "--line-by-line",
    "--max-length",
    "32",
    "--batch-size",
    "10",
    "--epochs",
    "2",
    "--lr",
    "5e-3",
]
TASKS = {"cls": CLASSIFICATION, "qa": QA, "ner": NER, "mlm": MLM}
COMMON = ["--eval-batch-size", "4", "--logging-steps", "1", "--eval-steps", "3", "--save-steps", "2"]
REL = 1e-4
ACCELERATE = Path(sys.executable).with_name("accelerate")


@pytest.fixture(scope="module")
def model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny BERT without dropout: otherwise each process draws its own masks."""
    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("distributed-data")
    return {
        "cls_train": write_jsonl(folder / "train.jsonl", sentiment_rows(81, seed=2)),
        "cls_eval": write_jsonl(folder / "eval.jsonl", sentiment_rows(33, seed=3)),
        "qa_train": write_squad(folder / "train.json", qa_records(30, seed=4)),
        "qa_eval": write_squad(folder / "eval.json", qa_records(13, seed=5)),
        "ner_train": write_conll(folder / "train.conll", 81, seed=6),
        "ner_eval": write_conll(folder / "eval.conll", 33, seed=7),
        "mlm_train": texts(folder / "train.txt", sentiment_rows(81, seed=8)),
        "mlm_eval": texts(folder / "eval.txt", sentiment_rows(33, seed=9)),
    }


def texts(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(r["text"] + "\n" for r in rows))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launcher(procs: int, accelerate: bool) -> list[str]:
    if procs == 1:
        return [sys.executable, "-m", "encoderkit"]
    port = str(free_port())
    if accelerate:
        # `--multi_gpu` is Accelerate's torch-elastic launcher; on a CPU-only machine encoderkit
        # then sets up gloo. (`--cpu --num_processes N` would start one process, or need mpirun.)
        cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", str(procs), "--num_machines", "1"]
        return [
            *cmd,
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            port,
            "-m",
            "encoderkit",
        ]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs)]
    return [*cmd, "--master_port", port, "-m", "encoderkit"]


def train(
    procs: int,
    model: str,
    train: Path,
    evals: Path,
    out: Path,
    args: list[str],
    accelerate: bool = False,
    **env: str,
) -> subprocess.CompletedProcess:
    cmd = [
        *launcher(procs, accelerate),
        "train",
        "--model",
        model,
        "--train",
        str(train),
        "--eval",
        str(evals),
    ]
    cmd += ["--output", str(out), *args, *COMMON]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    # Away from the user's default Accelerate config file, which would change the launch.
    full_env["HF_HOME"] = str(out.parent / "hf-home")
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=TIMEOUT_S)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def losses(run: Path) -> list[float]:
    return [e["loss"] for e in log(run) if "loss" in e]


def evals(run: Path) -> list[dict[str, Any]]:
    return [e for e in log(run) if any(k.startswith("eval_") for k in e)]


def metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(model: str, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every task, each with 1 and with 2 processes; the 2-process stdout too."""
    root = tmp_path_factory.mktemp("distributed-runs")
    out: dict[str, Any] = {}
    for task, args in TASKS.items():
        for procs in (1, 2):
            run = root / f"{task}-{procs}"
            result = ok(train(procs, model, data[f"{task}_train"], data[f"{task}_eval"], run, args))
            out[f"{task}-{procs}"], out[f"{task}-{procs}-stdout"] = run, result.stdout
    return out


def assert_same_run(one: Path, two: Path) -> None:
    assert losses(two) == pytest.approx(losses(one), rel=REL)
    assert [e["step"] for e in evals(two)] == [e["step"] for e in evals(one)]
    for a, b in zip(evals(one), evals(two), strict=True):
        scores = {k: v for k, v in a.items() if k.startswith("eval_") and k != "eval_runtime_s"}
        assert {k: b[k] for k in scores} == pytest.approx(scores, rel=REL, abs=1e-6)
    final_one, final_two = metrics(one), metrics(two)
    for key in ("steps", "best_step"):
        assert final_two[key] == final_one[key]
    for key, value in final_one.items():
        if key.startswith(("accuracy", "f1", "mcc", "exact_match", "eval_loss", "perplexity", "precision")):
            assert final_two[key] == pytest.approx(value, rel=REL, abs=1e-6), key


@pytest.mark.parametrize("task", list(TASKS))
def test_two_processes_train_like_one(runs: dict[str, Any], task: str) -> None:
    one, two = runs[f"{task}-1"], runs[f"{task}-2"]
    assert_same_run(one, two)
    # One run folder, written once: no checkpoints left, one summary printed.
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert not (two / "checkpoints").exists()
    assert runs[f"{task}-2-stdout"].count("report:") == 1
    assert metrics(two)["train_samples_per_s"] > 0
    w1, w2 = weights(one), weights(two)
    # A constant added to every position's start/end logit leaves QA's softmax unchanged, so these
    # two get a gradient that is zero up to float noise, which Adam scales up to ~lr per step.
    noise_only = {"qa_outputs.bias", "bert.encoder.layer.1.output.LayerNorm.bias"}
    differ = [k for k in w1 if not torch.allclose(w1[k], w2[k], rtol=1e-3, atol=1e-5)]
    assert set(differ) <= noise_only, differ


@pytest.mark.parametrize("task", ["ner", "mlm"])
def test_micro_batches_weigh_per_token_losses_by_their_tokens(
    model: str, data: dict[str, Path], tmp_path: Path, task: str
) -> None:
    """A per-token loss is a mean over labelled tokens: `--grad-accum 2` (micro-batches with
    different token counts) gives the steps of one micro-batch, not a mean of two means. (Not
    grouped by length, so both runs cut one shuffled order into the same steps.)"""
    args = [*TASKS[task], "--no-group-by-length"]
    one, accum = tmp_path / "one", tmp_path / "accum"
    ok(train(1, model, data[f"{task}_train"], data[f"{task}_eval"], one, args))
    ok(train(1, model, data[f"{task}_train"], data[f"{task}_eval"], accum, [*args, "--grad-accum", "2"]))
    assert_same_run(one, accum)


def test_token_budget_batches_train_like_one_process(
    model: str, data: dict[str, Path], tmp_path: Path
) -> None:
    """`--batch-tokens` is global like `--batch-size`: each budget micro-batch is dealt over the
    ranks, so 2 processes compute the steps of 1 (the toy rows are 6-16 tokens: 5-10 per batch)."""
    args = [*CLASSIFICATION, "--batch-tokens", "80", "--grad-accum", "2"]
    runs = {procs: tmp_path / f"budget-{procs}" for procs in (1, 2)}
    for procs, run in runs.items():
        ok(train(procs, model, data["cls_train"], data["cls_eval"], run, args))
    assert_same_run(runs[1], runs[2])
    assert metrics(runs[1])["steps"] != 2 * 9, "set by the budget, not --batch-size"


def test_evaluation_sees_every_example_once(runs: dict[str, Any], data: dict[str, Path]) -> None:
    """The gathered 2-process evaluation equals a plain 1-process `evaluate` of the saved model."""
    for task in TASKS:
        two = runs[f"{task}-2"]
        cmd = [sys.executable, "-m", "encoderkit", "evaluate", "--model", str(two / "model")]
        result = subprocess.run(
            [*cmd, "--data", str(data[f"{task}_eval"])], capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert result.returncode == 0, result.stderr[-2000:]
        single = json.loads(result.stdout)
        final = metrics(two)
        for key in ("accuracy", "exact_match", "f1", "perplexity"):
            if key in single:
                assert final[key] == pytest.approx(single[key], abs=1e-6), (task, key)


def test_resume_after_kill(runs: dict[str, Any], model: str, data: dict[str, Path], tmp_path: Path) -> None:
    """kill -9 of a 2-process run at step 5, then --resume with torchrun: the uninterrupted result."""
    run = tmp_path / "killed"
    args = [data["cls_train"], data["cls_eval"], run, CLASSIFICATION]
    killed = train(2, model, *args, ENCODERKIT_KILL_AT="step:5")  # type: ignore[arg-type]
    assert killed.returncode != 0 and not (run / "metrics.json").exists()
    assert (run / "checkpoints" / "step-4").is_dir()
    ok(train(2, model, *args[:3], [*CLASSIFICATION, "--resume"]))  # type: ignore[arg-type]
    reference = runs["cls-2"]
    assert losses(run) == losses(reference)  # bit for bit: same steps, optimizer, RNG, sampler position
    assert metrics(run)["accuracy"] == metrics(reference)["accuracy"]
    w_ref, w_run = weights(reference), weights(run)
    assert all(torch.equal(w_ref[k], w_run[k]) for k in w_ref)


@pytest.mark.skipif(not ACCELERATE.exists(), reason="the accelerate command is not installed")
def test_accelerate_launch_runs_the_same(
    runs: dict[str, Any], model: str, data: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "accelerate"
    result = ok(train(2, model, data["cls_train"], data["cls_eval"], run, CLASSIFICATION, accelerate=True))
    assert result.stdout.count("report:") == 1
    reference = runs["cls-2"]  # torchrun: the same processes, so the same numbers bit for bit
    assert losses(run) == losses(reference)
    w_ref, w_run = weights(reference), weights(run)
    assert all(torch.equal(w_ref[k], w_run[k]) for k in w_ref)


def test_inconsistent_launch_is_one_error_line(model: str, data: dict[str, Path], tmp_path: Path) -> None:
    """Checked from the launcher's variables before the process group exists, so one process with
    them set shows what each rank of `torchrun --nproc_per_node 2` does (saves a 2-process start)."""
    run = tmp_path / "bad"
    args = ["--task", "classification", "--batch-size", "9", "--epochs", "1"]
    result = train(1, model, data["cls_train"], data["cls_eval"], run, args, RANK="1", WORLD_SIZE="2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: field 'batch_size': 9 is not divisible by world size 2 x grad_accum 1 "
        "(each process takes batch_size / world examples per step)"
    ]
    assert not run.exists()
