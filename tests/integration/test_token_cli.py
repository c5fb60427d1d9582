"""Token classification end to end on a tiny BERT: train (IOB1 CoNLL in), evaluate, predict, serve rows."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from encoderkit.cli import main
from encoderkit.errors import UserError
from encoderkit.inference.predictor import Predictor
from encoderkit.serving.app import create_app
from encoderkit.tasks.tag_schemes import to_iob2
from encoderkit.training import faults
from tests.conftest import build_tiny_bert
from tests.integration.test_reliability import TIMED
from tests.integration.test_serve import LIMITED, post, running

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


def train_args(folder: Path, output: Path) -> list[str]:
    """The module's run: 80 sentences, batch 16 (5 steps an epoch), 4 epochs."""
    args = ["train", "--task", "ner", "--model", str(folder / "tiny"), "--train", str(folder / "train.txt")]
    return [
        *args,
        "--eval",
        str(folder / "dev.txt"),
        "--output",
        str(output),
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
    ]


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ner")
    corpus = [" ".join(PEOPLE + PLACES + VERBS)] * 5
    build_tiny_bert(folder / "tiny", corpus, vocab_size=120)
    write_conll(folder / "train.txt", 80, seed=1)
    write_conll(folder / "dev.txt", 30, seed=2)
    assert main(train_args(folder, folder / "run")) == 0
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
    assert "entity-confusion" in report and "examples-right" in report and "<b>[PER " in report
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
    rows = [{"tokens": ["eve", "left", "lima"], "aggregation": a} for a in ("max", "average", "first")]
    assert [r["tags"] for r in predictor.predict_rows(rows)] == [
        by_tokens["tags"]
    ] * 3  # one sub-token a word
    with pytest.raises(UserError, match=r"inputs\[0\]\.aggregation: expected one of first, max, average"):
        predictor.predict_rows([{"tokens": ["eve"], "aggregation": "mean"}])


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


