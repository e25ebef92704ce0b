"""Latency on an ARM device, through LCE's `lce_benchmark_model`: commands and parsing.

The values that end up on the device's command line (`--host`, `--remote_dir`, file
names) are checked here first (`check_ssh_host`, `check_remote_dir`, `remote_name`).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from el_larq.deploy.host import Latency
from el_larq.safety import DeploymentError

__all__ = [
    "DEVICE_MODES",
    "check_remote_dir",
    "check_ssh_host",
    "device_commands",
    "device_latency",
    "parse_benchmark_output",
    "remote_name",
    "run_device_benchmark",
]

DEVICE_MODES = ("local", "adb", "ssh")

# Destinations as ssh and scp both read them without doubt: [user@]host, where host is
# a name, an address or an ssh_config alias. Nothing that starts with '-' (an option),
# contains ':' (scp's host:path separator), '/' (scp: a local path) or whitespace.
_SSH_HOST = re.compile(r"(?:[A-Za-z0-9._+-]+@)?[A-Za-z0-9][A-Za-z0-9._-]*")
# Remote paths that every shell, scp (legacy and SFTP mode) and adb take literally.
_REMOTE_SAFE = re.compile(r"[A-Za-z0-9._/+-]+")


def check_ssh_host(host: str | None) -> str:
    """The ssh destination, if it cannot be read as an option or a path.

    # Raises
        DeploymentError: missing, or anything but `[user@]host` made of letters,
            digits, `.`, `_`, `-` (not first) and `+` in the user name.

    # Example
        ```python
        check_ssh_host("pi@raspberrypi.local")
        ```
    """
    if not host:
        raise DeploymentError("ssh mode needs --host, e.g. --host=pi@raspberrypi.local")
    if not _SSH_HOST.fullmatch(host):
        raise DeploymentError(
            f"--host {host!r} is not [user@]host (letters, digits, '.', '_', '-', not "
            "starting with '-'); use an ssh_config Host alias for ports and other options"
        )
    return host


def check_remote_dir(remote_dir: str) -> str:
    """The device directory, if it is absolute and every shell reads it literally.

    # Raises
        DeploymentError: relative, or characters other than letters, digits, `._/+-`
            (spaces, quotes, `$`, newlines, ... would need a shell's quoting, which scp's
            SFTP mode does not undo).

    # Example
        ```python
        check_remote_dir("/data/local/tmp")
        ```
    """
    if not remote_dir.startswith("/"):
        raise DeploymentError(
            f"--remote_dir {remote_dir!r} must be an absolute path on the device, e.g. /tmp"
        )
    if not _REMOTE_SAFE.fullmatch(remote_dir):
        raise DeploymentError(
            f"--remote_dir {remote_dir!r} may only contain letters, digits and . _ / + -"
        )
    return remote_dir.rstrip("/") or "/"


def remote_name(local: str) -> str:
    """The file name a local file gets on the device: its own, with every character a
    shell or scp might interpret replaced by `_` (and never starting with `-`).

    # Example
        ```python
        assert remote_name("out/my model.tflite") == "my_model.tflite"
        ```
    """
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", Path(local).name) or "model"
    return "_" + name[1:] if name.startswith("-") else name


def device_commands(
    graph: str,
    *,
    mode: str = "local",
    binary: str = "lce_benchmark_model",
    num_threads: int = 1,
    num_runs: int = 50,
    host: str | None = None,
    serial: str | None = None,
    remote_dir: str = "/data/local/tmp",
    extra_flags: Sequence[str] = (),
) -> list[list[str]]:
    """The commands that run LCE's `lce_benchmark_model` on a model, on or via a device.

    * `local`: run the binary here (on the Raspberry Pi / ARM board itself).
    * `adb`: push binary and model to an Android device and run them there.
    * `ssh`: copy binary and model to a Pi (`host`, e.g. `pi@raspberrypi.local`) and run
      them there.

    Nothing a user typed can become an option or shell code: local paths are made
    absolute (never starting with `-`), `--` ends ssh's and scp's options, hosts must
    be plain `[user@]host`, the remote directory must be absolute and made of
    characters every shell and scp mode take literally, the remote file names are the
    local ones with any other character replaced by `_`, and the remote commands are
    `shlex`-quoted (adb and ssh hand them to the device's shell).

    # Arguments
        graph: Path of the `.tflite` model here.
        mode: One of `DEVICE_MODES`.
        binary: Path of `lce_benchmark_model` here (from an LCE release: aarch64, arm32
            or android_arm64).
        num_threads: `--num_threads` of the benchmark.
        num_runs: `--num_runs` of the benchmark.
        host: ssh destination (`ssh` mode).
        serial: adb device serial (`adb` mode, optional).
        remote_dir: Absolute directory on the device for binary and model.
        extra_flags: More `lce_benchmark_model` flags, e.g. `["--warmup_runs=5"]`.

    # Returns
        A list of argv lists, to be run in order; the last one prints the timings.

    # Raises
        DeploymentError: an unknown mode, or a host, serial or remote directory that
            could be read as an option or need shell quoting (one line).

    # Example
        ```python
        for argv in device_commands("m.tflite", mode="adb", binary="lce_benchmark_model"):
            subprocess.run(argv, check=True)
        ```
    """
    if mode not in DEVICE_MODES:
        raise DeploymentError(
            f"unknown device mode '{mode}'; valid modes: {', '.join(DEVICE_MODES)}"
        )
    flags = [f"--num_threads={num_threads}", f"--num_runs={num_runs}", *extra_flags]
    if mode == "local":
        # A relative name without '/' is looked up on PATH; anything else runs as given,
        # made absolute so that it cannot start with '-'.
        on_path = "/" not in binary and not binary.startswith("-")
        local_binary = binary if on_path else os.path.abspath(binary)
        return [[local_binary, f"--graph={os.path.abspath(graph)}", *flags]]
    remote_dir = check_remote_dir(remote_dir)
    base = remote_dir.rstrip("/")
    remote_binary = f"{base}/{remote_name(binary)}"
    remote_graph = f"{base}/{remote_name(graph)}"
    if remote_binary == remote_graph:
        raise DeploymentError(
            f"the binary and the model would both be {remote_graph} on the device; rename one"
        )
    # Absolute local paths: adb has no `--`, and no operand may look like an option.
    local_binary, local_graph = os.path.abspath(binary), os.path.abspath(graph)
    # adb shell and ssh hand the command to the device's shell: quote every word.
    remote_run = shlex.join([remote_binary, f"--graph={remote_graph}", *flags])
    chmod = shlex.join(["chmod", "+x", remote_binary])
    if mode == "adb":
        if serial is not None and not re.fullmatch(r"[A-Za-z0-9._:][A-Za-z0-9._:-]*", serial):
            raise DeploymentError(f"--serial {serial!r} is not an adb device serial")
        adb = ["adb", *(["-s", serial] if serial else [])]
        return [
            [*adb, "push", local_binary, remote_binary],
            [*adb, "shell", chmod],
            [*adb, "push", local_graph, remote_graph],
            [*adb, "shell", remote_run],
        ]
    host = check_ssh_host(host)
    return [
        ["ssh", "--", host, shlex.join(["mkdir", "-p", remote_dir])],
        # One file per scp with its full remote path: the remote name is ours, and the
        # checked remote path reads the same in scp's legacy (shell) and SFTP modes.
        ["scp", "--", local_binary, f"{host}:{remote_binary}"],
        ["scp", "--", local_graph, f"{host}:{remote_graph}"],
        ["ssh", "--", host, f"{chmod} && {remote_run}"],
    ]


_TIMINGS = re.compile(
    r"Inference timings in us: Init: (?P<init>[\d.e+]+), First inference: (?P<first>[\d.e+]+), "
    r"Warmup \(avg\): (?P<warmup>[\d.e+]+), Inference \(avg\): (?P<avg>[\d.e+]+)"
)
_STATS = re.compile(
    r"count=(?P<count>\d+) first=(?P<first>[\d.e+]+) curr=(?P<curr>[\d.e+]+) "
    r"min=(?P<min>[\d.e+]+) max=(?P<max>[\d.e+]+) avg=(?P<avg>[\d.e+]+) std=(?P<std>[\d.e+]+)"
)


def parse_benchmark_output(text: str) -> dict[str, float]:
    """Parse the output of (LCE's) TFLite `benchmark_model`.

    It reads the summary line `Inference timings in us: Init: ..., First inference: ...,
    Warmup (avg): ..., Inference (avg): ...` and the last `count=... min=... max=...
    avg=... std=...` line (the timed runs; the one before is the warm-up).

    # Arguments
        text: The tool's combined stdout and stderr.

    # Returns
        `{"init_us", "first_us", "warmup_avg_us", "avg_us", "count", "min_us", "max_us",
        "std_us"}` (the last four only when the stats line is there).

    # Raises
        DeploymentError: no timings in `text` (the last lines are quoted).

    # Example
        ```python
        timings = parse_benchmark_output(subprocess.run(argv, capture_output=True,
                                                        text=True).stdout)
        ```
    """
    found = _TIMINGS.search(text)
    if not found:
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise DeploymentError(f"no 'Inference timings in us' line in the benchmark output: {tail}")
    result = {
        "init_us": float(found["init"]),
        "first_us": float(found["first"]),
        "warmup_avg_us": float(found["warmup"]),
        "avg_us": float(found["avg"]),
    }
    stats = list(_STATS.finditer(text))
    if stats:
        last = stats[-1]
        result.update(
            count=int(last["count"]),
            min_us=float(last["min"]),
            max_us=float(last["max"]),
            std_us=float(last["std"]),
        )
    return result


def device_latency(
    name: str, timings: dict[str, float], *, where: str, num_threads: int
) -> Latency:
    """`parse_benchmark_output`'s timings as a `Latency` row (no median: not printed).

    # Example
        ```python
        row = device_latency("el", parse_benchmark_output(text), where="adb", num_threads=1)
        ```
    """
    avg = timings["avg_us"] / 1e3
    return Latency(
        model=name,
        where=where,
        num_threads=num_threads,
        kernel="lce_benchmark_model",
        runs=int(timings.get("count", 0)),
        mean_ms=avg,
        median_ms=None,
        min_ms=timings.get("min_us", timings["avg_us"]) / 1e3,
        max_ms=timings.get("max_us", timings["avg_us"]) / 1e3,
    )


def run_device_benchmark(
    commands: list[list[str]], runner: Callable[..., Any] | None = None
) -> dict[str, float]:
    """Run `device_commands`' output in order and parse the last command's output.

    # Arguments
        commands: From `device_commands`.
        runner: `subprocess.run`-like callable (tests pass a fake device here).

    # Raises
        DeploymentError: a command is missing or fails (its output is quoted).
    """
    import subprocess

    runner = runner or subprocess.run
    output = ""
    for argv in commands:
        try:
            result = runner(argv, capture_output=True, text=True)
        except FileNotFoundError:
            raise DeploymentError(f"'{argv[0]}' not found; is it installed and on PATH?") from None
        output = (result.stdout or "") + (result.stderr or "")
        if result.returncode != 0:
            tail = " | ".join(output.strip().splitlines()[-3:])
            raise DeploymentError(f"`{shlex.join(argv)}` failed ({result.returncode}): {tail}")
    return parse_benchmark_output(output)
