"""Quiet TensorFlow's start-up for el-larq's own commands.

On a CPU machine, importing TensorFlow 2.19 prints a dozen lines about CUDA, cuDNN,
cuBLAS, cuFFT, XLA's computation placer and oneDNN. `TF_CPP_MIN_LOG_LEVEL` silences
only some of them: the rest are logged by absl before TensorFlow's logging is set up.
el-larq's commands (`el-larq`, `python -m el_larq`, the checkout's `train/` and
`convert/` scripts) therefore set `TF_CPP_MIN_LOG_LEVEL=2` unless the user set it, and
drop exactly those start-up lines while TensorFlow loads unless the user asked for
TensorFlow's warnings (`TF_CPP_MIN_LOG_LEVEL=0` or `1`). Importing el_larq from your own
program changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["STARTUP_NOISE", "is_el_larq_command", "quiet_tensorflow_import"]

# What TensorFlow prints while it loads on a machine without a GPU; nothing else.
STARTUP_NOISE = re.compile(
    r"Unable to register cu(DNN|BLAS|FFT) factory"
    r"|computation placer already registered"
    r"|All log messages before absl::InitializeLog\(\) is called"
    r"|Could not find cuda drivers|failed call to cuInit"
    r"|oneDNN custom operations are on"
    r"|cpu_feature_guard|To enable the following instructions"
    r"|TF-TRT Warning"
)

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def is_el_larq_command(argv0: str) -> bool:
    """Whether the running program is one of el-larq's commands, from its `sys.argv[0]`.

    # Arguments
        argv0: `sys.argv[0]` while el_larq is imported: `.../el-larq` (the console
            command), `-m` (`python -m el_larq ...`, as Python sets it while the package
            loads) or a script in this checkout's `train/` or `convert/`.

    # Returns
        True for those, False for any other program.

    # Example
        ```python
        is_el_larq_command("/usr/bin/el-larq")  # True
        is_el_larq_command("my_experiment.py")  # False
        ```
    """
    if os.path.basename(argv0) in ("el-larq", "-m"):
        return True
    script = Path(argv0).resolve()
    return script.suffix == ".py" and (
        script.parent.name in ("train", "convert") and script.parent.parent == _PACKAGE_ROOT
    )


@contextlib.contextmanager
def quiet_tensorflow_import() -> Iterator[None]:
    """Import TensorFlow inside this block without its start-up lines on stderr.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` unless it is set. Unless it asks for warnings (0 or
    1), sends file descriptor 2 to a temporary file for the block and TensorFlow's device
    discovery at its end (where CUDA, on a machine without a GPU, logs that it failed),
    then writes back every line that is not in `STARTUP_NOISE` (so real errors and
    tracebacks still show).

    # Example
        ```python
        with quiet_tensorflow_import():
            import tensorflow as tf
        ```
    """
    if os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2") in ("0", "1"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    # A file, not a pipe: nothing reads while TensorFlow loads, and a full pipe would block.
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
            tf = sys.modules.get("tensorflow")
            if tf is not None:  # CUDA's probe logs at the first device use: let it be now
                tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not STARTUP_NOISE.search(line)))
            sys.stderr.flush()
