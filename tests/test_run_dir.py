"""el_larq.run_dir: when a run directory holds a finished run."""

import pytest

from el_larq import run_dir


def test_is_finished_needs_the_model_and_no_backup_or_failure(tmp_path):
    assert not run_dir.is_finished(str(tmp_path / "missing"))
    assert not run_dir.is_finished(str(tmp_path))
    (tmp_path / "model.h5").write_bytes(b"x")
    assert run_dir.is_finished(str(tmp_path))
    (tmp_path / run_dir.BACKUP).mkdir()
    assert run_dir.is_finished(str(tmp_path))  # an empty backup folder is no backup
    (tmp_path / run_dir.BACKUP / "state").write_bytes(b"x")
    assert not run_dir.is_finished(str(tmp_path))  # killed while training again: resumable
    (tmp_path / run_dir.BACKUP / "state").unlink()
    (tmp_path / run_dir.FAILED).write_text("diverged")
    assert not run_dir.is_finished(str(tmp_path))
    with pytest.raises(run_dir.RunDirError, match="holds a failed run"):
        run_dir.preflight(str(tmp_path), overwrite=False)
    (tmp_path / run_dir.FAILED).unlink()
    with pytest.raises(run_dir.RunDirError, match="already holds a finished run"):
        run_dir.preflight(str(tmp_path), overwrite=False)
    run_dir.preflight(str(tmp_path), overwrite=True)
