"""One writer per run folder: the flock, the pid in the message, and what the lock cleans up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from encoderkit.errors import UserError
from encoderkit.training.lock import LOCK_FILE, RunFolderLock


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with RunFolderLock(run_dir):
        assert (run_dir / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        # flock belongs to an open file, so a second open in the same process conflicts as well.
        with pytest.raises(UserError) as refused, RunFolderLock(run_dir):
            pass
        assert (
            str(refused.value)
            == f"{run_dir}: another encoderkit run is writing this folder (pid {os.getpid()})"
        )
        (run_dir / "log.jsonl").write_text("{}\n")
    with RunFolderLock(run_dir):  # released
        pass
    assert sorted(os.listdir(run_dir)) == ["log.jsonl"], "the lock file goes with the lock"


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("99999\n")  # no process holds its flock
    with RunFolderLock(tmp_path) as lock:
        assert lock.existed


def test_folders_the_lock_created_go_again_when_nothing_was_written(tmp_path: Path) -> None:
    with RunFolderLock(tmp_path / "runs" / "a") as lock:
        assert not lock.existed and (tmp_path / "runs" / "a").is_dir()
    assert os.listdir(tmp_path) == []
    with RunFolderLock(tmp_path / "runs" / "b"):
        (tmp_path / "runs" / "b" / "config.yaml").write_text("task: qa\n")
    assert os.listdir(tmp_path / "runs" / "b") == ["config.yaml"]


def test_an_existing_empty_folder_stays(tmp_path: Path) -> None:
    with RunFolderLock(tmp_path):
        pass
    assert tmp_path.is_dir()


def test_a_file_or_an_impossible_path_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"), RunFolderLock(tmp_path / "file"):
        pass
    impossible = RunFolderLock(tmp_path / "file" / "run")
    with pytest.raises(UserError, match=r"cannot create the run folder \(Not a directory\)"), impossible:
        pass
