"""convert/benchmark.py and overhead_report.py, host latency through LCE's interpreter.

The ARM device and its `lce_benchmark_model` binary cannot be had here: device runs go
through fake adb / ssh / benchmark tools that print recorded output in LCE's (TensorFlow
Lite benchmark_model's) format, and say so in their names. Host runs use the real LCE
interpreter; the device module's own tests are in test_device.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from helpers import RECORDED_OUTPUT

from el_larq.deploy.conversion import convert
from el_larq.deploy.host import KERNELS, host_latency
from el_larq.layers import el_conv
from el_larq.safety import DeploymentError

SCRIPT = Path(__file__).resolve().parents[1] / "convert" / "benchmark.py"


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
        # Rounds of 3 and 2 runs: each round's median lies within the runs' range.
        assert len(row.round_medians_ms) == 2
        assert all(row.min_ms <= t <= row.max_ms for t in row.round_medians_ms)
        assert 0 < row.cpu_min_ms <= row.cpu_median_ms


def test_host_latency_times_a_model_with_two_inputs():
    a, b = tf.keras.Input((8, 8, 4)), tf.keras.Input((8, 8, 16))
    y = tf.keras.layers.Add()([el_conv(a, 16, 1, name="a"), b])
    flatbuffer, _ = convert(tf.keras.Model([a, b], y))
    (row,) = host_latency({"two": flatbuffer}, num_runs=3, warmup_runs=1).values()
    assert row.runs == 3 and row.median_ms > 0


def test_expand_link_lowerings_and_k_are_checked_and_timed_side_by_side():
    result = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "overhead_report.py"), "--units", "--num_runs=2"]
        + ["--rounds=1", "--warmup_runs=0", "--paths=default"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # The variants' values agree, and each flatbuffer gives its Keras model's values.
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "expand link add_n: {" in out and "'ADD_N': 1" in out
    assert (
        "expand link broadcast: {" in out
        and "'CONCATENATION'" not in out.split("expand link broadcast: {")[1].split("\n")[0]
    )
    for variant in ("concat", "scale_first", "broadcast", "add_n"):
        assert f"expand link {variant}: adds" in out
    assert "K k: adds" in out and "'RELU': 1" in out.split("K k: {")[1].split("\n")[0]


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
    # Same ops and a DEQUANTIZE per int8 tensor; some float weights at a quarter of their
    # bytes, the binary kernels as they were.
    int8_ops = dict(int8["ops"])
    assert int8_ops.pop("DEQUANTIZE") >= 1 and int8_ops == el["ops"]
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
    # One round: no interval, so no verdict on the goal.
    assert row["default_interval"] is None and row["default_verdict"] == "undecided"
    assert "EL-ResNet26 / ResNet26 (float)" not in ratios  # not built
    assert "| EL-ResNet50 / ResNet50 (float) |" in result.stdout
    assert "faster path" in result.stdout


def test_overhead_report_compares_el_reactnet_with_reactnet_c(tmp_path):
    script = SCRIPT.parent / "overhead_report.py"
    out = tmp_path / "overhead.json"
    args = ["--image_size=32", "--num_runs=4", "--rounds=2", "--warmup_runs=0"]
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
    # Two rounds: an interval of the paired per-round ratios decides the goal, or not.
    low, high = row["default_interval"]
    assert 0 < low <= high
    expected = "met" if high <= 1.02 else "not met" if low > 1.02 else "undecided"
    assert row["default_verdict"] == expected
    assert f"{row['default_paired']:.3f} [{low:.3f}, {high:.3f}] {expected}" in result.stdout
    assert row["flops"] == el["flops"]["flops"] / c["flops"]["flops"]
    assert 1 < row["flops"] < 1.05 and 1 <= row["size"] < 1.01
    assert "| EL-ReActNet / ReActNet-C | 1.0" in result.stdout


def test_overhead_report_compares_el_dagger_resnet50_with_el_resnet50(tmp_path):
    script = SCRIPT.parent / "overhead_report.py"
    out = tmp_path / "overhead.json"
    args = ["--image_size=32", "--num_runs=1", "--rounds=1", "--warmup_runs=0"]
    args += ["--paths=default", "--models=el_r2b_resnet50,el_resnet50", f"--json={out}"]
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    dagger, el = report["models"]["EL†-ResNet50 (gating)"], report["models"]["EL-ResNet50"]
    assert dagger["paper_top1"] == 68.9
    # Gating's only ops, one set per binary conv (48): MEAN, two FULLY_CONNECTED,
    # LOGISTIC and the MUL of the conv output; the LceBconv2d count is unchanged.
    assert {op: dagger["ops"][op] - el["ops"].get(op, 0) for op in dagger["ops"]} == {
        **{op: 0 for op in el["ops"]},
        **{"MEAN": 48, "FULLY_CONNECTED": 96, "LOGISTIC": 48, "MUL": 48},
    }
    row = {row["ratio"]: row for row in report["ratios"]}["EL†-ResNet50 (gating) / EL-ResNet50"]
    assert row["goal"] is None and row["default"] > 0
    assert row["flops"] == dagger["flops"]["flops"] / el["flops"]["flops"] > 1
    assert dagger["flops"]["scaling_ops"] > 0 == el["flops"]["scaling_ops"]
    assert "| EL†-ResNet50 (gating) / EL-ResNet50 | " in result.stdout


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--models=el_resnet51", "unknown"),
        ("--save_dir={tmp}/missing", "cannot write"),
        ("--units --json={tmp}/units.json", "--units writes"),
        ("--units --paths=arm", "unknown"),
    ],
)
def test_overhead_report_refuses_bad_flags_in_one_line_before_building(flag, message, tmp_path):
    script = SCRIPT.parent / "overhead_report.py"
    result = subprocess.run(
        [sys.executable, str(script), *flag.format(tmp=tmp_path).split()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"overhead_report: error: {message}")
    assert "Traceback" not in result.stderr and "settings:" not in result.stdout
    assert "expand link" not in result.stdout and not (tmp_path / "units.json").exists()


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
