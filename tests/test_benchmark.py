"""Benchmarks: host latency through LCE's interpreter, and lce_benchmark_model on a device.

The ARM device and its `lce_benchmark_model` binary cannot be had here: those tests build
the commands and parse output in LCE's (TensorFlow Lite benchmark_model's) documented
format, and say so in their names. Host runs use the real LCE interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from el_larq.deploy.conversion import convert
from el_larq.deploy.device import (
    device_commands,
    device_latency,
    parse_benchmark_output,
    run_device_benchmark,
)
from el_larq.deploy.host import KERNELS, host_latency
from el_larq.layers import el_conv
from el_larq.safety import DeploymentError

SCRIPT = Path(__file__).resolve().parents[1] / "convert" / "benchmark.py"

# Output of `lce_benchmark_model --graph=quicknet.tflite --num_threads=1 --num_runs=50`
# in the format of TensorFlow Lite's benchmark_model, which lce_benchmark_model is built
# on (BenchmarkLoggingListener::OnBenchmarkEnd, Stat::OutputToStream).
RECORDED_OUTPUT = """\
STARTING!
Log parameter values verbosely: [0]
Min num runs: [50]
Num threads: [1]
Graph: [/data/local/tmp/quicknet.tflite]
#threads used for CPU inference: [1]
Loaded model /data/local/tmp/quicknet.tflite
INFO: Initialized TensorFlow Lite runtime.
The input model file size (MB): 4.42532
Initialized session in 3.207ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if \
exceeding 150 seconds.
count=11 first=47818 curr=45239 min=45123 max=47818 avg=45512.4 std=763

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if \
exceeding 150 seconds.
count=50 first=45301 curr=45012 min=44876 max=46020 avg=45210.5 std=210

