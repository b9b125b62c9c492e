"""`albert_cli.training.rundir.RunDir`, in process: the checks, the staging directory, what a failure keeps and
what the commit drops."""

from __future__ import annotations

import pytest

from albert_cli.errors import UsageError


def test_run_dir_checks_opens_commits_and_drops_the_training_state(tmp_path):
    from albert_cli.training.rundir import RunDir

    out = tmp_path / "m"
    out.mkdir()
    (out / "x").write_text("old")
    with pytest.raises(UsageError, match="not empty"):
        RunDir(out).check()
    with pytest.raises(UsageError, match="nothing to resume"):
        RunDir(tmp_path / "fresh", resume=True).check()
    run = RunDir(out, overwrite=True)
    run.check()
    staging = run.open()
    assert staging == tmp_path / "m.partial" and staging.is_dir()
    run.checkpoints.mkdir()
    (run.checkpoints / "ckpt-1.json").write_text("{}")
    (staging / "model.txt").write_text("new")
    run.commit(keep_checkpoints=False)
    assert (out / "model.txt").read_text() == "new" and not (out / "x").exists()
    assert not (out / "checkpoints").exists() and not staging.exists()

    kept = RunDir(tmp_path / "k")
    kept.open()
    kept.checkpoints.mkdir()
    (kept.checkpoints / "ckpt-1.json").write_text("{}")
    kept.commit(keep_checkpoints=True)
    assert (tmp_path / "k" / "checkpoints" / "ckpt-1.json").is_file()


def test_run_dir_keeps_a_failed_staging_only_with_a_checkpoint(tmp_path):
    from albert_cli.training.rundir import RunDir

    empty = RunDir(tmp_path / "a")
    empty.open()
    empty.discard_if_empty()
    assert not (tmp_path / "a.partial").exists()
    resumable = RunDir(tmp_path / "b")
    resumable.open()
    resumable.checkpoints.mkdir()
    (resumable.checkpoints / "ckpt-3.json").write_text("{}")
    resumable.discard_if_empty()
    assert (tmp_path / "b.partial" / "checkpoints" / "ckpt-3.json").is_file()
