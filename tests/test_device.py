"""el_larq.deploy.device: commands, output parsing, and the values on a device's command line.

The ARM device and its `lce_benchmark_model` binary cannot be had here: these tests build
the commands and parse output in LCE's (TensorFlow Lite benchmark_model's) documented
format, and say so in their names.
"""

import os
import subprocess

import pytest
from helpers import RECORDED_OUTPUT

from el_larq.deploy.device import (
    check_remote_dir,
    check_ssh_host,
    device_commands,
    device_latency,
    parse_benchmark_output,
    remote_name,
    run_device_benchmark,
)
from el_larq.safety import DeploymentError


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


@pytest.mark.parametrize(
    "host",
    ["-oProxyCommand=touch pwned", "pi@host;touch pwned", "pi@host name", "host:/tmp", "a/b", ""],
)
def test_hosts_that_could_be_options_or_paths_are_refused(host):
    with pytest.raises(DeploymentError, match="--host"):
        check_ssh_host(host)


@pytest.mark.parametrize(
    "remote_dir, reason",
    [
        ("tmp/lce", "absolute"),
        ("/tmp/$(touch pwned)", "may only contain"),
        ("/tmp/a b", "may only contain"),
        ("/tmp/x\n/y", "may only contain"),
        ("/tmp/'x'", "may only contain"),
    ],
)
def test_remote_dirs_that_need_quoting_or_are_relative_are_refused(remote_dir, reason):
    with pytest.raises(DeploymentError, match=reason):
        check_remote_dir(remote_dir)


def test_remote_names_are_plain_and_never_options():
    assert remote_name("out/my model;$(x).tflite") == "my_model___x_.tflite"
    assert remote_name("-rf.tflite") == "_rf.tflite"
    assert check_ssh_host("pi@raspberrypi.local") == "pi@raspberrypi.local"
    assert check_remote_dir("/data/local/tmp/") == "/data/local/tmp"