Inference timings in us: Init: 3207, First inference: 47818, Warmup (avg): 45512.4, \
Inference (avg): 45210.5
Note: as the benchmark tool itself affects memory footprint, the following is only \
APPROXIMATE to the actual memory footprint of the model at runtime. Take the information \
at your discretion.
Memory footprint delta from the start of the tool (MB): init=6.91797 overall=13.5547
"""


@pytest.fixture(scope="module")
def tflite(tmp_path_factory) -> Path:
    inputs = tf.keras.Input((16, 16, 32))
    x = el_conv(inputs, 32, 3, name="a")
    x = el_conv(x, 64, 1, name="b")
    flatbuffer, _ = convert(tf.keras.Model(inputs, x))
    path = tmp_path_factory.mktemp("bench") / "tiny.tflite"
    path.write_bytes(flatbuffer)
    return path


# ---------------------------------------------------------------- parser
def test_parser_reads_recorded_lce_benchmark_model_output_without_arm_device():
    timings = parse_benchmark_output(RECORDED_OUTPUT)
    assert timings == {
        "init_us": 3207.0,
        "first_us": 47818.0,
        "warmup_avg_us": 45512.4,
        "avg_us": 45210.5,
        "count": 50,  # the timed runs, not the warm-up's count=11
        "min_us": 44876.0,
        "max_us": 46020.0,
        "std_us": 210.0,
    }
    row = device_latency("quicknet", timings, where="device (adb)", num_threads=1)
    assert (row.mean_ms, row.min_ms, row.max_ms, row.runs) == (45.2105, 44.876, 46.02, 50)
    assert row.median_ms is None  # benchmark_model prints none
    assert row.row() == (
        "| quicknet | device (adb) | 1 | lce_benchmark_model | 50 | - | 45.211 | 44.876 "
        "| 46.020 | - | - |"
    )


def test_parser_rejects_output_without_timings_and_quotes_it_without_arm_device():
    with pytest.raises(DeploymentError, match="no 'Inference timings.*Failed to load"):
        parse_benchmark_output("STARTING!\nERROR: Failed to load model /x.tflite\n")


# ---------------------------------------------------------------- commands
def test_device_command_construction_local_without_arm_device():
    commands = device_commands(
        "m.tflite", mode="local", binary="./lce_benchmark_model", num_threads=4, num_runs=20
    )
    assert commands == [
        [
            os.path.abspath("lce_benchmark_model"),
            f"--graph={os.path.abspath('m.tflite')}",
            "--num_threads=4",
            "--num_runs=20",
        ]
    ]


def test_device_command_construction_adb_without_arm_device():
    commands = device_commands(
        "out/my model.tflite",
        mode="adb",
        binary="bin/lce_benchmark_model",
        serial="emulator-5554",
        num_runs=10,
    )
    adb = ["adb", "-s", "emulator-5554"]
    assert commands == [
        [
            *adb,
            "push",
            os.path.abspath("bin/lce_benchmark_model"),
            "/data/local/tmp/lce_benchmark_model",
        ],
        [*adb, "shell", "chmod +x /data/local/tmp/lce_benchmark_model"],
        # The device's name is plain: no quoting that a shell or scp could undo differently.
        [*adb, "push", os.path.abspath("out/my model.tflite"), "/data/local/tmp/my_model.tflite"],
        [
            *adb,
            "shell",
            "/data/local/tmp/lce_benchmark_model --graph=/data/local/tmp/my_model.tflite "
            "--num_threads=1 --num_runs=10",
        ],
    ]


def test_device_command_construction_ssh_without_arm_device():
    commands = device_commands(
        "m.tflite", mode="ssh", host="pi@raspberrypi.local", remote_dir="/tmp/lce", num_threads=4
    )
    assert commands == [
        ["ssh", "--", "pi@raspberrypi.local", "mkdir -p /tmp/lce"],
        [
            "scp",
            "--",
            os.path.abspath("lce_benchmark_model"),
            "pi@raspberrypi.local:/tmp/lce/lce_benchmark_model",
        ],
        ["scp", "--", os.path.abspath("m.tflite"), "pi@raspberrypi.local:/tmp/lce/m.tflite"],
        [
            "ssh",
            "--",
            "pi@raspberrypi.local",
            "chmod +x /tmp/lce/lce_benchmark_model && /tmp/lce/lce_benchmark_model "
            "--graph=/tmp/lce/m.tflite --num_threads=4 --num_runs=50",
        ],
    ]
    with pytest.raises(DeploymentError, match="--host"):
        device_commands("m.tflite", mode="ssh")
    with pytest.raises(DeploymentError, match="valid modes: local, adb, ssh"):
        device_commands("m.tflite", mode="usb")


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"mode": "ssh", "host": "-oProxyCommand=touch pwned"}, "--host"),
        ({"mode": "ssh", "host": "pi@h; touch pwned"}, "--host"),
        ({"mode": "ssh", "host": "pi@h", "remote_dir": "tmp"}, "absolute"),
        ({"mode": "adb", "remote_dir": "/tmp/$(touch pwned)"}, "may only contain"),
        ({"mode": "adb", "remote_dir": "/tmp/a\nb"}, "may only contain"),
        ({"mode": "adb", "serial": "-d"}, "--serial"),
    ],
)
def test_hostile_device_values_are_refused_before_any_command_without_arm_device(kwargs, reason):
    with pytest.raises(DeploymentError, match=reason):
        device_commands("m.tflite", **kwargs)


def test_device_run_stops_at_the_first_failing_command_without_arm_device():
    seen = []

    def fake_device(argv, **kwargs):
        seen.append(argv)
        failed = argv[1] == "push" and argv[2].endswith(".tflite")
        output = "adb: error: no devices/emulators found" if failed else RECORDED_OUTPUT
        return subprocess.CompletedProcess(argv, int(failed), output, "")

    commands = device_commands("m.tflite", mode="adb")
    with pytest.raises(DeploymentError, match="failed \\(1\\): adb: error: no devices"):
        run_device_benchmark(commands, runner=fake_device)
    assert seen == commands[:3]


# ---------------------------------------------------------------- CLI
def _benchmark(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_adb_benchmark_end_to_end_with_fake_adb_without_arm_device(tflite, tmp_path):
    """The real CLI against a stand-in `adb` that answers like a phone would."""
    fake = tmp_path / "bin" / "adb"
    fake.parent.mkdir()
    (tmp_path / "recorded.txt").write_text(RECORDED_OUTPUT)
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/adb-calls\n'
        'case "$*" in *--graph=*) cat ' + str(tmp_path / "recorded.txt") + " ;; esac\n"
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    report = tmp_path / "device.json"
    result = _benchmark(
        tflite, "--device=adb", "--binary=lce_benchmark_model", "--json", report, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| tiny | device (adb) | 1 | lce_benchmark_model | 50 | - | 45.211 |" in result.stdout
    calls = (tmp_path / "adb-calls").read_text().splitlines()
    assert calls[-1].endswith("--graph=/data/local/tmp/tiny.tflite --num_threads=1 --num_runs=50")
    assert json.loads(report.read_text())[0]["mean_ms"] == pytest.approx(45.2105)


def test_host_benchmark_cli_reports_median_min_max_and_kernel(tflite, tmp_path):
    report = tmp_path / "host.json"
    result = _benchmark(tflite, tflite, "--num_runs=4", "--warmup_runs=1", "--json", report)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| median ms | mean ms | min ms | max ms | CPU median ms | CPU min ms |" in result.stdout
    row, again = json.loads(report.read_text())
    assert (row["model"], again["model"]) == ("tiny", "tiny#2")
    assert row["kernel"] == "indirect_bgemm" and row["runs"] == 4 and row["num_threads"] == 1
    assert 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]


def test_host_benchmark_missing_file_is_one_line_error(tmp_path):
    result = _benchmark(tmp_path / "nope.tflite")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"benchmark: error: {tmp_path / 'nope.tflite'}: no such file"
    )


def test_host_benchmark_of_a_directory_says_so_in_one_line(tmp_path):
    result = _benchmark(tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"benchmark: error: {tmp_path} is not a regular file (expected a .tflite file)"
    )


# ---------------------------------------------------------------- host latency
@pytest.mark.parametrize("kernel", KERNELS)
def test_host_latency_runs_every_kernel_interleaved(tflite, kernel):
    flatbuffer = tflite.read_bytes()
    results = host_latency(
        {"a": flatbuffer, "b": flatbuffer}, num_runs=5, warmup_runs=1, kernel=kernel, rounds=2
    )
    assert list(results) == ["a", "b"]
    for row in results.values():
        assert row.runs == 5 and row.kernel == kernel
        assert row.min_ms <= row.median_ms <= row.max_ms
        assert 0 < row.cpu_min_ms <= row.cpu_median_ms


def test_unknown_kernel_lists_the_valid_ones(tflite):
    with pytest.raises(DeploymentError, match="valid kernels: indirect_bgemm, optimized"):
        host_latency({"a": tflite.read_bytes()}, kernel="fast")


def test_overhead_report_compares_models_on_both_paths_at_a_small_size(tmp_path):
    script = SCRIPT.parent / "overhead_report.py"
    out = tmp_path / "overhead.json"
    models = "el_resnet50,el_resnet50_no_k,resnet50,quicknet_small"
    args = [
        "--image_size=32",
        "--num_runs=1",
        "--rounds=1",
        "--warmup_runs=0",
        f"--models={models}",
        f"--json={out}",
    ]
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    models = report["models"]
    assert set(models) == {
        "EL-ResNet50",
        "EL-ResNet50 int8",
        "EL-ResNet50 without K",
        "ResNet50 (float)",
        "QuickNetSmall (larq-zoo)",  # larq-zoo is in the test environment (run.sh)
    }
    el, int8, no_k = (
        models["EL-ResNet50"],
        models["EL-ResNet50 int8"],
        models["EL-ResNet50 without K"],
    )
    # Same ops; some float weights at a quarter of their bytes, the binary kernels as they were.
    assert el["ops"] == int8["ops"]
    assert int8["weight_bytes"]["CONV_2D"] < el["weight_bytes"]["CONV_2D"]
    assert int8["weight_bytes"]["LceBconv2d"] == el["weight_bytes"]["LceBconv2d"]
    # K is the only difference: no RELU/SUB of K's mean |x| without it, and no ABS with it.
    assert "RELU" in el["ops"] and "RELU" not in no_k["ops"] and "ABS" not in el["ops"]
    assert models["QuickNetSmall (larq-zoo)"]["ops"]["LceBconv2d"] > 0
    for model in models.values():
        assert set(model["latency"]) == {"default", "xnnpack"}
    ratios = {row["ratio"]: row for row in report["ratios"]}
    row = ratios["EL-ResNet50 / EL-ResNet50 without K"]
    assert row["goal"] == 1.02 and row["default"] > 0 and row["xnnpack"] > 0
    assert "EL-ResNet26 / ResNet26 (float)" not in ratios  # not built
    assert "| EL-ResNet50 / ResNet50 (float) |" in result.stdout
    assert "faster path" in result.stdout


def test_overhead_report_compares_el_reactnet_with_reactnet_c(tmp_path):
    script = SCRIPT.parent / "overhead_report.py"
    out = tmp_path / "overhead.json"
    args = ["--image_size=32", "--num_runs=1", "--rounds=1", "--warmup_runs=0"]
    args += ["--paths=default", "--models=el_reactnet,reactnet_c", f"--json={out}"]
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    el, c = report["models"]["EL-ReActNet"], report["models"]["ReActNet-C"]
    assert el["paper_top1"] == 71.9 and c["paper_top1"] == 71.4
    # EL's only ops: one MUL by 1/gamma per reduction block.
    assert {op: el["ops"][op] - c["ops"].get(op, 0) for op in el["ops"]} == {
        **{op: 0 for op in c["ops"]},
        "MUL": 5,
    }
    row = {row["ratio"]: row for row in report["ratios"]}["EL-ReActNet / ReActNet-C"]
    assert row["goal"] == 1.02 and row["default"] > 0 and "xnnpack" not in row
    assert row["flops"] == el["flops"]["flops"] / c["flops"]["flops"]
    assert 1 < row["flops"] < 1.05 and 1 <= row["size"] < 1.01
    assert "| EL-ReActNet / ReActNet-C | 1.0" in result.stdout


def test_overhead_report_refuses_unknown_models_in_one_line(tmp_path):
    script = SCRIPT.parent / "overhead_report.py"
    result = subprocess.run(
        [sys.executable, str(script), "--models=el_resnet51"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("overhead_report: error: unknown")
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- hostile input
def _fake_tools(tmp_path: Path) -> tuple[dict, Path]:
    """`ssh` and `scp` stand-ins first on PATH that record their argv and act as a
    loopback device: scp copies to the remote path here, ssh runs the remote command
    with `sh -c`, as the device's shell would."""
    bin_dir, calls = tmp_path / "fake-bin", tmp_path / "calls"
    bin_dir.mkdir()
    for tool, action in {
        "ssh": 'shift 2; exec sh -c "$1"',  # argv: -- host command
        "scp": 'exec cp -- "$2" "${3#*:}"',  # argv: -- local host:remote
    }.items():
        (bin_dir / tool).write_text(
            "#!/bin/sh\n"
            f'{{ echo "{tool}"; printf "%s\\n" "$@"; echo "."; }} >> {calls}\n'
            f'[ "$1" = "--" ] || exit 64\n{action}\n'
        )
        (bin_dir / tool).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, calls


