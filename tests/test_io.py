"""el_larq.io: atomic writes (bytes and through a file name), JSON, captured stderr, output
paths that would overwrite an input or each other."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from el_larq import io
from el_larq.safety import DeploymentError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_write_atomic_gives_the_umask_permissions_and_leaves_no_temporary(tmp_path, umask_027):
    target = tmp_path / "report.json"
    assert io.write_atomic(target, b"{}") == 2
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask_027  # 0640, not 0600
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_atomic_replaces_an_existing_file_and_uses_unique_temporaries(tmp_path, monkeypatch):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"old")
    names = set()
    real = io.tempfile.mkstemp

    def recording(*args, **kwargs):
        handle, name = real(*args, **kwargs)
        names.add(os.path.basename(name))
        return handle, name

    monkeypatch.setattr(io.tempfile, "mkstemp", recording)
    io.write_atomic(target, b"new 1")
    io.write_atomic(target, b"new 2")
    assert target.read_bytes() == b"new 2"
    assert len(names) == 2 and all(n.startswith(".m.tflite.") for n in names)
    assert all(n.endswith(".tmp") for n in names)  # what el_larq.run_dir cleans up


def test_atomic_path_writes_through_a_name_with_umask_permissions(tmp_path, umask_027):
    target = tmp_path / "plot.png"
    with io.atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and not target.exists()
        with open(tmp, "wb") as f:
            f.write(b"png")
    assert target.read_bytes() == b"png"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask_027
    assert os.listdir(tmp_path) == ["plot.png"]


def test_atomic_path_failing_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.h5"
    target.write_bytes(b"old model")
    with pytest.raises(RuntimeError, match="writer died"), io.atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half a model")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["model.h5"]


def test_outputs_in_a_missing_directory_are_one_line_errors(tmp_path):
    missing = tmp_path / "missing" / "out.json"
    with pytest.raises(io.OutputError, match="cannot write"):
        io.write_atomic(missing, b"x")
    with pytest.raises(io.OutputError, match="cannot write"), io.atomic_path(missing):
        pass
    with pytest.raises(io.OutputError, match="it is a directory"):
        io.check_writable(tmp_path)


def test_json_dumps_takes_numpy_values():
    text = io.json_dumps({"a": np.float32(0.5), "b": np.arange(3), "c": np.int64(7)})
    assert text == '{\n  "a": 0.5,\n  "b": [\n    0,\n    1,\n    2\n  ],\n  "c": 7\n}'
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        io.json_dumps(object())


def test_captured_stderr_holds_what_was_written_to_descriptor_2():
    with io.captured_stderr() as lines:
        os.write(2, b"error: from C++\nsecond line\n")
    assert lines == ["error: from C++", "second line"]


def test_outputs_that_are_inputs_or_each_other_are_refused(tmp_path):
    model = tmp_path / "m.h5"
    model.write_bytes(b"model")
    os.symlink(model, tmp_path / "link.h5")
    os.link(model, tmp_path / "hard.h5")
    (tmp_path / "sm").mkdir()
    cases = {
        "m.h5": "would overwrite the input",
        "link.h5": "would overwrite the input",
        "hard.h5": "would overwrite the input",
        "sub/../m.h5": "would overwrite the input",
    }
    for output, reason in cases.items():
        with pytest.raises(DeploymentError, match=reason):
            io.check_outputs([model], {"-o": tmp_path / output})
    with pytest.raises(DeploymentError, match="would overwrite the input"):
        io.check_outputs([tmp_path / "sm"], {"-o": tmp_path / "sm" / "saved_model.pb"})
    with pytest.raises(DeploymentError, match="--json .* is the same file as -o"):
        io.check_outputs([model], {"-o": tmp_path / "x", "--json": Path(f"{tmp_path}/./x")})
    io.check_outputs([model], {"-o": tmp_path / "m.tflite", "--json": None})
    assert model.read_bytes() == b"model"


class _FailsMidWrite(bytes):
    """Bytes whose second chunk cannot be read: the write dies half way."""

    def __getitem__(self, key):
        if isinstance(key, slice) and key.start:
            raise OSError("disk unplugged")
        return super().__getitem__(key)


def test_atomic_write_failing_mid_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old model")
    with pytest.raises(OSError, match="disk unplugged"):
        io.write_atomic(target, _FailsMidWrite(b"x" * 100), chunk_size=10)
    assert target.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_atomic_write_writes_everything(tmp_path):
    target = tmp_path / "model.tflite"
    data = np.random.default_rng(0).bytes(1000)
    assert io.write_atomic(target, data, chunk_size=64) == 1000
    assert target.read_bytes() == data
    assert os.listdir(tmp_path) == ["model.tflite"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # like open(), not 0600


def test_atomic_write_into_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DeploymentError, match="cannot write"):
        io.write_atomic(tmp_path / "missing" / "model.tflite", b"x")
    with pytest.raises(DeploymentError, match="not a directory"):
        io.check_writable(tmp_path / "missing" / "model.tflite")
