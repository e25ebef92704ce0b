"""Flag groups the command-line tools share, defined once.

Each `define_*` function defines its flags on absl's global `FLAGS` when a tool module
is imported; the `*_settings` functions read them back as keyword arguments for the
library. Defaults come from the library (`el_larq.deploy.host.DEFAULT_KERNEL`,
`DEFAULT_XNNPACK`), so a tool never has its own idea of them.
"""

from __future__ import annotations

import sys
from typing import Any

from absl import flags

from el_larq import io

__all__ = [
    "check_json_flag",
    "define_dataset_flags",
    "define_interpreter_flags",
    "define_json_flag",
    "interpreter_settings",
]

FLAGS = flags.FLAGS


def define_interpreter_flags(*, xnnpack: bool = True) -> None:
    """`--num_threads`, `--kernel` and (unless `xnnpack=False`) `--xnnpack`.

    # Arguments
        xnnpack: Define `--xnnpack` too (a tool that compares both paths does not).

    # Example
        ```python
        define_interpreter_flags()
        ...
        make_interpreter(flatbuffer, **interpreter_settings())
        ```
    """
    # Imported here: tools that never run the interpreter need not import LCE.
    from el_larq.deploy.host import DEFAULT_KERNEL, DEFAULT_XNNPACK, KERNELS

    flags.DEFINE_integer("num_threads", 1, "LCE interpreter threads.", lower_bound=1)
    flags.DEFINE_enum(
        "kernel",
        DEFAULT_KERNEL,
        list(KERNELS),
        "LCE binary-conv kernel (indirect_bgemm: fast on x86; optimized: tuned for ARM).",
    )
    if xnnpack:
        flags.DEFINE_bool(
            "xnnpack",
            DEFAULT_XNNPACK,
            "Run float ops through TFLite's XNNPACK delegate (--noxnnpack: never).",
        )


def interpreter_settings() -> dict[str, Any]:
    """`{"num_threads", "kernel"[, "xnnpack"]}` from the parsed interpreter flags.

    # Returns
        Keyword arguments for `make_interpreter`, `host_latency` and `profile_host`.

    # Example
        ```python
        host_latency(flatbuffers, **interpreter_settings())
        ```
    """
    settings = {"num_threads": FLAGS.num_threads, "kernel": FLAGS.kernel}
    if "xnnpack" in FLAGS:
        settings["xnnpack"] = FLAGS.xnnpack
    return settings


def define_dataset_flags(
    default: str | None = "fashion_mnist",
    help_text: str = "fashion_mnist, imagenet2012 or a TFDS dataset.",
) -> None:
    """`--dataset` (with a tool-specific default and help) and `--data_dir`.

    # Arguments
        default: The default dataset (None: no dataset unless given).
        help_text: The help text of `--dataset`.

    # Example
        ```python
        define_dataset_flags(None, "Verify on real images of this dataset.")
        ```
    """
    flags.DEFINE_string("dataset", default, help_text)
    flags.DEFINE_string(
        "data_dir", None, "Dataset directory: Fashion-MNIST IDX files or a TFDS data directory."
    )


def define_int8_mode_flag() -> None:
    """`--int8_mode`: how int8 weights run (`el_larq.deploy.int8.INT8_MODES`).

    # Example
        ```python
        define_int8_mode_flag()
        quantize_weights(flatbuffer, mode=FLAGS.int8_mode)
        ```
    """
    from el_larq.deploy.int8 import INT8_MODES

    flags.DEFINE_enum(
        "int8_mode",
        INT8_MODES[0],
        list(INT8_MODES),
        "How int8 weights run: 'dequantize' turns them back into float32 once, at load "
        "(float kernels, exact on the rounded weights); 'hybrid' runs TFLite's hybrid "
        "kernels, which also round each activation to int8 (less memory, more sign flips).",
    )


def define_json_flag(help_text: str = "Also write the results as JSON to this path.") -> None:
    """`--json`: a machine-readable copy of what the tool prints.

    # Arguments
        help_text: The help text.

    # Example
        ```python
        define_json_flag("Also write the full report as JSON to this path.")
        ```
    """
    flags.DEFINE_string("json", None, help_text)


def check_json_flag(prog: str) -> None:
    """Exit with one line `prog: error: ...` when `--json` is given and cannot be written.

    # Example
        ```python
        check_json_flag("benchmark_batching.py")  # before the slow work starts
        ```
    """
    if flags.FLAGS.json:
        try:
            io.check_writable(flags.FLAGS.json)
        except io.OutputError as error:
            sys.exit(f"{prog}: error: {error}")
