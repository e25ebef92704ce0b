"""Files and streams: every output el-larq writes goes through `write_atomic`.

* `write_atomic` / `atomic_path`: a file is either completely written or not there at
  all (unique temporary in the target directory, fsync, rename), with the permissions a
  plain `open(path, "w")` would give it (the umask's, not `mkstemp`'s 0600).
* `check_writable`: fail before a long job, not after it.
* `check_outputs`: no output path is an input or another output.
* `json_dumps`: JSON that takes NumPy values.
* `captured_stderr`: what C++ libraries (LCE's converter, TFLite) print on descriptor 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from el_larq.safety import DeploymentError

__all__ = [
    "OutputError",
    "atomic_path",
    "captured_stderr",
    "check_outputs",
    "check_writable",
    "json_dumps",
    "write_atomic",
]


class OutputError(DeploymentError):
    """An output path that cannot be written, explained in one line.

    A `DeploymentError`, so the tools that report those as `tool: error: ...` report
    these too.
    """


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _directory(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _temporary(path: Path, suffix: str) -> tuple[int, str]:
    # `.NAME.XXXXXXXX.tmp` beside the target: the rename stays on one file system, and
    # `el_larq.run_dir` recognises the leftovers of a killed run by this pattern.
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=_directory(path))
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


def _fsync_directory(directory: Path) -> None:
    # The rename itself survives a power cut only once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes, chunk_size: int = 1 << 20) -> int:
    """Write `data` to `path` so that `path` is either the complete new file or untouched.

    The bytes go to a uniquely named temporary file in the same directory, are flushed
    to disk, and the file is renamed over `path` (atomic on POSIX); on any error the
    temporary is removed. The file gets the permissions `open()` would give it.

    # Arguments
        path: Destination file.
        data: The bytes to write.
        chunk_size: Write in chunks of this many bytes.

    # Returns
        The number of bytes written.

    # Raises
        OutputError: the directory does not exist or is not writable.

    # Example
        ```python
        write_atomic("model.tflite", flatbuffer)
        ```
    """
    path = Path(path)
    handle, temporary = _temporary(path, ".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp's 0600 would surprise users
        with os.fdopen(handle, "wb") as f:
            for start in range(0, len(data), chunk_size):
                f.write(data[start : start + chunk_size])
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(_directory(path))
    return len(data)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary path to write `path` through, for writers that need a file name.

    Keras' `model.save` and matplotlib's `savefig` write to a name, not to bytes: give
    them the yielded name; when the block ends without an error the file is flushed to
    disk, given `open()`'s permissions and renamed over `path`. On an error it is
    removed and `path` is untouched.

    # Arguments
        path: Destination file.
        suffix: Ending of the temporary's name (e.g. `".tmp.h5"` for writers that
            pick the format from it).

    # Returns
        A context manager yielding the temporary's path.

    # Raises
        OutputError: the directory does not exist or is not writable.

    # Example
        ```python
        with atomic_path("runs/a/model.h5", suffix=".tmp.h5") as tmp:
            model.save(tmp, save_format="h5")
        ```
    """
    path = Path(path)
    handle, temporary = _temporary(path, suffix)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(_directory(path))


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before a long conversion) when `path` cannot be written.

    # Arguments
        path: The output file.

    # Raises
        OutputError: the parent is missing or not a writable directory, or `path` is a
            directory.

    # Example
        ```python
        check_writable("out/model.tflite")
        ```
    """
    path = Path(path)
    parent = _directory(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: {parent} is not writable")


def json_dumps(value: Any) -> str:
    """`json.dumps` that also takes NumPy scalars and arrays (reports hold both).

    # Arguments
        value: What to serialise.

    # Returns
        Indented JSON text.

    # Example
        ```python
        text = json_dumps({"max_abs": np.float32(1e-6)})
        ```
    """

    def default(item: Any) -> Any:
        import numpy as np  # only reports that hold NumPy values get here

        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, np.ndarray):
            return item.tolist()
        raise TypeError(f"not JSON serialisable: {type(item).__name__}")

    return json.dumps(value, indent=2, default=default)


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture file descriptor 2, where C++ code (LCE's converter, TFLite) prints.

    # Returns
        A context manager yielding a list that holds the captured lines once the
        block has ended.

    # Example
        ```python
        with captured_stderr() as lines:
            flatbuffer = lce.convert_keras_model(model)
        print(lines)
        ```
    """
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines.extend(capture.read().decode(errors="replace").splitlines())


# ---------------------------------------------------------------- output paths
def _same(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:  # one of them does not exist yet
        return False


def _inside(path: Path, directory: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(directory)
    return real.startswith(base.rstrip(os.sep) + os.sep)


def check_outputs(
    inputs: Iterable[str | os.PathLike], outputs: Mapping[str, str | os.PathLike | None]
) -> None:
    """Refuse output paths that would overwrite an input or each other.

    Paths are compared by their resolved real paths and, when both exist, by
    `os.path.samefile` (symbolic and hard links); an output inside an input directory
    (a SavedModel) is refused too.

    # Arguments
        inputs: The input paths.
        outputs: `{flag: path}` of the outputs (None: not requested).

    # Raises
        DeploymentError: names both flags / the input.

    # Example
        ```python
        check_outputs(["m.h5"], {"-o": "m.tflite", "--json": "report.json"})
        ```
    """
    given = [(flag, Path(path)) for flag, path in outputs.items() if path is not None]
    for flag, out in given:
        for source in map(Path, inputs):
            if _same(out, source) or (source.is_dir() and _inside(out, source)):
                raise DeploymentError(
                    f"{flag} {out} would overwrite the input {source}; choose another path"
                )
    for i, (flag, out) in enumerate(given):
        for other_flag, other in given[:i]:
            if _same(out, other):
                raise DeploymentError(
                    f"{flag} {out} is the same file as {other_flag} {other}; give each output "
                    "its own path"
                )
