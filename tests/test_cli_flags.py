"""The flag groups of el_larq.cli.flag_groups as users meet them: real subprocesses of the tools."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code, *argv] if code else [sys.executable, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize(
    "script, args",
    [
        ("benchmark", ["--num_threads=0", "a.tflite"]),
        ("benchmark", ["--kernel=fast", "a.tflite"]),
        ("to_lce", ["--samples=0", "m.h5"]),
        ("overhead_report", ["--num_threads=-1"]),
        ("evaluate.py", ["--kernel=fast", "--model=m.h5"]),
    ],
)
def test_a_bad_shared_flag_is_one_line_and_runs_nothing(script, args):
    path = "train/evaluate.py" if script == "evaluate.py" else f"convert/{script}.py"
    result = run(path, *args)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{script}: error: flag {args[0]}: "), result.stderr[-1000:]
    assert "Traceback" not in result.stderr and "FATAL" not in result.stderr


def test_the_xnnpack_default_of_every_tool_is_the_library_constant():
    # Flip el_larq.deploy.host.DEFAULT_XNNPACK before the tool defines its flags: the
    # default of --xnnpack must follow.
    code = (
        "import sys, runpy; import el_larq.deploy.host as host; host.DEFAULT_XNNPACK = {};"
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    for script, value, shown in (
        ("convert/benchmark.py", True, "true"),
        ("convert/benchmark.py", False, "false"),
        ("train/evaluate.py", True, "true"),
    ):
        result = run(script, "--helpfull", code=code.format(value))
        help_text = " ".join(result.stdout.split())
        assert "--[no]xnnpack: Run float ops through TFLite's XNNPACK delegate" in help_text
        assert f"(default: '{shown}')" in help_text.split("--[no]xnnpack")[1][:200]
