"""Top-1/top-5 accuracy of Keras (.h5) and LCE (.tflite) models on the same dataset split.

    python train/evaluate.py --model runs/fmnist/model.h5 --model runs/fmnist/model.tflite \\
        --dataset fashion_mnist

Give a `.h5` and the `.tflite` that `convert/to_lce.py` made from it to see that
deployment kept the accuracy: both see the same preprocessed images, the `.tflite`
through Larq Compute Engine's interpreter. See docs/training.md.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet TensorFlow unless asked

from absl import app, flags, logging  # noqa: E402

import el_larq  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)
from el_larq import cli, lce, training  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, "A .h5 / .keras / SavedModel or .tflite; repeatable.")
flags.DEFINE_string("dataset", "fashion_mnist", "fashion_mnist, imagenet2012 or a TFDS dataset.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory or TFDS data directory.")
flags.DEFINE_bool("download", True, "Let TFDS download a missing dataset (--nodownload: never).")
flags.DEFINE_string("split", None, "Split (default: the dataset's validation or test split).")
flags.DEFINE_integer("batch_size", 256, "Batch size of the input pipeline.", lower_bound=1)
flags.DEFINE_integer("max_examples", None, "Evaluate only the first N examples.", lower_bound=1)
flags.DEFINE_integer("num_threads", 1, "LCE interpreter threads.", lower_bound=1)
flags.DEFINE_enum("kernel", "indirect_bgemm", lce.KERNELS, "LCE binary-conv kernel.")
flags.DEFINE_string("json", None, "Also write the results as JSON to this path.")
flags.mark_flag_as_required("model")


def _check_paths(models: list[str], json_path: str | None) -> None:
    """Every input and the output are checked before the first (slow) evaluation."""
    for path in models:
        if not os.path.exists(path):
            raise training.ConfigError(f"model file {path} does not exist.")
    if json_path:
        lce.check_writable(json_path)
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
                    num_threads=FLAGS.num_threads,
                    kernel=FLAGS.kernel,
                    download=FLAGS.download,
                )
            )
    except (*training.USER_ERRORS, lce.DeploymentError) as error:
        sys.exit(f"evaluate.py: error: {error}")
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
        lce.write_atomic(FLAGS.json, (json.dumps(results, indent=1) + "\n").encode())


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("evaluate.py"))
