"""`el-larq`: one command, with the tools as subcommands.

    el-larq COMMAND [flags] [arguments]
    python -m el_larq COMMAND [flags] [arguments]

`el-larq COMMAND --help` lists a command's flags. Every output goes where the flags
say, or beside the input / into the current directory, never into the installed
package.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["COMMANDS", "main"]

# command -> (module with `run(argv, prog)`, flags put in front of the user's, summary)
COMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "train": ("el_larq.cli.train", (), "train a zoo model or recipe (train/train.py)"),
    "evaluate": (
        "el_larq.cli.evaluate",
        (),
        "top-1/top-5 of .h5 and LCE .tflite models (train/evaluate.py)",
    ),
    "convert": (
        "el_larq.cli.convert",
        (),
        "Keras model -> verified LCE .tflite, op census (convert/to_lce.py)",
    ),
    "benchmark": (
        "el_larq.cli.benchmark",
        (),
        "latency of .tflite files, host or ARM device (convert/benchmark.py)",
    ),
    "int8-sensitivity": (
        "el_larq.cli.int8_sensitivity",
        (),
        "labelled top-1 with each float layer's weights alone as int8 (--int8_weights' choice)",
    ),
    "profile": (
        "el_larq.cli.benchmark",
        ("--profile",),
        "per-op latency profile: benchmark --profile",
    ),
    "demo": (
        "el_larq.cli.demo",
        (),
        "the main job: train, convert, evaluate, benchmark (train/main_job.py)",
    ),
    "feature-maps": (
        "el_larq.cli.feature_maps",
        (),
        "the same feature maps of several models in one PNG (the paper's Fig. 1)",
    ),
    "recipes": ("el_larq.cli.recipes", (), "list the paper's recipes"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: el-larq COMMAND [flags] [arguments]   (el-larq COMMAND --help)", ""]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, _, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run `el-larq COMMAND ...`; exits with the command's status.

    # Arguments
        argv: The command line, program name first (default `sys.argv`).

    # Example
        ```python
        main(["el-larq", "convert", "model.h5", "--int8_weights"])
        ```
    """
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        sys.exit(f"el-larq: error: unknown command '{command}'; commands: {', '.join(COMMANDS)}")
    name, extra, _ = COMMANDS[command]
    prog = f"el-larq {command}"
    module = importlib.import_module(name)
    # absl's --help shows the __main__ module's docstring: the command's, not this one's.
    sys.modules["__main__"].__doc__ = module.__doc__
    module.run([prog, *extra, *argv[2:]], prog=prog)


if __name__ == "__main__":
    main()
