"""Masked-LM end to end on the tiny BERT (saved without an MLM head, like minilm): train, evaluate,
fill-mask, serve, resume, scratch with its own tokenizer, reuse for classification, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch
from transformers import AutoModelForMaskedLM

from encoderkit.cli import main
from encoderkit.inference.predictor import Predictor
from encoderkit.serving.app import create_app
from encoderkit.training import faults
from tests.conftest import sentiment_rows, write_jsonl
from tests.integration.test_reliability import TIMED
from tests.integration.test_serve import LIMITED, post, running

# 160 short lines, about 1,500 tokens: about 50 blocks of 32, 4 steps an epoch at batch 16.
RUN = ["--task", "mlm", "--max-length", "32", "--batch-size", "16", "--lr", "1e-3", "--epochs", "3"]


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mlm-text")
    lines = [r["text"] for r in sentiment_rows(200, seed=3)]
    (folder / "train.txt").write_text("\n".join(lines[:160]) + "\n")
    (folder / "eval.txt").write_text("\n".join(lines[160:]) + "\n")
    return folder / "train.txt", folder / "eval.txt"


def argv(model: str, files: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    data = {"--train": files[0], "--eval": files[1], "--output": out}
    return ["train", "--model", model, *[str(x) for pair in data.items() for x in pair], *RUN, *extra]


@pytest.fixture(scope="module")
def mlm_run(
    tiny_model: str, texts: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("mlm") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv(tiny_model, texts, out, "--save-steps", "4")) == 0
    return out, printed.getvalue()


def test_training_lowers_perplexity_and_says_the_head_is_new(mlm_run: tuple[Path, str]) -> None:
    out, printed = mlm_run
    assert "masked-LM head: new" in printed and re.search(r"sequences +\d+ \(full blocks\)", printed)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"perplexity", "loss", "accuracy", "masked_tokens"} <= set(metrics)
    evals = [
        e for e in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "eval_perplexity" in e
    ]
    assert evals[0]["step"] == 0 and metrics["perplexity"] < 0.9 * evals[0]["eval_perplexity"], evals
    # The same eval positions at every evaluation: the masked-token count never changes.
    assert {e["eval_masked_tokens"] for e in evals} == {metrics["masked_tokens"]}
    meta = json.loads((out / "model" / "encoderkit.json").read_text())
    assert meta["task"] == "mlm" and meta["mask_token"] == "[MASK]"
    report = (out / "report.html").read_text()
    assert "Masking and tokenizer" in report
    # Fill-mask examples from the final evaluation: 5 eval texts, the true token, 5 guesses each.
    table = report.split("<table id='fill-mask-examples'>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    assert len(rows) == 5 and all("[MASK]" in context for context, _, _ in rows)
    for _, _, guesses in rows:
        probabilities = [float(p) for p in re.findall(r" (0\.\d\d|1\.00)(?:,|$)", guesses)]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)


def test_the_saved_model_is_a_tied_masked_lm_and_evaluate_repeats_the_run(
    mlm_run: tuple[Path, str], texts: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = mlm_run
    model = AutoModelForMaskedLM.from_pretrained(out / "model")
    decoder, embeddings = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    assert decoder.data_ptr() == embeddings.data_ptr()
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out / "model"), "--data", str(texts[1])]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert scored["masked_tokens"] == metrics["masked_tokens"]
    assert scored["perplexity"] == pytest.approx(metrics["perplexity"], rel=1e-4)


def test_fill_mask_predict_and_serve_on_the_trained_folder(
    mlm_run: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(mlm_run[0] / "model")
    text = "the [MASK] was good and the food was [MASK] ."
    capsys.readouterr()
    assert main(["fill-mask", "--model", model, "--top-k", "4", "--json", text]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["masks"]) == 2 and all(len(m) == 4 for m in printed["masks"])
    with running(create_app(Predictor.load(model), LIMITED)) as url:
        info = httpx.get(f"{url}/v1/info").json()
        assert info["task"] == "mlm" and info["form"] == "fill-mask" and info["mask_token"] == "[MASK]"
        assert '"form": "fill-mask"' in httpx.get(url).text
        served = post(url, {"inputs": [{"text": text, "top_k": 4}]}).json()["predictions"][0]
    assert served["masks"] == printed["masks"]
    inputs = tmp_path / "masked.txt"
    inputs.write_text(f"{text}\n\nno mask in this line\n")
    assert (
        main(["predict", "--model", model, "--input", str(inputs), "--output", str(tmp_path / "p.jsonl")])
        == 2
    )
    assert errors(capsys.readouterr().err) == [f"error: {inputs}:3: no mask token [MASK] in the text"]


def test_fill_mask_whole_words_offers_no_special_or_sub_word_token(
    mlm_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(mlm_run[0] / "model")
    vocab = Predictor.load(model).tokenizer.get_vocab()
    shown = {}
    for flag in ([], ["--whole-words"]):
        capsys.readouterr()
        assert (
            main(["fill-mask", "--model", model, "--top-k", "100", "--json", *flag, "the [MASK] was good"])
            == 0
        )
        shown[bool(flag)] = [c["token"] for c in json.loads(capsys.readouterr().out)["masks"][0]]
    pieces = [t for t in shown[False] if t.startswith("##") or t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]")]
    assert pieces, "the check needs a sub-word or special candidate in the plain top 100"
    assert not [t for t in shown[True] if t.startswith("##") or t.startswith("[")], shown[True]
    words = [t for t in vocab if not t.startswith("##") and not t.startswith("[")]
    assert len(shown[True]) == min(100, len(words))


def test_resume_after_kill_gives_the_uninterrupted_run(
    mlm_run: tuple[Path, str], tiny_model: str, texts: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = argv(tiny_model, texts, out, "--save-steps", "4")
    env = {**os.environ, faults.KILL_AT_ENV: "step:6"}  # after the step-4 checkpoint, mid epoch 2
    killed = subprocess.run(
        [sys.executable, "-m", "encoderkit", *args], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert main([*args, "--resume"]) == 0
    straight = json.loads((mlm_run[0] / "metrics.json").read_text())
    resumed = json.loads((out / "metrics.json").read_text())
    assert {k: v for k, v in resumed.items() if k not in TIMED} == {
        k: v for k, v in straight.items() if k not in TIMED
    }


def test_scratch_with_a_trained_tokenizer_whole_words_line_by_line(
    tiny_model: str, texts: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    extra = ["--strategy", "scratch", "--train-tokenizer", "--vocab-size", "120", "--whole-word-mask"]
    capsys.readouterr()
    assert main(argv(tiny_model, texts, out, *extra, "--line-by-line", "--epochs", "1")) == 0
    printed = capsys.readouterr().out
    assert "120 tokens (trained on the training text)" in printed and "160 (one text each)" in printed
    assert "whole words" in printed and "masked-LM head: new" not in printed
    config = json.loads((out / "model" / "config.json").read_text())
    vocab = json.loads((out / "model" / "tokenizer.json").read_text())["model"]["vocab"]
    assert config["vocab_size"] == len(vocab) == 120


def test_lora_trains_the_head_in_place_so_the_saved_model_scores_as_the_run(
    tiny_model: str, texts: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PEFT's copy of a tied head would be lost on reload: the saved model would score otherwise."""
    out = tmp_path / "run"
    assert main(argv(tiny_model, texts, out, "--strategy", "lora", "--epochs", "1", "--lr", "3e-3")) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out / "model"), "--data", str(texts[1])]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert scored["perplexity"] == pytest.approx(metrics["perplexity"], rel=1e-4)
    evals = [
        e for e in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "eval_perplexity" in e
    ]
    assert metrics["perplexity"] < evals[0]["eval_perplexity"], evals  # the adapters and head learnt


