"""The same feature maps of several trained models in one PNG (the paper's Fig. 1).

    el-larq feature-maps --model runs/fp/model.h5 --model runs/bireal/model.h5 \\
        --model runs/el/model.h5 --layer stage2_block1_out --dataset fashion_mnist \\
        --images 3 --channels 0,1,2,3 --output fig1.png

Every model sees the same test images (the first `--images` after `--offset`, at the
models' input size, preprocessed as for evaluation); a row per image shows the input
and, for each model, the chosen channels of `--layer` (one name for all models, or one
per `--model`, in order). Models are loaded with the deployment safety rules (no code
from the file runs). See docs/training.md.
"""

import os
import sys

from absl import flags, logging

import el_larq  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from el_larq import data as data_lib
from el_larq import io, training
from el_larq.cli import flag_groups, run_tool
from el_larq.deploy.loading import load_model
from el_larq.feature_maps import FeatureMapError, plot_feature_maps
from el_larq.safety import DeploymentError

PROG = "el-larq feature-maps"
FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, "A trained Keras model file; repeatable (2-4 usual).")
flags.DEFINE_multi_string("label", None, "A label per --model (default: its folder's name).")
flags.DEFINE_multi_string("layer", None, "Layer name: one for all models, or one per --model.")
flag_groups.define_dataset_flags()
flags.DEFINE_string("split", None, "Split (default: the dataset's validation or test split).")
flags.DEFINE_integer("images", 3, "Images (rows).", lower_bound=1, upper_bound=16)
flags.DEFINE_integer("offset", 0, "Skip this many images of the split first.", lower_bound=0)
flags.DEFINE_list("channels", ["0", "1", "2", "3"], "Channel indices to show.")
flags.DEFINE_string("output", None, "The PNG to write.")
flags.DEFINE_string("title", "", "Figure title.")
flags.mark_flags_as_required(["model", "layer", "output"])


def _label(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return parent if name.startswith("model.") and parent else os.path.splitext(name)[0]


def _arguments() -> tuple[list[str], list[str], list[int]]:
    models, layers = FLAGS.model, FLAGS.layer
    labels = FLAGS.label or [_label(path) for path in models]
    if len(layers) not in (1, len(models)):
        raise training.ConfigError(f"give one --layer, or one per --model ({len(models)}).")
    if len(labels) != len(models) or len(set(labels)) != len(labels):
        raise training.ConfigError("give one distinct --label per --model.")
    try:
        channels = [int(channel) for channel in FLAGS.channels]
    except ValueError:
        raise training.ConfigError(f"--channels must be integers, got {FLAGS.channels}.") from None
    if not channels or min(channels) < 0:
        raise training.ConfigError(f"--channels must be integers >= 0, got {FLAGS.channels}.")
    for path in models:
        if not os.path.exists(path):
            raise training.ConfigError(f"model file {path} does not exist.")
    io.check_outputs(models, {"--output": FLAGS.output})
    io.check_writable(FLAGS.output)
    return labels, layers * (len(models) // len(layers)), channels


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.ERROR)
    try:
        labels, layers, channels = _arguments()
        models = {label: load_model(path) for label, path in zip(labels, FLAGS.model, strict=True)}
        shapes = {tuple(model.inputs[0].shape[1:]) for model in models.values()}
        if len(shapes) != 1:
            raise training.ConfigError(f"the models take different inputs: {sorted(shapes)}.")
        split, data = data_lib.load_eval_split_for(
            shapes.pop(), FLAGS.dataset, FLAGS.split, batch_size=FLAGS.images,
            data_dir=FLAGS.data_dir, model="the models",
        )  # fmt: skip
        batch = data.dataset.unbatch().skip(FLAGS.offset).take(FLAGS.images).batch(FLAGS.images)
        images = next(iter(batch.as_numpy_iterator()), (None,))[0]
        if images is None:
            raise training.ConfigError(f"{FLAGS.dataset} {split} has no image at {FLAGS.offset}.")
        path = plot_feature_maps(
            models, dict(zip(labels, layers, strict=True)), images, FLAGS.output, channels,
            FLAGS.title,
        )  # fmt: skip
    except (*training.USER_ERRORS, DeploymentError, FeatureMapError, ImportError) as error:
        sys.exit(f"{PROG}: error: {error}")
    print(f"{len(models)} models x {len(images)} images, channels {channels} -> {path}")


def run(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Run the tool on `argv` (default `sys.argv`) and exit with its status.

    # Example
        ```python
        run(["el-larq feature-maps", "--model", "a.h5", "--layer", "x", "--output", "f.png"])
        ```
    """
    run_tool(__name__, main, argv, prog)


if __name__ == "__main__":
    run()
