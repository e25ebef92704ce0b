"""Top-1/top-5 accuracy of Keras (.h5) and LCE (.tflite) models on the same dataset split.

    el-larq evaluate --model runs/fmnist/model.h5 --model runs/fmnist/model.tflite \\
        --dataset fashion_mnist

(also `python -m el_larq evaluate ...` and, in a checkout, `python train/evaluate.py ...`)

Give a `.h5` and the `.tflite` that `convert/to_lce.py` made from it to see that
deployment kept the accuracy: both see the same preprocessed images, the `.tflite`
through Larq Compute Engine's interpreter. See docs/training.md.
"""

import json
import os
import sys

from absl import flags, logging

import el_larq  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from el_larq import io, training
from el_larq.cli import flag_groups, run_tool
from el_larq.safety import DeploymentError

# The name in messages: `evaluate.py` (the script), `el-larq evaluate` (the command).
PROG = "evaluate.py"
FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, "A .h5 / .keras / SavedModel or .tflite; repeatable.")
flag_groups.define_dataset_flags()
flags.DEFINE_bool("download", True, "Let TFDS download a missing dataset (--nodownload: never).")
flags.DEFINE_string("split", None, "Split (default: the dataset's validation or test split).")
flags.DEFINE_integer("batch_size", 256, "Batch size of the input pipeline.", lower_bound=1)
flags.DEFINE_integer("max_examples", None, "Evaluate only the first N examples.", lower_bound=1)
flag_groups.define_interpreter_flags()
flags.DEFINE_integer(
    "interpreter_batch",
    1,
    "Images per LCE interpreter call for a .tflite: the same results as 1 (one by one), "
    "speed depends on the host (convert/benchmark_batching.py measures it).",
    lower_bound=1,
)
flag_groups.define_json_flag()
flags.mark_flag_as_required("model")


def _check_paths(models: list[str], json_path: str | None) -> None:
    """Every input and the output are checked before the first (slow) evaluation."""
    for path in models:
        if not os.path.exists(path):
            raise training.ConfigError(f"model file {path} does not exist.")
    if json_path:
        io.check_writable(json_path)
        # A --json that does not exist yet cannot be (a link to) an existing model.
        if os.path.exists(json_path) and any(os.path.samefile(json_path, p) for p in models):
            raise training.ConfigError(f"--json {json_path} is one of the --model files.")


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.ERROR)  # TF/TFDS Python INFO and warnings: noise here
    results = []
    try:
        _check_paths(FLAGS.model, FLAGS.json)
        for path in FLAGS.model:
            results.append(
                training.evaluate_model(
                    path,
                    FLAGS.dataset,
                    FLAGS.split,
                    data_dir=FLAGS.data_dir,
                    batch_size=FLAGS.batch_size,
                    max_examples=FLAGS.max_examples,
                    **flag_groups.interpreter_settings(),
                    interpreter_batch=FLAGS.interpreter_batch,
                    download=FLAGS.download,
                    progress=True,
                )
            )
    except (*training.USER_ERRORS, DeploymentError) as error:
        sys.exit(f"{PROG}: error: {error}")
    width = max(len(r["model"]) for r in results)
    print(f"{'model':<{width}}  format  dataset/split  examples  top-1    top-5")
    for r in results:
        where = f"{r['dataset']}/{r['split']}"
        print(
            f"{r['model']:<{width}}  {r['format']:<6}  {where:<13}  {r['examples']:>8}  "
            f"{r['top1']:.4f}  {r['top5']:.4f}"
        )
    if len(results) > 1:
        delta = results[-1]["top1"] - results[0]["top1"]
        print(f"top-1 difference (last - first): {delta:+.4f}")
    if FLAGS.json:
        io.write_atomic(FLAGS.json, (json.dumps(results, indent=1) + "\n").encode())


def run(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Run the tool on `argv` (default `sys.argv`) and exit with its status.

    # Arguments
        argv: The command line, program name first.
        prog: The name in messages.

    # Example
        ```python
        run(["el-larq evaluate", "--model", "m.h5", "--model", "m.tflite"])
        ```
    """
    run_tool(__name__, main, argv, prog)


if __name__ == "__main__":
    run()
