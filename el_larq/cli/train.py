"""Train an el-larq zoo model with the paper's recipe.

    el-larq train --model el_resnet26 --width 0.25 --epochs 2 --output_dir runs/fmnist
    el-larq train --model keras:MobileNetV2 --elasticize --width 0.35 --image_size 32 \\
        --output_dir runs/mobilenetv2_el
    el-larq train --recipe el_resnet26 --dataset imagenet2012 --data_dir ~/tfds \\
        --strategy mirrored --output_dir runs/imagenet
    el-larq train --recipe reactnet_a --teacher runs/teacher/model.h5 --output_dir runs/ra

A recipe with stages (ReActNet's two steps, Real-to-Binary's) trains them all, each in
its own folder under --output_dir; flags given explicitly apply to every stage.

(also `python -m el_larq train ...` and, in a checkout, `python train/train.py ...`)

Rerunning the same command after a crash resumes the run. See docs/training.md.
"""

import shlex
import sys

from absl import flags, logging

import el_larq  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from el_larq import distribute, training
from el_larq.cli import flag_groups, run_tool
from el_larq.layers import GAMMA_ON

# The name in messages: `train.py` (the script), `el-larq train` (the command).
PROG = "train.py"
FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model", None, "Zoo model name, e.g. el_resnet26 (default), or keras:<Application>."
)
flags.DEFINE_bool("elasticize", False, "Binarize a keras: model with Elastic-Link first.")
# elasticize's options (el_larq.elasticize.OPTIONS); given ones go over a recipe's.
flags.DEFINE_bool(
    "elastic_link", True, "--elasticize: --noelastic_link binarizes without links (ablation)."
)
flags.DEFINE_list("keep_float", [], "--elasticize: more layers to keep in full precision.")
flags.DEFINE_list(
    "activation_scaling", [], "--elasticize: convs that get XNOR-Net's K (names, or 'all')."
)
flags.DEFINE_bool("gamma_trainable", True, "--elasticize: --nogamma_trainable fixes the gammas.")
flags.DEFINE_enum("gamma_on", "squeeze_expand", GAMMA_ON, "--elasticize: links with a gamma.")
flags.DEFINE_string("recipe", None, "Recipe name (el-larq recipes); explicit flags win.")
flag_groups.define_dataset_flags()
flags.DEFINE_bool("download", True, "Let TFDS download a missing dataset (--nodownload: never).")
flags.DEFINE_string("train_split", "train", "Training split.")
flags.DEFINE_string("eval_split", None, "Evaluation split (default: validation or test).")
flags.DEFINE_integer("image_size", None, "Input side (default: native small / 224 large).")
flags.DEFINE_integer("epochs", 100, "Number of epochs.")
flags.DEFINE_integer("batch_size", 256, "Global batch size (split across replicas).")
flags.DEFINE_float("learning_rate", 1e-3, "Initial Adam learning rate (for the global batch).")
flags.DEFINE_enum("lr_schedule", "step", training.LR_SCHEDULES, "Learning-rate schedule.")
flags.DEFINE_list("lr_decay_epochs", ["0.5", "0.8"], "Step decay points, fractions of epochs.")
flags.DEFINE_float("lr_decay_factor", 0.1, "Step decay factor.")
flags.DEFINE_float("width", 1.0, "Channel width multiplier.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("output_dir", None, "Directory for the model, checkpoints, logs, metrics.")
flags.DEFINE_enum("strategy", "default", distribute.STRATEGIES, "tf.distribute strategy.")
flags.DEFINE_string("tpu", None, "TPU name or address for --strategy tpu.")
flags.DEFINE_integer("logical_cpus", 0, "--strategy mirrored without GPU: CPU devices to use.")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass).")
flags.DEFINE_integer("validation_steps", None, "Validation batches (default: whole split).")
flags.DEFINE_integer("backup_steps", 0, "Back up every N steps (0: at each epoch end).")
flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
flags.DEFINE_integer("verbose", 1, "Keras verbosity: 1 progress bar, 2 one line per epoch.")
flags.DEFINE_bool("overwrite", False, "Train again in an --output_dir with a finished run.")
flags.DEFINE_string("teacher", None, "Trained classifier (.h5) to distill from (ReActNet loss).")
flags.DEFINE_float("temperature", 1.0, "Temperature of the distributional loss.")
flags.DEFINE_float("distribution_weight", 1.0, "Weight of the distributional loss.")
flags.DEFINE_float("label_weight", 0.0, "Weight of the label cross-entropy with a --teacher.")
flags.DEFINE_float("weight_decay", 0.0, "L2 on conv/dense kernels, added to the loss.")
flags.DEFINE_float(
    "batch_norm_momentum", None,
    "Set every BatchNorm's momentum (keras-applications' 0.999 needs long runs; 0.9 for short).",
)  # fmt: skip
flags.DEFINE_string("init_from", None, "Model/weights file of the same network to start from.")
flags.mark_flag_as_required("output_dir")

