"""What --resume compares: the resolved config (minus what cannot change the result) and the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoderkit.config import TrainConfig, build_config
from encoderkit.errors import UserError
from encoderkit.training.fingerprint import compare, data_source, fingerprint


def config(tmp_path: Path, **changes: object) -> TrainConfig:
    train = tmp_path / "train.jsonl"
    if not train.exists():
        train.write_text('{"text": "good", "label": 1}\n')
    base = TrainConfig(train=str(train), output=str(tmp_path / "run"), lr=1e-4)
    return base.replace(**changes)


def test_fields_that_cannot_change_the_result_are_left_out(tmp_path: Path) -> None:
    first = fingerprint(config(tmp_path))
    other = config(
        tmp_path, output="elsewhere", resume=True, resume_force=True, save_steps=7, keep_checkpoints=3
    )
    assert fingerprint(other)["config_sha256"] == first["config_sha256"]
    assert fingerprint(config(tmp_path, lr=2e-4))["config_sha256"] != first["config_sha256"]
    assert fingerprint(config(tmp_path, logging_steps=3))["config_sha256"] != first["config_sha256"]


def test_a_config_change_is_refused_by_name_unless_forced(tmp_path: Path) -> None:
    saved = fingerprint(config(tmp_path))
    current = fingerprint(config(tmp_path, lr=2e-4, seed=1))
    with pytest.raises(UserError) as refused:
        compare(saved, current, force=False)
    assert str(refused.value) == (
        "--resume: the config changed since the checkpoint (lr: 0.0001 -> 0.0002, seed: 42 -> 1); "
        "use --resume-force to continue anyway"
    )
    assert compare(saved, current, force=True) == ["lr: 0.0001 -> 0.0002", "seed: 42 -> 1"]
    assert compare(saved, fingerprint(config(tmp_path)), force=False) == []


def test_data_is_compared_by_content_not_by_path(tmp_path: Path) -> None:
    saved = fingerprint(config(tmp_path))
    moved = tmp_path / "moved.jsonl"
    moved.write_bytes((tmp_path / "train.jsonl").read_bytes())
    assert compare(saved, fingerprint(config(tmp_path, train=str(moved))), force=False) == []
    moved.write_text('{"text": "bad", "label": 0}\n')
    with pytest.raises(
        UserError, match=rf"the training data changed since the checkpoint \(train: {moved}\)"
    ):
        compare(saved, fingerprint(config(tmp_path, train=str(moved))), force=False)


def test_adding_eval_data_is_a_change(tmp_path: Path) -> None:
    saved = fingerprint(config(tmp_path))
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"text": "fine", "label": 1}\n')
    with pytest.raises(UserError, match=rf"the evaluation data changed since the checkpoint \(eval: {dev}\)"):
        compare(saved, fingerprint(config(tmp_path, eval=str(dev))), force=False)


def test_files_are_hashed_and_hub_datasets_named(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    assert data_source(str(path)) == {
        "file": str(path),
        "bytes": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }
    assert data_source("glue/mrpc:train") == {"name": "glue/mrpc:train"}
    assert data_source(None) is None


def test_a_checkpoint_without_a_fingerprint_needs_force(tmp_path: Path) -> None:
    current = fingerprint(config(tmp_path))
    with pytest.raises(UserError, match="records no fingerprint"):
        compare(None, current, force=False)
    assert len(compare(None, current, force=True)) == 1


def test_resume_force_goes_with_resume() -> None:
    flags = {"train": "t.jsonl", "output": "run", "resume_force": True}
    with pytest.raises(UserError, match="'resume_force': only together with --resume"):
        build_config({}, flags)
    assert build_config({}, {**flags, "resume": True}).resume_force
