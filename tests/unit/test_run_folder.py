"""The run folder's rules: who may use it, how checkpoints are published, pruned and cleaned up."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest

from encoderkit.errors import UserError
from encoderkit.training import checkpoints, run_folder
from encoderkit.training.lock import LOCK_FILE


def write_files(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")


def checkpoint(run_dir: Path, step: int, best_step: int | None = None, keep: int = 1) -> Path:
    return checkpoints.save_checkpoint(run_dir, step, write_files, {"best_step": best_step}, keep)


def best(run_dir: Path, step: int) -> Path:
    return checkpoints.save_best(run_dir, step, lambda p: p.write_bytes(b"best"))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- claim ---------------------------------------------------------------------------------------


def test_claim_accepts_a_new_or_empty_folder_and_one_holding_only_a_stale_lock(tmp_path: Path) -> None:
    assert run_folder.claim(tmp_path / "new", resume=False, overwrite=False) == tmp_path / "new"
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / LOCK_FILE).write_text("123\n")
    run_folder.claim(tmp_path / "locked", resume=False, overwrite=False)


def test_claim_refuses_a_used_folder_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "log.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match=r"an unfinished run \(try --resume\); pass --overwrite"):
        run_folder.claim(tmp_path, resume=False, overwrite=False)
    (tmp_path / "metrics.json").write_text("{}\n")
    with pytest.raises(UserError, match="a finished run; pass --overwrite"):
        run_folder.claim(tmp_path, resume=False, overwrite=False)
    run_folder.claim(tmp_path, resume=False, overwrite=True)
    assert names(tmp_path) == ["log.jsonl", "metrics.json"], "claim changes nothing"


def test_resume_needs_an_unfinished_folder_that_was_there(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no checkpoint to resume from"):
        run_folder.claim(tmp_path, resume=True, overwrite=False, existed=False)
    run_folder.claim(tmp_path, resume=True, overwrite=False)  # no checkpoint yet: starts from 0
    (tmp_path / "metrics.json").write_text("{}\n")
    with pytest.raises(UserError, match="already finished"):
        run_folder.claim(tmp_path, resume=True, overwrite=False)


def test_prepare_for_overwrite_keeps_only_the_lock(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("1\n")
    (tmp_path / "metrics.json").write_text("{}\n")
    write_files(tmp_path / "checkpoints" / "step-5")
    run_folder.prepare(tmp_path, overwrite=True, need_bytes=0)
    assert names(tmp_path) == [LOCK_FILE]


# --- disk space ----------------------------------------------------------------------------------


def test_space_needed_counts_the_checkpoints_that_coexist_while_one_is_published() -> None:
    # 1000 parameters, all trained: a checkpoint is 4 kB of weights + 8 kB of AdamW moments.
    assert run_folder.space_needed(1000, 1000, keep=1) == 2 * (12_000 + 4_000) + 4_000
    assert run_folder.space_needed(1000, 10, keep=2) == 3 * (4_080 + 4_000) + 4_000


def test_free_space_counts_what_the_run_will_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=3 * 2**20))
    with pytest.raises(UserError, match=r"needs about 5 MB for its checkpoints and model, 3 MB is free"):
        run_folder.check_free_space(tmp_path, 5 * 2**20)
    run_folder.check_free_space(tmp_path, 5 * 2**20, reclaimable=2 * 2**20)


# --- checkpoints ---------------------------------------------------------------------------------


def test_a_checkpoint_is_published_complete_with_its_meta_and_older_ones_pruned(tmp_path: Path) -> None:
    checkpoint(tmp_path, 5)
    final = checkpoint(tmp_path, 10, best_step=6)
    assert names(tmp_path / "checkpoints") == ["step-10"]
    assert names(final) == ["checkpoint.json", "model.safetensors"]
    assert json.loads((final / "checkpoint.json").read_text()) == {"step": 10, "best_step": 6}
    assert checkpoints.latest_checkpoint(tmp_path) == final
    assert checkpoints.read_meta(final) == {"step": 10, "best_step": 6}


def test_keep_k_and_the_best_weights_the_kept_checkpoints_refer_to(tmp_path: Path) -> None:
    best(tmp_path, 3)
    checkpoint(tmp_path, 5, best_step=3, keep=2)
    best(tmp_path, 6)
    checkpoint(tmp_path, 10, best_step=6, keep=2)
    best(tmp_path, 18)  # left by a killed run that got further than the checkpoint resumed from
    checkpoint(tmp_path, 15, best_step=6, keep=2)
    assert names(tmp_path / "checkpoints") == ["best", "step-10", "step-15"]
    assert names(tmp_path / "checkpoints" / "best") == ["step-6.safetensors"]
    assert checkpoints.latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-15"


def test_checkpoints_sort_by_step_number_not_by_name(tmp_path: Path) -> None:
    for step in (9, 10):
        checkpoint(tmp_path, step, keep=5)
    assert checkpoints.latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-10"


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_folder(tmp_path: Path) -> None:
    checkpoint(tmp_path, 5)

    def fail(folder: Path) -> None:
        write_files(folder)
        raise ValueError("writer bug")

    with pytest.raises(ValueError, match="writer bug"):
        checkpoints.save_checkpoint(tmp_path, 10, fail, {})
    assert names(tmp_path / "checkpoints") == ["step-5"]


def test_a_full_disk_in_a_writers_own_words_is_raised_as_the_os_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "probe")
    monkeypatch.setattr(checkpoints, "storage_error", lambda folder: full)

    def fail(folder: Path) -> None:
        write_files(folder)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    with pytest.raises(OSError) as raised:
        checkpoints.save_checkpoint(tmp_path, 10, fail, {})
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(tmp_path / "checkpoints" / ".tmp-step-10")
    assert names(tmp_path / "checkpoints") == []


def test_a_crash_during_a_save_leaves_a_temporary_folder_the_next_save_removes(tmp_path: Path) -> None:
    write_files(tmp_path / "checkpoints" / ".tmp-step-5")
    checkpoint(tmp_path, 10)
    assert names(tmp_path / "checkpoints") == ["step-10"]


def test_storage_error_is_none_where_a_write_works(tmp_path: Path) -> None:
    assert checkpoints.storage_error(tmp_path) is None
    assert names(tmp_path) == []
    missing = checkpoints.storage_error(tmp_path / "missing")
    assert missing is not None and missing.errno == errno.ENOENT


def test_best_weights_are_renamed_into_place(tmp_path: Path) -> None:
    path = best(tmp_path, 6)
    assert path == checkpoints.best_weights(tmp_path, 6) and path.read_bytes() == b"best"
    assert names(path.parent) == ["step-6.safetensors"]