# Flags that override a recipe only when given on the command line.
_RECIPE_FLAGS = ("epochs", "batch_size", "learning_rate", "lr_decay_epochs", "lr_decay_factor")
_RECIPE_FLAGS += ("width", "image_size", "lr_schedule", "weight_decay", "batch_norm_momentum")
_RECIPE_FLAGS += ("temperature", "distribution_weight", "label_weight")


def _overrides() -> dict:
    names = [
        "output_dir", "dataset", "data_dir", "download", "train_split", "eval_split", "image_size",
        "epochs", "batch_size", "learning_rate", "lr_schedule", "lr_decay_factor", "width",
        "seed", "strategy", "steps_per_epoch", "validation_steps", "backup_steps", "jit_compile",
        "verbose", "overwrite", "teacher", "temperature", "distribution_weight", "label_weight",
        "weight_decay", "init_from", "elasticize", "batch_norm_momentum",
    ]  # fmt: skip
    values = {name: FLAGS[name].value for name in names}
    values["elasticize_options"] = _elasticize_options()
    try:
        values["lr_decay_epochs"] = tuple(float(value) for value in FLAGS.lr_decay_epochs)
    except ValueError:
        raise training.ConfigError(
            f"--lr_decay_epochs must be numbers, got {','.join(FLAGS.lr_decay_epochs)!r}."
        ) from None
    if FLAGS.recipe:
        for name in (*_RECIPE_FLAGS, "elasticize"):
            if not FLAGS[name].present:
                values.pop(name, None)
    values["command"] = shlex.join([sys.executable, *sys.argv])
    return values


def _elasticize_options() -> dict:
    """The elasticize options given on the command line."""
    options = {}
    for name in ("elastic_link", "keep_float", "gamma_trainable", "gamma_on"):
        if FLAGS[name].present:
            options[name] = FLAGS[name].value
    if FLAGS["activation_scaling"].present:
        names = FLAGS.activation_scaling
        options["activation_scaling"] = True if names == ["all"] else names
    return options


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.ERROR)  # TF/TFDS Python INFO and warnings: noise here
    try:
        # The strategy comes first: multi-worker and logical CPUs must precede other TF work.
        strategy = distribute.make_strategy(
            FLAGS.strategy, tpu=FLAGS.tpu, logical_cpus=FLAGS.logical_cpus
        )
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        if FLAGS.recipe and training.recipe_stages(FLAGS.recipe):
            _train_stages(strategy)
            return
        config = training.resolve_config(_overrides(), recipe=FLAGS.recipe, model=FLAGS.model)
        distribute.check_global_batch(config.batch_size, strategy)
        _announce(config, strategy)
        metrics = training.train(config, strategy)
    except training.USER_ERRORS as error:
        sys.exit(f"{PROG}: error: {error}")
    where = metrics["output_dir"]
    print(f"done: {metrics['epochs']} epochs, {_scores(metrics)}, outputs in {where}")


def _announce(config, strategy) -> None:
    print(
        f"training {config.model} on {config.dataset} for {config.epochs} epochs, global "
        f"batch {config.batch_size} on {strategy.num_replicas_in_sync} replica(s) -> "
        f"{config.output_dir}",
        flush=True,
    )


def _scores(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("val_top1", "val_top5", "val_loss") if k in metrics}


def _train_stages(strategy) -> None:
    if FLAGS.model:
        raise training.ConfigError("pass either --model or --recipe, not both.")
    overrides = {k: v for k, v in _overrides().items() if k != "teacher"}
    configs = training.stage_configs(FLAGS.recipe, overrides, teacher=FLAGS.teacher)
    for config in configs:
        distribute.check_global_batch(config.batch_size, strategy)
    results = training.train_stages(configs, strategy, output_dir=FLAGS.output_dir)
    for result in results:
        print(f"{result['stage']}: {_scores(result['metrics'])}")
    print(f"done: {len(results)} stages, outputs in {FLAGS.output_dir}")


def run(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Run the tool on `argv` (default `sys.argv`) and exit with its status.

    # Arguments
        argv: The command line, program name first.
        prog: The name in messages.

    # Example
        ```python
        run(["el-larq train", "--model", "el_resnet18", "--output_dir", "run"])
        ```
    """
    run_tool(__name__, main, argv, prog)


if __name__ == "__main__":
    run()