def test_ssh_benchmark_with_fake_ssh_quotes_hostile_paths_without_arm_device(tflite, tmp_path):
    env, calls = _fake_tools(tmp_path)
    (tmp_path / "recorded.txt").write_text(RECORDED_OUTPUT)
    binary = tmp_path / "lce bench;touch PWNED1"
    binary.write_text(f"#!/bin/sh\ncat {tmp_path / 'recorded.txt'}\n")
    binary.chmod(0o755)
    model = tmp_path / "m;touch PWNED2 $(touch PWNED3)`touch PWNED4`.tflite"
    model.write_bytes(tflite.read_bytes())
    remote = tmp_path / "device"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), model.name, "--device=ssh", "--host=pi@raspberrypi"]
        + [f"--binary={binary.name}", f"--remote_dir={remote}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| device (ssh pi@raspberrypi) | 1 | lce_benchmark_model | 50 |" in result.stdout
    assert not list(tmp_path.rglob("PWNED*"))  # no name ran as shell code, here or there
    assert sorted(os.listdir(remote)) == [
        "lce_bench_touch_PWNED1",
        "m_touch_PWNED2___touch_PWNED3__touch_PWNED4_.tflite",
    ]
    recorded = calls.read_text().split(".\n")[:-1]
    argvs = [call.splitlines() for call in recorded]
    assert [argv[:2] for argv in argvs] == [
        ["ssh", "--"],
        ["scp", "--"],
        ["scp", "--"],
        ["ssh", "--"],
    ]
    assert argvs[2][2] == str(model)  # absolute: never read as an option


@pytest.mark.parametrize(
    "flag, reason",
    [
        ("--host=-oProxyCommand=touch PWNED", "--host '-oProxyCommand=touch PWNED' is not"),
        ("--remote_dir=relative/dir", "must be an absolute path"),
    ],
)
def test_hostile_device_flags_with_fake_ssh_run_nothing_without_arm_device(
    tflite, tmp_path, flag, reason
):
    env, calls = _fake_tools(tmp_path)
    args = [tflite, "--device=ssh", "--dry_run", flag]
    if not flag.startswith("--host"):
        args.append("--host=pi@raspberrypi")
    result = _benchmark(*args, env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("benchmark: error: ") and reason in last, last
    assert "Traceback" not in result.stderr and not calls.exists()


@pytest.mark.parametrize("device", ["host", "adb"])
def test_corrupt_tflite_is_a_one_line_error_not_a_crash(tflite, tmp_path, device):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(tflite.read_bytes()[: tflite.stat().st_size // 2])
    result = _benchmark(broken, f"--device={device}", "--dry_run")
    assert result.returncode == 1, result.stderr[-2000:]  # a segfault is -11 / 139
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"benchmark: error: {broken} is not a valid TFLite flatbuffer")
    assert "Traceback" not in result.stderr


def test_json_output_that_is_an_input_model_is_refused(tflite, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(tflite.read_bytes())
    result = _benchmark(model, "--num_runs=1", "--json", tmp_path / "." / "m.tflite")
    assert result.returncode == 1
    assert "would overwrite the input" in result.stderr.strip().splitlines()[-1]
    assert model.read_bytes() == tflite.read_bytes()
