"""The output directory of a training run: one run per directory, locked, never clobbered.

`train()` checks the directory before it loads data (`preflight`), and claims it only
after the data and model are known to work (`RunDir.claim`):

* a lock (`.train.lock`, `fcntl.flock`) keeps two trainings out of one directory; the
  kernel drops it when its process dies, even by `kill -9`, so a stale lock file is
  simply taken over;
* a directory that holds a run with another recorded configuration (`config.json`) is
  refused, naming the keys that differ, before anything is rewritten;
* `--overwrite` removes only the files a run writes (`RUN_FILES`, `RUN_DIRS`), never
  anything else in the directory;
* a run that fails without a backup to resume from removes the directory when it made
  it, or else leaves a `FAILED` file saying why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from typing import Any

__all__ = [
    "BACKUP",
    "FAILED",
    "IGNORED_KEYS",
    "LOCK",
    "RUN_DIRS",
    "RUN_FILES",
    "RunDir",
    "RunDirError",
    "config_differences",
    "is_finished",
    "preflight",
    "remove_backup",
]

FINAL_MODEL = "model.h5"
FAILED = "FAILED"
LOCK = ".train.lock"
BACKUP = "backup"
# Everything a run writes. `--overwrite` removes these and nothing else; the final model
# goes last, so that a removal cut short still reads as a finished run.
RUN_FILES = (
    "config.json",
    "command.txt",
    FAILED,
    "metrics.json",
    "metrics.csv",
    "curves.png",
    "gamma_report.json",
    "gamma_report.png",
    "checkpoints/last.h5",
    "checkpoints/best.h5",
)
RUN_DIRS = (BACKUP, "logs/train", "logs/validation")
# Parents that a run creates; removed when the removal leaves them empty.
_RUN_PARENTS = ("checkpoints", "logs")
_RUN_BASENAMES = {os.path.basename(name) for name in (*RUN_FILES, *RUN_DIRS, FINAL_MODEL)}
# Recorded keys that may change between the parts of one run: where and how it runs,
# not what it computes.
IGNORED_KEYS = frozenset(
    {
        "output_dir",
        "command",
        "overwrite",
        "verbose",
        "download",
        "jit_compile",
        "backup_steps",
        "strategy",
        "strategy_class",
        "replicas",
        "versions",
    }
)


class RunDirError(ValueError):
    """The output directory cannot take this run; the message says what to do."""


def _is_temporary(name: str) -> bool:
    # Temporaries of the run's atomic writes (`.metrics.json.XXXX.tmp`,
    # `.model.h5.PID.tmp.h5`) and its directories being removed (`.backup.removing`): a
    # killed run leaves them behind. Only the run's own names match, no other hidden file.
    for base in _RUN_BASENAMES:
        if name == f".{base}.removing" or (
            name.startswith(f".{base}.") and name.endswith((".tmp", ".tmp.h5"))
        ):
            return True
    return False


def _run_paths(out: str) -> list[str]:
    """The run's files and directories that exist in `out`, model.h5 last."""
    found = [name for name in (*RUN_FILES, *RUN_DIRS) if os.path.lexists(os.path.join(out, name))]
    for parent in ("", *_RUN_PARENTS):
        directory = os.path.join(out, parent)
        if os.path.isdir(directory):
            names = sorted(os.listdir(directory))
            found += [os.path.join(parent, name) for name in names if _is_temporary(name)]
    if os.path.lexists(os.path.join(out, FINAL_MODEL)):
        found.append(FINAL_MODEL)
    return found


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        # Renamed first: a removal cut short never leaves a half-deleted backup behind.
        doomed = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.removing")
        if os.path.lexists(doomed):
            shutil.rmtree(doomed, ignore_errors=True)
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def remove_backup(out: str) -> None:
    """Remove `out/backup` so that it is either whole or gone, never half-deleted."""
    _remove(os.path.join(out, BACKUP))


def _has_backup(out: str) -> bool:
    backup = os.path.join(out, BACKUP)
    return os.path.isdir(backup) and bool(os.listdir(backup))


def is_finished(out: str) -> bool:
    """Whether `out` holds a run that ended: `model.h5` written, no backup, no failure.

    # Example
        ```python
        if not is_finished("runs/a/1_soft"):
            ...  # train (or resume) it
        ```
    """
    return (
        os.path.exists(os.path.join(out, FINAL_MODEL))
        and not _has_backup(out)
        and not os.path.exists(os.path.join(out, FAILED))
    )


