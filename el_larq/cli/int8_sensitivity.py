"""Which float layers can store int8 weights without costing accuracy: one layer at a time.

    el-larq int8-sensitivity model.h5 [--dataset=fashion_mnist] [--split=train] [--max_examples=N]
        [--int8_mode=dequantize|hybrid] [--json=sensitivity.json]

(also, in a checkout, `python convert/int8_sensitivity.py ...`)

Converts the trained Keras model with LCE and evaluates, on the dataset's evaluation split
(labelled top-1 / top-5): Keras, the float32 flatbuffer, every float layer's weights as
int8, `--int8_weights`' default choice, and each float layer's weights alone as int8
(`el_larq.deploy.int8_sensitivity.int8_sensitivity`). See docs/deployment.md, section 1.1.
"""

import sys
from pathlib import Path

from absl import app, flags

from el_larq import data, io, training  # (el_larq first: Keras 2)
from el_larq.cli import flag_groups, run_tool
from el_larq.deploy.int8_sensitivity import int8_sensitivity
from el_larq.safety import DeploymentError

# The name in messages: `int8_sensitivity` (the script), `el-larq int8-sensitivity`.
PROG = "int8_sensitivity"
FLAGS = flags.FLAGS
flag_groups.define_dataset_flags("fashion_mnist", "Labelled dataset to score on.")
flags.DEFINE_string(
    "split",
    None,
    "Split to score on (default: the evaluation split; 'train' to choose layers "
    "without looking at the test set).",
)
flags.DEFINE_integer("max_examples", None, "Score on the first N images only.", lower_bound=1)
flag_groups.define_interpreter_flags()
flag_groups.define_int8_mode_flag()
flag_groups.define_json_flag("Also write the rows as JSON to this path.")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise app.UsageError("expected one Keras model path")
    try:
        model = Path(argv[1])
        if FLAGS.json:
            io.check_outputs([model], {"--json": FLAGS.json})
            io.check_writable(FLAGS.json)
        rows = int8_sensitivity(
            model,
            FLAGS.dataset,
            split=FLAGS.split,
            data_dir=FLAGS.data_dir,
            max_examples=FLAGS.max_examples,
            mode=FLAGS.int8_mode,
            **flag_groups.interpreter_settings(),
        )
    except (DeploymentError, data.DataError, training.ConfigError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    keras = rows[0]["top1"]
    print(
        "| variant | int8 tensors | binary convs after | bytes | top-1 | top-5 "
        "| top-1 vs Keras (points) | predictions changed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        size = "-" if row["bytes"] is None else row["bytes"]
        after = "-" if row.get("binary_after") is None else row["binary_after"]
        print(
            f"| {row['variant']} | {row['int8_tensors']} | {after} | {size} "
            f"| {100 * row['top1']:.2f} % | {100 * row['top5']:.2f} % "
            f"| {100 * (row['top1'] - keras):+.2f} | {100 * row['changed']:.2f} % |"
        )
    split = FLAGS.split or data.default_eval_split(FLAGS.dataset, FLAGS.data_dir)
    print(
        f"({rows[0]['examples']} images of {FLAGS.dataset} {split}; predictions changed: "
        "against the float32 flatbuffer)"
    )
    if FLAGS.json:
        io.write_atomic(FLAGS.json, (io.json_dumps(rows) + "\n").encode())
    return 0


def run(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Run the tool on `argv` (default `sys.argv`) and exit with its status.

    # Arguments
        argv: The command line, program name first.
        prog: The name in messages.

    # Example
        ```python
        run(["el-larq int8-sensitivity", "model.h5", "--dataset=fashion_mnist"])
        ```
    """
    run_tool(__name__, main, argv, prog)
