"""Token classification end to end on a tiny BERT: train (IOB1 CoNLL in), evaluate, predict, serve rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from encoderkit.cli import main
from encoderkit.inference.predictor import Predictor
from tests.conftest import build_tiny_bert

PEOPLE = ["ada", "bob", "carla", "dmitri", "eve"]
PLACES = ["paris", "rome", "oslo", "lima", "kyoto"]
VERBS = ["lives in", "visited", "left", "loves"]


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    """`PERSON verb PLACE`, sometimes a two-word person: IOB1 tags, as in the CoNLL-2003 files."""
    words = [(rng.choice(PEOPLE), "I-PER")]
    if rng.random() < 0.3:
        words.append((rng.choice(PEOPLE), "I-PER"))
    words += [(w, "O") for w in rng.choice(VERBS).split()]
    words.append((rng.choice(PLACES), "I-LOC"))
    return words


def write_conll(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- O O", ""]
    for _ in range(n):
        lines += [f"{w} NN O {t}" for w, t in sentence(rng)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ner")
    corpus = [" ".join(PEOPLE + PLACES + VERBS)] * 5
    model = build_tiny_bert(folder / "tiny", corpus, vocab_size=120)
    train = write_conll(folder / "train.txt", 80, seed=1)
    dev = write_conll(folder / "dev.txt", 30, seed=2)
    args = ["train", "--task", "ner", "--model", str(model), "--train", str(train), "--eval", str(dev)]
    args += ["--output", str(folder / "run"), "--epochs", "4", "--batch-size", "16", "--lr", "3e-3"]
    assert main(args) == 0
    return folder


def test_training_learns_entities_and_reports_them(ner_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = json.loads((ner_run / "run" / "metrics.json").read_text())
    assert metrics["f1"] > 0.8, metrics  # entity-level, strict IOB2
    assert {"precision", "recall", "accuracy", "f1_PER", "f1_LOC"} <= set(metrics)
    meta = json.loads((ner_run / "run" / "model" / "encoderkit.json").read_text())
    assert meta["task"] == "token-classification"
    assert meta["label_names"] == ["O", "B-LOC", "B-PER", "I-PER"]  # places are one word: no I-LOC
    report = (ner_run / "run" / "report.html").read_text()
    assert "entity-types" in report and "IOB1 (converted to IOB2)" in report
    card = (ner_run / "run" / "model" / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "AutoModelForTokenClassification" in card


def test_evaluate_equals_training_eval(ner_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert (
        main(["evaluate", "--model", str(ner_run / "run" / "model"), "--data", str(ner_run / "dev.txt")]) == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    trained = json.loads((ner_run / "run" / "metrics.json").read_text())
    assert evaluated["f1"] == pytest.approx(trained["f1"]) and evaluated["examples"] == 30


def test_predict_tokens_and_raw_text(ner_run: Path) -> None:
    predictor = Predictor.from_dir(ner_run / "run" / "model")
    text = "Carla  visited Oslo"  # two spaces: offsets are into the text as given
    by_text, by_tokens = predictor.predict_rows(
        [{"id": 7, "text": text}, {"tokens": ["eve", "left", "lima"]}]
    )
    assert by_text["id"] == 7 and by_text["tokens"] == ["Carla", "visited", "Oslo"]
    assert [(e["type"], e["text"]) for e in by_text["entities"]] == [("PER", "Carla"), ("LOC", "Oslo")]
    assert all(text[e["start"] : e["end"]] == e["text"] for e in by_text["entities"])
    assert by_tokens["tags"] == ["B-PER", "O", "B-LOC"]


def test_predict_file_writes_one_tag_per_token(ner_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "tags.jsonl"
    model = str(ner_run / "run" / "model")
    assert main(["predict", "--model", model, "--input", str(ner_run / "dev.txt"), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 30 and all(len(r["tags"]) == len(r["tokens"]) for r in rows)


def test_an_eval_tag_the_training_never_had_is_exit_2(
    ner_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = tmp_path / "dev.txt"
    dev.write_text("ada NN O I-PER\nrome NN O I-ORG\n")
    args = ["train", "--task", "ner", "--model", str(ner_run / "tiny"), "--train", str(ner_run / "train.txt")]
    capsys.readouterr()
    assert main([*args, "--eval", str(dev), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dev.txt:1: tag 'B-ORG' never appears in the training data" in err[0], err
