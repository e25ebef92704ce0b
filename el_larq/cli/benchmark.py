"""Latency of LCE `.tflite` models: on this host, or on an ARM device with lce_benchmark_model.

Host (LCE's Python interpreter; relative numbers, x86 runs no ARM kernels):

    el-larq benchmark a.tflite [b.tflite ...] [--num_threads=1] [--num_runs=50]
        [--warmup_runs=5] [--kernel=indirect_bgemm|optimized|reference] [--json=out.json]

Device (LCE's `lce_benchmark_model` binary from an LCE release):

    el-larq benchmark m.tflite --device=local --binary=./lce_benchmark_model
    el-larq benchmark m.tflite --device=adb --binary=lce_benchmark_model_android_arm64
    el-larq benchmark m.tflite --device=ssh --host=pi@raspberrypi.local \
        --binary=lce_benchmark_model_aarch64 --remote_dir=/tmp

Both print the same table (median, mean, min, max in ms) and write the same JSON.
`--dry_run` prints the device commands without running them. `el-larq profile` is
`el-larq benchmark --profile`; in a checkout `python convert/benchmark.py` is the same tool.
See docs/deployment.md.
"""

import dataclasses
import shlex
import sys
from pathlib import Path

from absl import flags

from el_larq import io  # (el_larq before TensorFlow: selects Keras 2)
from el_larq.cli import flag_groups, run_tool
from el_larq.deploy import device, host, profile, validation
from el_larq.safety import DeploymentError

# The name in messages: `benchmark` (the script), `el-larq benchmark` (the command).
PROG = "benchmark"
FLAGS = flags.FLAGS
flags.DEFINE_enum("device", "host", ["host", *device.DEVICE_MODES], "Where to run.")
flags.DEFINE_integer("num_runs", 50, "Timed runs per model.", lower_bound=1)
flags.DEFINE_integer("warmup_runs", 5, "Untimed runs per model first (host).", lower_bound=0)
flags.DEFINE_string("binary", "lce_benchmark_model", "Device: path of lce_benchmark_model.")
flags.DEFINE_string("host", None, "Device ssh: destination, e.g. pi@raspberrypi.local.")
flags.DEFINE_string("serial", None, "Device adb: device serial (adb -s).")
flags.DEFINE_string("remote_dir", "/data/local/tmp", "Device adb/ssh: directory on the device.")
flags.DEFINE_bool("dry_run", False, "Device: print the commands, run nothing.")
flag_groups.define_interpreter_flags()  # --num_threads also sets the device's threads
flag_groups.define_json_flag()
flags.DEFINE_bool(
    "profile",
    False,
    "Also print a per-op profile of each model (host: every op timed on its own with the "
    "real shapes and values, el_larq.deploy.profile; docs/deployment.md).",
)
flags.DEFINE_string("profile_json", None, "Write the per-op profiles as JSON to this path.")


def _labels(paths: list[Path]) -> list[str]:
    # File stems name the rows; a file given twice (or two a.tflite) gets "#2", "#3", ...
    labels = []
    for path in paths:
        label, n = path.stem, 1
        while label in labels:
            n += 1
            label = f"{path.stem}#{n}"
        labels.append(label)
    return labels


def _host(paths: list[Path]) -> list[host.Latency]:
    flatbuffers = {
        label: validation.read_flatbuffer(path)
        for label, path in zip(_labels(paths), paths, strict=True)
    }
    results = host.host_latency(
        flatbuffers,
        num_runs=FLAGS.num_runs,
        warmup_runs=FLAGS.warmup_runs,
        **flag_groups.interpreter_settings(),
    )
    return list(results.values())


def _host_profiles(paths: list[Path]) -> list[profile.Profile]:
    return [
        profile.profile_host(
            path.read_bytes(),
            name=label,
            num_runs=FLAGS.num_runs,
            warmup_runs=FLAGS.warmup_runs,
            **flag_groups.interpreter_settings(),
        )
        for label, path in zip(_labels(paths), paths, strict=True)
    ]


def _device(paths: list[Path]) -> list[host.Latency]:
    rows = []
    for label, path in zip(_labels(paths), paths, strict=True):
        commands = device.device_commands(
            str(path),
            mode=FLAGS.device,
            binary=FLAGS.binary,
            num_threads=FLAGS.num_threads,
            num_runs=FLAGS.num_runs,
            host=FLAGS.host,
            serial=FLAGS.serial,
            remote_dir=FLAGS.remote_dir,
        )
        if FLAGS.dry_run:
            print("\n".join(shlex.join(argv) for argv in commands))
            continue
        timings = device.run_device_benchmark(commands)
        where = f"device ({FLAGS.device}{' ' + FLAGS.host if FLAGS.host else ''})"
        rows.append(
            device.device_latency(label, timings, where=where, num_threads=FLAGS.num_threads)
        )
    return rows


def benchmark(paths: list[Path]) -> int:
    for path in paths:
        if not path.exists():
            raise DeploymentError(f"{path}: no such file")
        if not path.is_file():
            raise DeploymentError(f"{path} is not a regular file (expected a .tflite file)")
        if FLAGS.device != "host":  # the host run validates while reading
            validation.read_flatbuffer(path)  # a device would crash on a corrupt file
    # Before anything runs: no output may replace a model or another output.
    io.check_outputs(paths, {"--json": FLAGS.json, "--profile_json": FLAGS.profile_json})
    for output in (FLAGS.json, FLAGS.profile_json):
        if output:
            io.check_writable(output)
    if FLAGS.profile_json and not FLAGS.profile:
        raise DeploymentError("--profile_json needs --profile")
    if FLAGS.profile and FLAGS.device != "host":
        raise DeploymentError(
            "--profile runs on the host; on a device, run lce_benchmark_model with "
            "--enable_op_profiling=true and read its output with "
            "el_larq.deploy.profile.parse_op_profile"
        )
    rows = _host(paths) if FLAGS.device == "host" else _device(paths)
    if not rows:  # dry run
        return 0
    print(host.LATENCY_HEADER)
    print("\n".join(row.row() for row in rows))
    if FLAGS.json:
        payload = [dataclasses.asdict(row) for row in rows]
        io.write_atomic(FLAGS.json, (io.json_dumps(payload) + "\n").encode())
    if FLAGS.profile:
        profiles = _host_profiles(paths)
        for result in profiles:
            print("\n" + profile.format_profile(result))
        if FLAGS.profile_json:
            payload = [result.to_json() for result in profiles]
            io.write_atomic(FLAGS.profile_json, (io.json_dumps(payload) + "\n").encode())
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.exit(f"{PROG}: error: expected one or more .tflite paths")
    try:
        return benchmark([Path(arg) for arg in argv[1:]])
    except DeploymentError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def run(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Run the tool on `argv` (default `sys.argv`) and exit with its status.

    # Arguments
        argv: The command line, program name first.
        prog: The name in messages.

    # Example
        ```python
        run(["el-larq benchmark", "a.tflite", "--num_runs=20"], prog="el-larq benchmark")
        ```
    """
    run_tool(__name__, main, argv, prog)


if __name__ == "__main__":
    run()