def test_the_masked_lm_folder_is_a_model_for_classification(
    mlm_run: tuple[Path, str], tmp_path: Path
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(32, seed=4))
    model = str(mlm_run[0] / "model")
    args = [
        "train",
        "--model",
        model,
        "--train",
        str(train),
        "--output",
        str(tmp_path / "run"),
        "--max-steps",
        "2",
    ]
    assert main(args) == 0
    trained = AutoModelForMaskedLM.from_pretrained(model)
    classifier = Predictor.load(str(tmp_path / "run" / "model")).model
    # Two steps moved the encoder a little from the MLM's; a random encoder would be far off.
    word = classifier.base_model.embeddings.word_embeddings.weight
    assert torch.allclose(word, trained.base_model.embeddings.word_embeddings.weight, atol=0.05)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--max-length", "4096"],
            "error: field 'max_length': 4096 is above the model's position limit (128)",
        ),
        (["--mlm-probability", "1"], "error: field 'mlm_probability': must be in (0, 1), got 1.0"),
        (
            ["--strategy", "scratch", "--train-tokenizer", "--vocab-size", "3"],
            "error: field 'vocab_size': 3 leaves no room beside the 5 special tokens",
        ),
        (["--train-tokenizer"], "error: field 'train_tokenizer': only with --strategy scratch"),
        (["--train", "EMPTY"], "error: EMPTY: no text found (every line or value is empty)"),
    ],
)
def test_bad_input_exits_2_with_one_error_line(
    tiny_model: str,
    texts: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    extra = [str(empty) if e == "EMPTY" else e for e in extra]
    message = message.replace("EMPTY", str(empty))
    capsys.readouterr()
    assert main([*argv(tiny_model, texts, tmp_path / "run"), *extra]) == 2
    got = errors(capsys.readouterr().err)
    assert len(got) == 1 and got[0].startswith(message), got
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_fill_mask_joint_ranks_whole_fillings_by_the_chain_of_conditionals(
    mlm_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--joint`: each filling's score is P(first | both masked) x P(second | first filled), as
    the model gives them; best first; one mask: the same list as the per-mask candidates."""
    model = str(mlm_run[0] / "model")
    text = "the [MASK] was good and the food was [MASK] ."
    capsys.readouterr()
    assert main(["fill-mask", "--model", model, "--top-k", "3", "--joint", "--json", text]) == 0
    joint = json.loads(capsys.readouterr().out)["joint"]
    assert len(joint) == 3 and [f["score"] for f in joint] == sorted(
        (f["score"] for f in joint), reverse=True
    )
    predictor = Predictor.load(model)
    tokenizer, lm = predictor.tokenizer, predictor.model
    ids = tokenizer(text)["input_ids"]
    first, second = [p for p, t in enumerate(ids) if t == tokenizer.mask_token_id]

    def prob(row: list[int], position: int, token: int) -> float:
        with torch.no_grad():
            logits = lm(input_ids=torch.tensor([row])).logits[0, position]
        return float(torch.softmax(logits.float(), -1)[token])

    for filling in joint:
        a, b = filling["token_ids"]
        filled = [a if p == first else t for p, t in enumerate(ids)]
        assert filling["score"] == pytest.approx(prob(ids, first, a) * prob(filled, second, b), rel=1e-4)
        assert filling["sequence"].count("[MASK]") == 0 and filling["sequence"].startswith("the ")
    single = predictor.predict_rows([{"text": "the [MASK] was good", "top_k": 4, "joint": True}])[0]
    assert [f["token_ids"] for f in single["joint"]] == [[c["token_id"]] for c in single["masks"][0]]
    assert main(["fill-mask", "--model", model, "--top-k", "2", "--joint", text]) == 0
    assert "  joint:" in capsys.readouterr().out
