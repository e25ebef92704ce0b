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

from el_larq import lce
from el_larq.layers import el_conv

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
    flatbuffer, _ = lce.convert(tf.keras.Model(inputs, x))
    path = tmp_path_factory.mktemp("bench") / "tiny.tflite"
    path.write_bytes(flatbuffer)
    return path


# ---------------------------------------------------------------- parser
def test_parser_reads_recorded_lce_benchmark_model_output_without_arm_device():
    timings = lce.parse_benchmark_output(RECORDED_OUTPUT)
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
    row = lce.device_latency("quicknet", timings, where="device (adb)", num_threads=1)
    assert (row.mean_ms, row.min_ms, row.max_ms, row.runs) == (45.2105, 44.876, 46.02, 50)
    assert row.median_ms is None  # benchmark_model prints none
    assert row.row() == (
        "| quicknet | device (adb) | 1 | lce_benchmark_model | 50 | - | 45.211 | 44.876 "
        "| 46.020 | - | - |"
    )


def test_parser_rejects_output_without_timings_and_quotes_it_without_arm_device():
    with pytest.raises(lce.DeploymentError, match="no 'Inference timings.*Failed to load"):
        lce.parse_benchmark_output("STARTING!\nERROR: Failed to load model /x.tflite\n")


# ---------------------------------------------------------------- commands
def test_device_command_construction_local_without_arm_device():
    commands = lce.device_commands(
        "m.tflite", mode="local", binary="./lce_benchmark_model", num_threads=4, num_runs=20
    )
    assert commands == [
        ["./lce_benchmark_model", "--graph=m.tflite", "--num_threads=4", "--num_runs=20"]
    ]


def test_device_command_construction_adb_without_arm_device():
    commands = lce.device_commands(
        "out/my model.tflite",
        mode="adb",
        binary="bin/lce_benchmark_model",
        serial="emulator-5554",
        num_runs=10,
    )
    adb = ["adb", "-s", "emulator-5554"]
    assert commands == [
        [*adb, "push", "bin/lce_benchmark_model", "/data/local/tmp/lce_benchmark_model"],
        [*adb, "shell", "chmod +x /data/local/tmp/lce_benchmark_model"],
        [*adb, "push", "out/my model.tflite", "/data/local/tmp/my model.tflite"],
        # adb shell hands this to the device's shell: the space must stay quoted.
        [
            *adb,
            "shell",
            "/data/local/tmp/lce_benchmark_model '--graph=/data/local/tmp/my model.tflite' "
            "--num_threads=1 --num_runs=10",
        ],
    ]


def test_device_command_construction_ssh_without_arm_device():
    commands = lce.device_commands(
        "m.tflite", mode="ssh", host="pi@raspberrypi.local", remote_dir="/tmp/lce", num_threads=4
    )
    assert commands == [
        ["ssh", "pi@raspberrypi.local", "mkdir -p /tmp/lce"],
        ["scp", "lce_benchmark_model", "m.tflite", "pi@raspberrypi.local:/tmp/lce/"],
        [
            "ssh",
            "pi@raspberrypi.local",
            "chmod +x /tmp/lce/lce_benchmark_model && /tmp/lce/lce_benchmark_model "
            "--graph=/tmp/lce/m.tflite --num_threads=4 --num_runs=50",
        ],
    ]
    with pytest.raises(lce.DeploymentError, match="--host"):
        lce.device_commands("m.tflite", mode="ssh")
    with pytest.raises(lce.DeploymentError, match="valid modes: local, adb, ssh"):
        lce.device_commands("m.tflite", mode="usb")


def test_device_run_stops_at_the_first_failing_command_without_arm_device():
    seen = []

    def fake_device(argv, **kwargs):
        seen.append(argv)
        failed = argv[1] == "push" and argv[2].endswith(".tflite")
        output = "adb: error: no devices/emulators found" if failed else RECORDED_OUTPUT
        return subprocess.CompletedProcess(argv, int(failed), output, "")

    commands = lce.device_commands("m.tflite", mode="adb")
    with pytest.raises(lce.DeploymentError, match="failed \\(1\\): adb: error: no devices"):
        lce.run_device_benchmark(commands, runner=fake_device)
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


# ---------------------------------------------------------------- host latency
@pytest.mark.parametrize("kernel", lce.KERNELS)
def test_host_latency_runs_every_kernel_interleaved(tflite, kernel):
    flatbuffer = tflite.read_bytes()
    results = lce.host_latency(
        {"a": flatbuffer, "b": flatbuffer}, num_runs=5, warmup_runs=1, kernel=kernel, rounds=2
    )
    assert list(results) == ["a", "b"]
    for row in results.values():
        assert row.runs == 5 and row.kernel == kernel
        assert row.min_ms <= row.median_ms <= row.max_ms
        assert 0 < row.cpu_min_ms <= row.cpu_median_ms


def test_unknown_kernel_lists_the_valid_ones(tflite):
    with pytest.raises(lce.DeploymentError, match="valid kernels: indirect_bgemm, optimized"):
        lce.host_latency({"a": tflite.read_bytes()}, kernel="fast")


def test_overhead_report_compares_el_bireal_float_and_int8_at_a_small_size(tmp_path):
    script = SCRIPT.parent / "overhead_report.py"
    out = tmp_path / "overhead.json"
    args = ["--image_size=32", "--num_runs=1", "--rounds=1", "--warmup_runs=0", f"--json={out}"]
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    models = report["models"]
    assert set(models) == {
        "EL-ResNet50",
        "EL-ResNet50 int8",
        "Bi-Real-ResNet50",
        "ResNet50 (float)",
    }
    el, int8 = models["EL-ResNet50"], models["EL-ResNet50 int8"]
    # Same ops; the float layers' weights at a quarter of their bytes (their float32 biases
    # stay), the binary kernels as they were.
    assert el["ops"] == int8["ops"]
    for op in ("CONV_2D", "FULLY_CONNECTED"):
        float32 = el["weight_bytes"][op]
        assert float32 / 4 <= int8["weight_bytes"][op] < float32 / 4 + 0.01 * float32
    assert int8["weight_bytes"]["LceBconv2d"] == el["weight_bytes"]["LceBconv2d"]
    ratios = report["ratios"]
    assert ratios["size_float_over_el_int8"] > 8 > ratios["size_float_over_el"] > 4
    assert 1.0 < ratios["flops_el_over_bireal"] < 1.05
    assert "| float / EL int8 tflite size |" in result.stdout
