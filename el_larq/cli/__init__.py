"""el-larq's command-line tools: one module per command, each with `run(argv, prog)`.

`el_larq.cli.main` is the `el-larq` command (and `python -m el_larq`) that dispatches to
`train`, `evaluate`, `convert`, `benchmark` (also `profile`), `demo` and `recipes`; the
scripts in the checkout's `train/` and `convert/` call the same modules. The tools only
parse flags, call the library and print. Shared here: user mistakes as one line,
`tool: error: ...` (`flags_parser`), and the flag groups (`el_larq.cli.flag_groups`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app, flags

__all__ = ["flags_parser", "run_tool"]


def flags_parser(tool: str) -> Callable[[list[str]], list[str]]:
    """An absl `flags_parser` that reports a bad flag as one line and exits with status 1.

    absl's own parser prints `FATAL Flags parsing error: ...` and a hint on a second line;
    the tools report every user mistake the same way instead.

    # Arguments
        tool: The name in the message, e.g. `"train.py"`.

    # Returns
        A function for `absl.app.run(main, flags_parser=...)`.

    # Example
        ```python
        app.run(main, flags_parser=flags_parser("train.py"))
        # train.py --epochs two  ->  train.py: error: flag --epochs=two: invalid literal ...
        ```
    """

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            sys.exit(f"{tool}: error: {error}")

    return parse


def run_tool(
    module: str,
    main: Callable[[list[str]], int],
    argv: list[str] | None,
    prog: str,
    parser: Callable[[list[str]], list[str]] | None = None,
) -> None:
    """Run a tool module's `main` under absl with its messages named `prog`.

    Sets the module's `PROG` (its messages read it) and reports bad flags as one line.

    # Arguments
        module: The tool module's `__name__`.
        main: Its `main(argv) -> exit status`.
        argv: The command line, program name first (default `sys.argv`).
        prog: The name in messages.
        parser: The tool's own flags parser (default `flags_parser(prog)`).

    # Example
        ```python
        run_tool(__name__, main, argv, "el-larq train")
        ```
    """
    sys.modules[module].PROG = prog
    app.run(main, argv=argv, flags_parser=parser or (lambda args: flags_parser(prog)(args)))