def build_tiny_roberta(folder: Path, corpus: list[str]) -> Path:
    """A byte-level BPE tokenizer trained on `corpus` (saved without a prefix space, as RoBERTa's
    is) and a random 2-layer, 32-wide RoBERTa."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=alphabet)
    )
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    names = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>"}
    fast = RobertaTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=128,
        **names,
    )
    config = RobertaConfig(
        vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=130, pad_token_id=1, type_vocab_size=1,
    )  # fmt: skip
    torch.manual_seed(1)
    RobertaModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_a_byte_level_bpe_model_gets_words_with_their_prefix_space(ner_run: Path, tmp_path: Path) -> None:
    """RoBERTa-style tokenizers see each word as it appears after a space (`Ġlives`), not as a text
    start (`liv`, `es`): the run reloads the tokenizer with add_prefix_space and saves it so."""
    corpus = [" ".join(w for w, _ in sentence(random.Random(i))) for i in range(40)]
    model = build_tiny_roberta(tmp_path / "roberta", corpus)
    args = ["train", "--task", "ner", "--model", str(model), "--train", str(ner_run / "train.txt")]
    args += ["--eval", str(ner_run / "dev.txt"), "--output", str(tmp_path / "run"), "--epochs", "1"]
    assert main(args) == 0
    predictor = Predictor.from_dir(tmp_path / "run" / "model")
    assert predictor.tokenizer.add_prefix_space
    encoded = predictor.tokenizer(["ada", "visited", "rome"], is_split_into_words=True)
    assert [encoded.tokens()[encoded.word_to_tokens(w).start] for w in range(3)] == [
        "Ġada",
        "Ġvisited",
        "Ġrome",
    ]
    (row,) = predictor.predict_rows([{"tokens": ["ada", "visited", "rome"]}])
    assert len(row["tags"]) == 3


def test_integer_tags_are_named_by_labels(
    ner_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSONL `ner_tags` as ids (a Hub export) with --labels; without names, or an id past them: exit 2."""
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rng = random.Random(3)
    rows = []
    for _ in range(40):
        words = sentence(rng)
        iob2, _ = to_iob2([t for _, t in words], "IOB1")
        rows.append({"tokens": [w for w, _ in words], "ner_tags": [names.index(t) for t in iob2]})
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["train", "--task", "ner", "--model", str(ner_run / "tiny"), "--train", str(data), "--epochs", "1"]
    assert main([*args, "--labels", ",".join(names), "--output", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "model" / "encoderkit.json").read_text())
    assert set(meta["label_names"]) <= set(names) and "B-PER" in meta["label_names"]
    capsys.readouterr()
    assert main([*args, "--output", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "field 'labels': the tags are integers" in err[0], err
    assert main([*args, "--labels", "O,B-PER", "--output", str(tmp_path / "run3")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.jsonl:1: tag id 3 has no name (--labels names 2)" in err[0], err
    assert not (tmp_path / "run2" / "model").exists() and not (tmp_path / "run3" / "model").exists()


def test_lengths_reads_words(ner_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    args = ["lengths", "--task", "ner", "--model", str(ner_run / "tiny"), "--data", str(ner_run / "dev.txt")]
    assert main([*args, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["count"] == 30 and stats["p50"] >= 5  # [CLS], 3 to 5 words of one or more pieces, [SEP]
    assert main(["lengths", "--task", "qa", *args[3:]]) == 2
    assert "lengths: not available for --task qa" in capsys.readouterr().err


def test_compare_runs_every_strategy_on_token_classification(ner_run: Path, tmp_path: Path) -> None:
    """full, frozen, LoRA and scratch on the same sentences; LoRA's saved model tags as its run did."""
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--task",
        "ner",
        "--model",
        str(ner_run / "tiny"),
        "--train",
        str(ner_run / "train.txt"),
    ]
    args += ["--eval", str(ner_run / "dev.txt"), "--output", str(out), "--epochs", "2", "--save-steps", "0"]
    assert main(args) == 0
    data = json.loads((out / "comparison.json").read_text())
    rows = {r["strategy"]: r for r in data["rows"]}
    assert (
        data["failed"] == [] and data["metric"] == "f1" and set(rows) == {"full", "frozen", "lora", "scratch"}
    )
    assert all(0 <= r["f1"] <= 1 and r["trainable_params"] > 0 for r in rows.values())
    assert (
        rows["frozen"]["trainable_params"]
        < rows["lora"]["trainable_params"]
        < rows["full"]["trainable_params"]
    )
    lora = json.loads((out / "lora" / "metrics.json").read_text())
    evaluated = Predictor.from_dir(out / "lora" / "model").evaluate_file(str(ner_run / "dev.txt"), {})
    assert evaluated["f1"] == pytest.approx(lora["f1"])


def test_served_entities_and_the_page_highlights_them(ner_run: Path, chromium: Any) -> None:
    """/v1/predict gives the entities of raw text; the web page marks each one, coloured by type,
    with its type and score on hover, and keeps the text as typed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    text = "Carla  visited Oslo"  # two spaces: offsets are into the text as typed
    with running(create_app(Predictor.load(str(ner_run / "run" / "model")), LIMITED)) as url:
        assert httpx.get(f"{url}/v1/info").json()["entities"] is True
        served = post(url, {"inputs": [{"text": text}]}).json()["predictions"][0]["entities"]
        assert [(e["type"], e["text"]) for e in served] == [("PER", "Carla"), ("LOC", "Oslo")]
        chromium.get(url + "/")
        chromium.find_element(By.ID, "text").send_keys(text)
        chromium.find_element(By.ID, "submit").click()
        marks = WebDriverWait(chromium, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#entities mark")
        )
        assert [m.get_attribute("data-type") for m in marks] == [e["type"] for e in served]
        assert [m.text for m in marks] == [e["text"] + e["type"] for e in served]  # the type as a <sup>
        for mark, e in zip(marks, served, strict=True):
            kind, score = mark.get_attribute("title").split(" · score ")
            assert kind == e["type"] and float(score) == pytest.approx(e["score"], abs=6e-4)
        colours = {m.get_attribute("data-type"): m.value_of_css_property("background-color") for m in marks}
        assert len(set(colours.values())) == len(colours) == 2  # one colour per type
        shown = chromium.find_element(By.ID, "entities").text
        for e in served:
            shown = shown.replace(e["text"] + e["type"], e["text"], 1)  # drop the type labels (<sup>)
        assert shown == text


def test_a_hub_dataset_trains_with_its_class_label_names(
    ner_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--train conll2003:train`: the split comes from `datasets` (offline here: a real Dataset
    stands in for the download), its integer `ner_tags` named by the dataset's ClassLabel."""
    import datasets

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rng = random.Random(5)
    rows = {"tokens": [], "ner_tags": []}
    for _ in range(40):
        words = sentence(rng)
        rows["tokens"].append([w for w, _ in words])
        rows["ner_tags"].append([names.index(t) for t in to_iob2([t for _, t in words], "IOB1")[0]])
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    asked = []

    def load_dataset(path: str, config: str | None = None, split: str = "train") -> datasets.Dataset:
        asked.append((path, config, split))
        return datasets.Dataset.from_dict(rows, features=features)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    args = ["train", "--task", "ner", "--model", str(ner_run / "tiny"), "--train", "conll2003:train"]
    assert (
        main([*args, "--eval", "conll2003:validation", "--epochs", "1", "--output", str(tmp_path / "run")])
        == 0
    )
    assert asked == [("conll2003", None, "train"), ("conll2003", None, "validation")]
    meta = json.loads((tmp_path / "run" / "model" / "encoderkit.json").read_text())
    assert set(meta["label_names"]) == {"O", "B-PER", "I-PER", "B-LOC"}  # places are one word


def test_resume_after_kill_gives_the_uninterrupted_run(ner_run: Path, tmp_path: Path) -> None:
    args = train_args(ner_run, tmp_path / "run")
    env = {**os.environ, faults.KILL_AT_ENV: "step:7"}  # after the epoch-1 checkpoint, mid epoch 2
    killed = subprocess.run(
        [sys.executable, "-m", "encoderkit", *args], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert main([*args, "--resume"]) == 0
    straight = json.loads((ner_run / "run" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {k: v for k, v in resumed.items() if k not in TIMED} == {
        k: v for k, v in straight.items() if k not in TIMED
    }
