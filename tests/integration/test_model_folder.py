"""The saved-model contract: a damaged or foreign model folder is one `error:` line naming the file.

Each case copies a real model folder, damages one file, and runs `predict`, `evaluate` and (for
the weights and config) `train --model` on it: exit 2, one line on stderr starting `error:` that
names the damaged file, no traceback. A pickled weights file is refused without being unpickled.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from encoderkit.cli import main
from tests.conftest import sentiment_rows, write_jsonl


@pytest.fixture(scope="module")
def model_dir(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model-folder")
    train = write_jsonl(folder / "train.jsonl", sentiment_rows(16, seed=3))
    args = ["train", "--model", tiny_model, "--train", str(train), "--output", str(folder / "run")]
    assert main([*args, "--max-steps", "2", "--batch-size", "8"]) == 0
    return folder / "run" / "model"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("model-folder-data") / "dev.jsonl", sentiment_rows(6, seed=4))


def _edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / name
        value = json.loads(path.read_text())
        changed = change(value)
        path.write_text(json.dumps(value if changed is None else changed))

    return damage


def _truncate(name: str, keep: float = 0.5) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])

    return damage


def _write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(content)


def _delete(*names: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()

    return damage


class _Trap:
    """Unpickling this writes a file: proof that the pickled weights were loaded (they must not be)."""

    def __reduce__(self) -> tuple:
        return (Path.write_text, (Path("/tmp/encoderkit-pickle-ran"), "ran"))


def _pickled_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap()))


# case -> (damage, the file the error must name)
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "metadata missing": (_delete("encoderkit.json"), "encoderkit.json"),
    "metadata truncated": (_truncate("encoderkit.json"), "encoderkit.json"),
    "metadata not an object": (_write("encoderkit.json", b"[1, 2]"), "encoderkit.json"),
    "metadata task of the wrong type": (
        _edit_json("encoderkit.json", lambda m: m.update(task=3)),
        "encoderkit.json",
    ),
    "metadata unknown task": (
        _edit_json("encoderkit.json", lambda m: m.update(task="poetry")),
        "encoderkit.json",
    ),
    "metadata max_length a string": (
        _edit_json("encoderkit.json", lambda m: m.update(max_length="long")),
        "encoderkit.json",
    ),
    "metadata max_length missing": (
        _edit_json("encoderkit.json", lambda m: m.pop("max_length")),
        "encoderkit.json",
    ),
    "metadata labels not strings": (
        _edit_json("encoderkit.json", lambda m: m.update(label_names=[0, 1])),
        "encoderkit.json",
    ),
    "config missing": (_delete("config.json"), "config.json"),
    "config truncated": (_truncate("config.json"), "config.json"),
    "config not an object": (_write("config.json", b'"bert"'), "config.json"),
    "config without model_type": (_edit_json("config.json", lambda c: c.pop("model_type")), "config.json"),
    "config of another shape": (
        _edit_json("config.json", lambda c: c.update(hidden_size=64)),
        "model.safetensors",
    ),
    "weights missing": (_delete("model.safetensors"), "model.safetensors"),
    "weights truncated": (_truncate("model.safetensors", 0.7), "model.safetensors"),
    "weights garbage": (_write("model.safetensors", b"\x00" * 64), "model.safetensors"),
    "weights pickled": (_pickled_weights, "pickled"),
    "tokenizer truncated": (_truncate("tokenizer.json"), "tokenizer"),
}


def _damaged(model_dir: Path, tmp_path: Path, case: str) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    CASES[case][0](copy)
    return copy


def _assert_one_error_line(capsys: pytest.CaptureFixture[str], rc: int, names: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert names in err[0], err
    assert "Traceback" not in err[0]


@pytest.mark.parametrize("case", list(CASES))
def test_predict_and_evaluate_name_the_damaged_file(
    case: str, model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _damaged(model_dir, tmp_path, case)
    capsys.readouterr()
    names = CASES[case][1]
    out = tmp_path / "out.jsonl"
    _assert_one_error_line(
        capsys, main(["predict", "--model", str(bad), "--input", str(data), "--output", str(out)]), names
    )
    _assert_one_error_line(capsys, main(["evaluate", "--model", str(bad), "--data", str(data)]), names)
    assert not out.exists()
    assert not Path("/tmp/encoderkit-pickle-ran").exists(), "the pickled weights were unpickled"


@pytest.mark.parametrize(
    "case", ["config truncated", "weights truncated", "weights pickled", "tokenizer truncated"]
)
def test_train_from_a_damaged_folder_names_the_file(
    case: str, model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _damaged(model_dir, tmp_path, case)
    capsys.readouterr()
    rc = main(["train", "--model", str(bad), "--train", str(data), "--output", str(tmp_path / "run")])
    names = {"weights pickled": "model.safetensors", "tokenizer truncated": "tokenizer"}.get(
        case, CASES[case][1]
    )
    _assert_one_error_line(capsys, rc, names)
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not Path("/tmp/encoderkit-pickle-ran").exists(), "the pickled weights were unpickled"


def test_a_missing_model_path_says_it_does_not_exist(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["evaluate", "--model", str(tmp_path / "nowhere"), "--data", str(data)])
    _assert_one_error_line(capsys, rc, "does not exist")
    rc = main(["fill-mask", "--model", str(tmp_path / "nowhere"), "a [MASK]"])  # not read as a Hub id
    _assert_one_error_line(capsys, rc, f"{tmp_path / 'nowhere'}: does not exist")


def test_an_internal_failure_is_one_line_pointing_at_the_traceback(
    model_dir: Path, data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from encoderkit.inference.predictor import Predictor

    def broken(*args: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(Predictor, "evaluate_file", broken)
    rc = main(["evaluate", "--model", str(model_dir), "--data", str(data)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("error: internal error (RuntimeError: a bug of ours)")
    saved = Path(err[0].split("traceback is in ")[1].split(" ")[0])
    assert "Traceback (most recent call last)" in saved.read_text() and "a bug of ours" in saved.read_text()
    saved.unlink()