def _reason(out: str) -> str:
    try:
        with open(os.path.join(out, FAILED)) as f:
            return " ".join(f.read().split())[:200]
    except OSError:
        return "reason unknown"


def _writable_error(out: str) -> str | None:
    """Why `out` cannot be created or written, without creating anything; None if it can."""
    path = os.path.abspath(out)
    if os.path.exists(path):
        if not os.path.isdir(path):
            return "it is not a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else "permission denied"
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{parent} is not a directory"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"{parent} is not writable"


def preflight(out: str, overwrite: bool) -> None:
    """Read-only checks of `out` before any work: writable, no finished or failed run in it.

    # Arguments
        out: The output directory (may not exist yet).
        overwrite: `--overwrite` was given.

    # Raises
        RunDirError: the directory cannot be written, or holds a finished or failed run
            and `overwrite` is False.
    """
    reason = _writable_error(out)
    if reason:
        raise RunDirError(f"cannot write to --output_dir {out}: {reason}.")
    if overwrite or not os.path.isdir(out):
        return
    if os.path.exists(os.path.join(out, FAILED)) and not _has_backup(out):
        raise RunDirError(
            f"{out} holds a failed run ({FAILED}: {_reason(out)}); pass --overwrite to replace "
            "it (only the run's files are removed), or choose another --output_dir."
        )
    if is_finished(out):
        raise RunDirError(
            f"{out} already holds a finished run ({FINAL_MODEL}); pass --overwrite to train "
            "again there (only the run's files are removed), or choose another --output_dir."
        )


def _comparable(value: Any) -> Any:
    return json.loads(json.dumps(value))  # tuples become lists, as in config.json


