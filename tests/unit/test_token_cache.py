"""The tokenized-data cache: hits equal a fresh `prepare`, every input change misses, and the cache
never fails a run (corrupt files, unwritable folders) nor hides bad input."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from encoderkit.config import FIELD_NAMES, TrainConfig
from encoderkit.data import cache
from encoderkit.errors import UserError
from encoderkit.modeling import load_tokenizer
from encoderkit.tasks import PreparedData, get_task
from encoderkit.tasks.qa import QATask
from encoderkit.tasks.sequence import SequenceTask
from encoderkit.training.prepare import prepare_cached, prepare_key
from tests.conftest import build_tiny_bert, sentiment_rows, write_jsonl

LIMIT = 128  # the tiny model's position limit
QA_WINDOW = {"max_length": 64, "doc_stride": 24, "max_query_length": 16}


@pytest.fixture(scope="module")
def tokenizer(tiny_model: str) -> Any:
    return load_tokenizer(tiny_model)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own cache folder (not created: the first store makes it)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("ENCODERKIT_CACHE", str(path))
    return path


@pytest.fixture
def sentiment(tmp_path: Path) -> TrainConfig:
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(40, seed=4))
    dev = write_jsonl(tmp_path / "dev.jsonl", sentiment_rows(12, seed=5))
    return TrainConfig(train=str(train), eval=str(dev))


def qa_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """SQuAD-style JSONL rows: filler contexts long enough for several 64-token windows."""
    rng = random.Random(seed)
    words = ["the", "film", "was", "good", "and", "meal", "bad", "so", "it", "is", "quite", "fine"]
    rows = []
    for i in range(n):
        before = " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))
        after = " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))
        answer = ("one two three", "four")[i % 2]
        rows.append(
            {
                "id": f"q{i}",
                "question": "what is the answer?",
                "context": f"{before} {answer} {after}",
                "answers": {"text": [answer], "answer_start": [len(before) + 1]},
            }
        )
    return rows


@pytest.fixture
def squad(tmp_path: Path) -> TrainConfig:
    train = write_jsonl(tmp_path / "train.jsonl", qa_rows(20, seed=6))
    dev = write_jsonl(tmp_path / "dev.jsonl", qa_rows(8, seed=7))
    return TrainConfig(task="qa", train=str(train), eval=str(dev), **QA_WINDOW)  # type: ignore[arg-type]


def prepare(config: TrainConfig, tokenizer: Any) -> tuple[PreparedData, list[str]]:
    """`prepare_cached` with a new task object, as a new run would; returns the data and echoed lines."""
    lines: list[str] = []
    return prepare_cached(get_task(config.task), config, tokenizer, LIMIT, lines.append), lines


def outcome(lines: list[str]) -> str:
    """'hit', 'stored' or 'none', from the one line `prepare_cached` echoes."""
    if any("from cache" in line for line in lines):
        return "hit"
    return "stored" if any("cached for next time" in line for line in lines) else "none"


def entries(folder: Path) -> list[Path]:
    """The folder's files, less the per-key lock files (empty, kept so waiters share one inode)."""
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def refuse_prepare(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, tokenizing fails the test: only the cache may answer."""

    def refused(*args: Any) -> None:
        raise AssertionError("prepare ran; expected a cache hit")

    monkeypatch.setattr(SequenceTask, "prepare", refused)
    monkeypatch.setattr(QATask, "prepare", refused)


# --- hits --------------------------------------------------------------------------------------------


def test_second_prepare_is_a_hit_equal_to_a_fresh_prepare(
    sentiment: TrainConfig, tokenizer: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, lines = prepare(sentiment, tokenizer)
    assert outcome(lines) == "stored" and len(entries(folder)) == 1
    fresh = get_task("classification").prepare(sentiment, tokenizer, LIMIT)
    refuse_prepare(monkeypatch)
    cached, lines = prepare(sentiment, tokenizer)  # the same tokenizer object: its call state is no key
    assert outcome(lines) == "hit"
    assert cached.eval is not None and fresh.eval is not None
    for mine, theirs in ((cached.train, fresh.train), (cached.eval, fresh.eval)):
        assert len(mine) > 0
        assert mine.input_ids == theirs.input_ids
        assert mine.token_type_ids == theirs.token_type_ids
        assert mine.targets == theirs.targets
        assert mine.position_keys == theirs.position_keys
    assert cached == fresh  # and the rest: gold labels, label names, lengths, summary, warnings


def test_qa_hit_prints_the_data_check_again_and_keeps_the_decoding_settings(
    squad: TrainConfig, tokenizer: Any, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = get_task("qa")
    fresh = task.prepare(squad, tokenizer, LIMIT)
    assert capsys.readouterr().out == "", "prepare is pure: it prints nothing"
    assert fresh.messages[0] == "data check:"
    missed: list[str] = []
    prepare_cached(task, squad, tokenizer, LIMIT, missed.append)
    assert outcome(missed) == "stored" and missed[1:] == fresh.messages, "a miss prints the data check"

    lines: list[str] = []
    cached = prepare_cached(get_task("qa"), squad.replace(n_best=5), tokenizer, LIMIT, lines.append)
    assert outcome(lines) == "hit"
    assert lines[1:] == fresh.messages, "a hit prints the same data check"
    assert cached == fresh and cached.settings == {"padding_side": "right", "train_metric": "squad"}
    decoding = task.decoding(squad.replace(n_best=5), cached)
    assert decoding["n_best"] == 5, "decoding settings come from this run, not the cached one"


# --- misses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"max_length": 32},
        {"text_column": "text"},  # the same column, named instead of found: still another key
        {"eval": None},
    ],
)
def test_a_changed_setting_misses(
    change: dict[str, Any], sentiment: TrainConfig, tokenizer: Any, folder: Path
) -> None:
    prepare(sentiment, tokenizer)
    data, lines = prepare(sentiment.replace(**change), tokenizer)
    assert outcome(lines) == "stored" and len(entries(folder)) == 2
    assert data == get_task("classification").prepare(sentiment.replace(**change), tokenizer, LIMIT)


@pytest.mark.parametrize("change", [{"doc_stride": 16}, {"max_query_length": 8}, {"qa_metric": "squad_v2"}])
def test_a_changed_qa_setting_misses(
    change: dict[str, Any], squad: TrainConfig, tokenizer: Any, folder: Path
) -> None:
    prepare(squad, tokenizer)
    data, lines = prepare(squad.replace(**change), tokenizer)
    assert outcome(lines) == "stored" and len(entries(folder)) == 2
    assert data == get_task("qa").prepare(squad.replace(**change), tokenizer, LIMIT)


def test_changed_file_content_misses(sentiment: TrainConfig, tokenizer: Any, folder: Path) -> None:
    first, _ = prepare(sentiment, tokenizer)
    assert sentiment.train is not None
    write_jsonl(Path(sentiment.train), sentiment_rows(40, seed=9))  # same path, other rows
    second, lines = prepare(sentiment, tokenizer)
    assert outcome(lines) == "stored"
    assert second.train.input_ids != first.train.input_ids


def test_a_different_tokenizer_misses(
    sentiment: TrainConfig, tokenizer: Any, tiny_model: str, folder: Path, tmp_path: Path
) -> None:
    corpus = [r["text"] for r in sentiment_rows(200, seed=1)]
    cased = load_tokenizer(str(build_tiny_bert(tmp_path / "cased", corpus, lowercase=False)))
    prepare(sentiment, tokenizer)
    _, lines = prepare(sentiment, cased)
    assert outcome(lines) == "stored"
    left = load_tokenizer(tiny_model)
    left.padding_side = "left"
    assert prepare_key(get_task("classification"), sentiment, left, LIMIT) != prepare_key(
        get_task("classification"), sentiment, tokenizer, LIMIT
    )
    assert prepare_key(get_task("classification"), sentiment, tokenizer, 64) != prepare_key(
        get_task("classification"), sentiment, tokenizer, LIMIT
    ), "the model's length limit is part of the key"


def test_hub_datasets_are_not_cached(tokenizer: Any, folder: Path) -> None:
    assert (
        prepare_key(get_task("classification"), TrainConfig(train="glue/mrpc:train"), tokenizer, LIMIT)
        is None
    )


# Run by each of the processes below: `prepare_cached` with a `prepare` that records each call and
# takes long enough that the two processes surely overlap.
RACER = """
import sys, time
from pathlib import Path
from encoderkit.config import TrainConfig
from encoderkit.training.prepare import prepare_cached
from encoderkit.modeling import load_tokenizer
from encoderkit.tasks import get_task
from encoderkit.tasks.sequence import SequenceTask

model, train, calls = sys.argv[1:4]
original = SequenceTask.prepare

def slow_prepare(self, *args):
    with open(calls, "a") as f:
        f.write("prepare\\n")
    time.sleep(1.5)
    return original(self, *args)

SequenceTask.prepare = slow_prepare
data = prepare_cached(get_task("classification"), TrainConfig(train=train), load_tokenizer(model), 128, print)
print("features", len(data.train))
"""


def test_processes_starting_together_tokenize_once(
    tiny_model: str, sentiment: TrainConfig, tmp_path: Path, folder: Path
) -> None:
    """The ranks of a torchrun launch all miss the cache at once; only one may tokenize."""
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "ENCODERKIT_CACHE": str(folder), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", RACER, tiny_model, str(sentiment.train), str(calls)]
    racers = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [racer.communicate(timeout=120) for racer in racers]
    for racer, (_, err) in zip(racers, results, strict=True):
        assert racer.returncode == 0, err[-2000:]
    assert calls.read_text().splitlines() == ["prepare"], "tokenized by one process only"
    outs = sorted(outcome(out.splitlines()) for out, _ in results)
    assert outs == ["hit", "stored"]
    assert all("features 40" in out for out, _ in results)
    assert len(entries(folder)) == 1


# --- the cache never fails a run ---------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_entry_is_ignored_and_replaced(
    damage: str, sentiment: TrainConfig, tokenizer: Any, folder: Path
) -> None:
    expected, _ = prepare(sentiment, tokenizer)
    [entry] = entries(folder)
    content = entry.read_bytes()
    damaged = {"garbage": b"not a pickle", "truncated": content[: len(content) // 2], "empty": b""}
    entry.write_bytes(damaged[damage])
    data, lines = prepare(sentiment, tokenizer)
    assert outcome(lines) == "stored" and data == expected
    assert entries(folder) == [entry] and entry.read_bytes() == content, "replaced by a good entry"
    assert outcome(prepare(sentiment, tokenizer)[1]) == "hit"


def test_an_unwritable_folder_warns_and_the_run_gets_its_data(
    sentiment: TrainConfig, tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ENCODERKIT_CACHE", str(blocker / "cache"))  # a file where a folder should be
    data, lines = prepare(sentiment, tokenizer)
    assert [line for line in lines if line.startswith("warning:")] == lines and len(lines) == 1
    assert data == get_task("classification").prepare(sentiment, tokenizer, LIMIT)


def test_a_full_disk_warns_and_leaves_no_partial_file(
    sentiment: TrainConfig, tokenizer: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(entry: Any, file: Any, protocol: int) -> None:
        file.write(b"half an entry")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.pickle, "dump", full)
    data, lines = prepare(sentiment, tokenizer)
    assert len(lines) == 1 and lines[0].startswith("warning:") and "No space left" in lines[0]
    assert len(data.train) == 40
    assert entries(folder) == [], "the temporary file is removed"


def test_no_cache_neither_reads_nor_writes(
    sentiment: TrainConfig, tokenizer: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = sentiment.replace(cache=False)
    data, lines = prepare(off, tokenizer)
    assert lines == [] and entries(folder) == []
    prepare(sentiment, tokenizer)  # now an entry for this key exists
    [entry] = entries(folder)
    entry.write_bytes(b"would fail a test that reads it")
    again, lines = prepare(off, tokenizer)
    assert lines == [] and again == data
    assert entry.read_bytes() == b"would fail a test that reads it", "not rewritten either"


def test_bad_input_raises_as_before_and_is_never_cached(tmp_path: Path, tokenizer: Any, folder: Path) -> None:
    rows = sentiment_rows(10)
    rows[3]["label"] = ""
    train = write_jsonl(tmp_path / "bad.jsonl", rows)
    for _ in range(2):  # the second time too: nothing was stored to answer it
        with pytest.raises(UserError, match=r"bad\.jsonl:4: missing label"):
            prepare(TrainConfig(train=str(train)), tokenizer)
    assert entries(folder) == []


# --- the key covers every config field prepare reads --------------------------------------------------


class ReadRecorder:
    """Stands in for a config and records the name of every field read from it."""

    def __init__(self, config: TrainConfig) -> None:
        self._config = config
        self.fields_read: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.fields_read.add(name)
        return getattr(self._config, name)


@pytest.mark.parametrize("task", ["classification", "regression", "qa"])
def test_prepare_reads_only_config_fields_in_the_key(task: str, tmp_path: Path, tokenizer: Any) -> None:
    if task == "qa":
        train = write_jsonl(tmp_path / "train.jsonl", qa_rows(6, seed=1))
        dev = write_jsonl(tmp_path / "dev.jsonl", qa_rows(3, seed=2))
        config = TrainConfig(task="qa", train=str(train), eval=str(dev), **QA_WINDOW)  # type: ignore[arg-type]
    else:
        rows = [{**r, "score": i / 10} for i, r in enumerate(sentiment_rows(12))]
        train = write_jsonl(tmp_path / "train.jsonl", rows)
        dev = write_jsonl(tmp_path / "dev.jsonl", rows[:4])
        label = "score" if task == "regression" else "label"
        config = TrainConfig(task=task, train=str(train), eval=str(dev), label_column=label)
    recorder = ReadRecorder(config)
    get_task(task).prepare(recorder, tokenizer, LIMIT)
    unkeyed = recorder.fields_read - set(get_task(task).prepare_fields)
    assert not unkeyed, f"add {sorted(unkeyed)} to the prepare_fields of the {task} task"


@pytest.mark.parametrize("task", ["classification", "regression", "qa"])
def test_prepare_fields_are_config_fields(task: str) -> None:
    assert set(get_task(task).prepare_fields) <= set(FIELD_NAMES)
