"""el_larq._tf_startup: el-larq's commands keep TensorFlow's start-up lines off stderr."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from el_larq._tf_startup import STARTUP_NOISE, is_el_larq_command

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# What TensorFlow 2.19 prints at import on a CPU machine (TF_CPP_MIN_LOG_LEVEL misses some).
NOISE_WORDS = ("cuDNN", "cuBLAS", "cuFFT", "cuda", "computation placer", "absl::", "oneDNN")


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        command, capture_output=True, text=True, env={**clean, **env}, cwd=ROOT, timeout=300
    )


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "el-larq"), "recipes"],
        [sys.executable, "-m", "el_larq", "recipes"],
        [sys.executable, "convert/to_lce.py", "--help"],
        [sys.executable, "train/evaluate.py", "--nonexistent_flag"],
    ],
    ids=["el-larq", "python-m", "convert-script", "train-script-error"],
)
def test_commands_print_no_tensorflow_startup_lines(command):
    result = _run(command)
    assert not [w for w in NOISE_WORDS if w in result.stderr], result.stderr[:2000]
    if command[-1] == "--nonexistent_flag":
        # real messages still reach stderr
        assert result.returncode != 0 and "nonexistent_flag" in result.stderr


def test_user_asking_for_tensorflow_warnings_gets_them():
    # also shows the test above can fail: TensorFlow does print these lines here
    result = _run([str(BIN / "el-larq"), "recipes"], TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0
    assert "computation placer" in result.stderr


def test_own_programs_are_not_commands():
    assert is_el_larq_command("/usr/local/bin/el-larq")
    assert is_el_larq_command("-m")
    assert is_el_larq_command(str(ROOT / "convert" / "to_lce.py"))
    assert not is_el_larq_command(str(ROOT / "study" / "run_study.py"))
    assert not is_el_larq_command("/tmp/train/my_experiment.py")
    assert not is_el_larq_command("")
    assert not STARTUP_NOISE.search("ValueError: input shape (28, 28, 1) is wrong")