def config_differences(recorded: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """The keys whose values differ between a recorded and a new run configuration.

    Keys in `IGNORED_KEYS` (where and how the run executes) and keys that only one of
    the two has (written by another el_larq version) are not compared.

    # Arguments
        recorded: The `config.json` of the run in the directory.
        record: The configuration of the new run, as it would be recorded.

    # Returns
        `["model: 'el_resnet18' now, 'el_resnet26' recorded", ...]`, empty when equal.
    """
    new = _comparable(record)
    keys = sorted((set(recorded) & set(new)) - IGNORED_KEYS)
    return [
        f"{key}: {new[key]!r} now, {recorded[key]!r} recorded"
        for key in keys
        if recorded[key] != new[key]
    ]


class RunDir:
    """One training run's claim on its output directory.

    # Arguments
        out: The output directory.
        verbose: Say what is taken over or removed.

    # Example
        ```python
        run = RunDir("runs/a")
        resuming = run.claim(record, overwrite=False)
        try:
            ...  # train
        except BaseException as error:
            run.fail(str(error))
            raise
        finally:
            run.release()
        ```
    """

    def __init__(self, out: str, verbose: bool = True) -> None:
        self.out = out
        self.verbose = verbose
        self.created: str | None = None  # topmost directory this run created
        self._lock_fd: int | None = None

    # Lock --------------------------------------------------------------------------

    def _lock(self) -> None:
        path = os.path.join(self.out, LOCK)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode(errors="replace").split()
                os.close(fd)
                who = f"pid {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another process"
                raise RunDirError(
                    f"another training ({who}) is running in {self.out}; wait for it to end, "
                    "or choose another --output_dir."
                ) from None
            # The holder may have removed the file between our open and flock: retry on
            # the file that is there now.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = os.read(fd, 200).decode(errors="replace").split()
        if stale and self.verbose:
            print(f"taking over the lock of pid {stale[0]}, which is no longer running")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._lock_fd = fd

    def release(self) -> None:
        """Drop the lock (and its file); the kernel does the same if the process dies."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(os.path.join(self.out, LOCK))
        os.close(self._lock_fd)
        self._lock_fd = None
        if self.created and os.path.isdir(self.out):
            self._remove_created_if_empty()

    # Claim -------------------------------------------------------------------------

    def claim(self, record: dict[str, Any], overwrite: bool) -> bool:
        """Create and lock the directory and decide whether the run resumes.

        Nothing of an earlier run is rewritten before this has accepted the directory.

        # Arguments
            record: The configuration the run will record in `config.json`.
            overwrite: Replace an earlier run (only its files) unless it is an
                interrupted run of the same configuration, which resumes.

        # Returns
            True when a backup of this same run exists and training resumes from it.

        # Raises
            RunDirError: another training holds the lock, the directory holds another
                run (finished, failed or with a different configuration) and `overwrite`
                is False, or the directory cannot be created.
        """
        path = os.path.abspath(self.out)
        top = path
        while not os.path.exists(os.path.dirname(top)):
            top = os.path.dirname(top)
        try:
            if not os.path.exists(path):
                os.makedirs(path)
                self.created = top
            self._lock()
        except OSError as error:
            raise RunDirError(
                f"cannot write to --output_dir {self.out}: {error.strerror or error}."
            ) from error
        try:
            return self._decide(record, overwrite)
        except BaseException:
            self.release()
            raise

    def _decide(self, record: dict[str, Any], overwrite: bool) -> bool:
        out = self.out
        found = [name for name in _run_paths(out) if not _is_temporary(os.path.basename(name))]
        backup = _has_backup(out)
        finished = os.path.exists(os.path.join(out, FINAL_MODEL))
        failed = os.path.exists(os.path.join(out, FAILED))
        recorded, unreadable = None, ""
        config = os.path.join(out, "config.json")
        if os.path.exists(config):
            try:
                with open(config) as f:
                    recorded = json.load(f)
                if not isinstance(recorded, dict):
                    raise ValueError("not a JSON mapping")
            except (OSError, ValueError) as error:
                recorded, unreadable = None, f"its config.json is unreadable ({error})"
        differences = config_differences(recorded, record) if recorded is not None else []
        same_run = recorded is not None and not differences
        if not found:
            self._clean_temporaries()
            return False
        if overwrite:
            if backup and same_run and not failed:
                self._clean_temporaries()
                return True  # the same command after a crash: resume, do not start over
            self._remove_run()
            return False
        if failed and not backup:
            raise RunDirError(
                f"{out} holds a failed run ({FAILED}: {_reason(out)}); pass --overwrite to "
                "replace it (only the run's files are removed), or choose another --output_dir."
            )
        if finished and not backup:
            raise RunDirError(
                f"{out} already holds a finished run ({FINAL_MODEL}); pass --overwrite to train "
                "again there (only the run's files are removed), or choose another --output_dir."
            )
        if not same_run:
            what = "; ".join(differences) or unreadable or "it has no config.json"
            raise RunDirError(
                f"{out} holds another run ({what}); resume it with its recorded settings, pass "
                "--overwrite to replace it (only the run's files are removed), or choose "
                "another --output_dir."
            )
        self._clean_temporaries()
        return backup

    def _clean_temporaries(self) -> None:
        for name in _run_paths(self.out):
            if _is_temporary(os.path.basename(name)):
                with contextlib.suppress(OSError):
                    _remove(os.path.join(self.out, name))

    def _remove_run(self) -> None:
        removed = _run_paths(self.out)
        for name in removed:
            _remove(os.path.join(self.out, name))
        for parent in _RUN_PARENTS:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(self.out, parent))  # only when empty
        if removed and self.verbose:
            print(
                f"--overwrite: removed the earlier run's {', '.join(removed)} from {self.out} "
                "(other files left alone)"
            )

    # Failure -----------------------------------------------------------------------

    def fail(self, reason: str) -> str:
        """Clean up after a run that failed; returns what became of the directory.

        A backup to resume from is kept. Without one, a directory this run created is
        removed (it holds nothing else), and an existing one gets a `FAILED` file with
        the reason, so that the next run there needs `--overwrite`.

        # Arguments
            reason: One line: why the run failed.

        # Returns
            A phrase for the error message, e.g. `"runs/a was removed"`.
        """
        if _has_backup(self.out):
            return f"the backup in {os.path.join(self.out, BACKUP)} is kept; rerun to resume"
        if self.created:
            for name in _run_paths(self.out):
                with contextlib.suppress(OSError):
                    _remove(os.path.join(self.out, name))
            for parent in _RUN_PARENTS:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(self.out, parent))
            self.release()
            if not os.path.exists(self.out):
                return f"{self.out} was removed"
        from el_larq.io import write_atomic

        write_atomic(os.path.join(self.out, FAILED), (" ".join(reason.split()) + "\n").encode())
        return f"{self.out} is marked failed ({FAILED})"

    def _remove_created_if_empty(self) -> None:
        # Up to the topmost directory this run made, and only while they are empty.
        path = os.path.abspath(self.out)
        stop = os.path.dirname(self.created or path)
        while path != stop:
            try:
                os.rmdir(path)
            except OSError:
                return
            path = os.path.dirname(path)
