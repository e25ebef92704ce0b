"""Training with the paper's recipe: Adam, no weight decay, STE, step learning-rate decay.

`train(config)` trains a zoo model on a dataset from `el_larq.data` and writes
everything a run produces into `config.output_dir`:

    model.h5              final model (atomic write; `load_model` after `import el_larq`)
    checkpoints/last.h5   weights after the latest epoch
    checkpoints/best.h5   weights of the epoch with the best validation top-1
    backup/               Keras BackupAndRestore state (removed once model.h5 exists)
    logs/                 TensorBoard logs
    metrics.csv, .json    one row per epoch (loss, top-1, top-5, validation, lr, time)
    gamma_report.json     learned gamma of every Elastic-Link (and .png plot)
    command.txt           the exact command line; config.json: the resolved config

Runs are crash-safe: killed at any point, the same command resumes from the last
backup (every epoch end, or every `backup_steps` steps) and ends after the same number
of epochs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np
import tensorflow as tf

from el_larq import data as data_lib
from el_larq import distribute

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainingDiverged",
    "USER_ERRORS",
    "compile_model",
    "evaluate_model",
    "learning_rate_schedule",
    "resolve_config",
    "save_model_atomic",
    "train",
]

LR_SCHEDULES = ("step", "cosine", "constant")
FINAL_MODEL = "model.h5"


class ConfigError(ValueError):
    """A training configuration that cannot work; the message says how to fix it."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


# Errors that are the user's to fix: the CLIs print them as one line, without traceback.
USER_ERRORS = (ConfigError, data_lib.DataError, distribute.StrategyError, TrainingDiverged)


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (what `config.json` records).

    # Attributes
        output_dir: Directory for all outputs (created).
        model: Zoo model name (`el_larq.zoo.MODELS`).
        model_kwargs: Extra keyword arguments of the zoo builder.
        recipe: Name of the `zoo/` recipe the values came from, if any.
        dataset: `fashion_mnist`, `imagenet2012` or any TFDS image dataset.
        data_dir: IDX directory (Fashion-MNIST) or TFDS data directory.
        train_split, eval_split: Split names; `eval_split=None` picks the dataset's
            test/validation split.
        image_size: Model input side; None: native for small images, 224 for large.
        download: Let TFDS download a missing dataset.
        epochs, batch_size (global), learning_rate: The paper's 100, 256, 1e-3.
        lr_schedule: `step` (decay by `lr_decay_factor` at `lr_decay_epochs`, fractions
            of `epochs`), `cosine` or `constant`.
        width: Channel multiplier of the model.
        seed: Seed for weights, shuffling and augmentation.
        strategy: Name of the strategy (`el_larq.distribute.STRATEGIES`), recorded.
        steps_per_epoch: Steps per epoch; None: one pass over the training split.
        validation_steps: Validation batches per epoch; None: the whole split.
        backup_steps: Back up every that many steps instead of at every epoch end
            (0: at epoch ends).
        jit_compile: Compile the training step with XLA.
        verbose: Keras verbosity (1: progress bar, 2: one line per epoch).
        overwrite: Replace a finished run in `output_dir`.
        command: The command line, for `command.txt`.
    """

    output_dir: str
    model: str = "el_resnet26"
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe: str | None = None
    dataset: str = data_lib.FASHION_MNIST
    data_dir: str | None = None
    train_split: str = "train"
    eval_split: str | None = None
    image_size: int | None = None
    download: bool = True
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 1e-3
    lr_schedule: str = "step"
    lr_decay_epochs: tuple[float, ...] = (0.5, 0.8)
    lr_decay_factor: float = 0.1
    width: float = 1.0
    seed: int = 0
    strategy: str = "default"
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    backup_steps: int = 0
    jit_compile: bool = False
    verbose: int = 1
    overwrite: bool = False
    command: str = ""


def resolve_config(
    overrides: dict[str, Any], *, recipe: str | None = None, model: str | None = None
) -> TrainConfig:
    """Combine a recipe's values with explicitly given ones (which win).

    # Arguments
        overrides: `TrainConfig` fields given explicitly (e.g. on the command line).
        recipe: A `zoo/` recipe name; its model, model arguments and training values
            become the defaults.
        model: A zoo model name (instead of a recipe).

    # Returns
        A `TrainConfig`.

    # Raises
        ConfigError: both or an unknown `model`/`recipe`, bad values.

    # Example
        ```python
        config = resolve_config({"output_dir": "runs/a", "epochs": 2}, recipe="el_resnet26")
        ```
    """
    if recipe and model:
        raise ConfigError("pass either --model or --recipe, not both.")
    values: dict[str, Any] = {}
    if recipe:
        values.update(_recipe_values(recipe, overrides.get("dataset", data_lib.FASHION_MNIST)))
    elif model:
        _check_model(model)
        values["model"] = model
    values.update({key: value for key, value in overrides.items() if value is not None})
    config = TrainConfig(**values)
    _check_config(config)
    return config


def _recipe_values(name: str, dataset: str) -> dict[str, Any]:
    from el_larq import recipes

    try:
        recipe = recipes.load_recipe(name)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    training = recipe.get("training", {})
    if training.get("optimizer", "adam") != "adam" or training.get("weight_decay", 0.0):
        raise ConfigError(f"recipe {name!r}: only Adam without weight decay is supported.")
    values = {
        "recipe": name,
        "model": recipe["model"],
        "model_kwargs": dict(recipe.get("model_kwargs", {})),
    }
    keys = {"epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate"}
    keys.update(lr_decay_epochs="lr_decay_epochs_fraction", lr_decay_factor="lr_decay_factor")
    for field, key in keys.items():
        if key in training:
            values[field] = training[key]
    if "lr_decay_epochs" in values:
        values["lr_decay_epochs"] = tuple(values["lr_decay_epochs"])
    # The recipe's input size is ImageNet's; small datasets keep their own size.
    if dataset == data_lib.IMAGENET and "input_size" in training:
        values["image_size"] = int(training["input_size"])
    if "width" in values["model_kwargs"]:
        values["width"] = values["model_kwargs"].pop("width")
    return values


def _check_model(name: str) -> None:
    from el_larq import zoo

    if name not in zoo.MODELS:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(sorted(zoo.MODELS))}.")


def _check_config(config: TrainConfig) -> None:
    _check_model(config.model)
    if config.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {config.epochs}.")
    if config.batch_size < 1:
        raise ConfigError(f"--batch_size must be at least 1, got {config.batch_size}.")
    if not config.learning_rate > 0:
        raise ConfigError(f"--learning_rate must be positive, got {config.learning_rate}.")
    if not config.width > 0:
        raise ConfigError(f"--width must be positive, got {config.width}.")
    if config.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"--lr_schedule must be one of {', '.join(LR_SCHEDULES)}.")
    if any(not 0 < f < 1 for f in config.lr_decay_epochs):
        raise ConfigError("--lr_decay_epochs are fractions of --epochs, each in (0, 1).")


def learning_rate_schedule(config: TrainConfig):
    """The learning rate of each (0-based) epoch, as a function for `LearningRateScheduler`.

    `step` (the paper): `learning_rate`, times `lr_decay_factor` after each of
    `lr_decay_epochs` (fractions of `epochs`: 100 epochs -> epochs 50 and 80).

    # Example
        ```python
        schedule = learning_rate_schedule(TrainConfig("out", epochs=100))
        schedule(49), schedule(50), schedule(80)  # 1e-3, 1e-4, 1e-5
        ```
    """
    base, epochs = config.learning_rate, config.epochs
    # Rounded half up and never before epoch 1: with 1 epoch the rate stays constant.
    boundaries = [max(1, math.floor(f * epochs + 0.5)) for f in config.lr_decay_epochs]

    def schedule(epoch: int, lr: float | None = None) -> float:
        if config.lr_schedule == "constant":
            return base
        if config.lr_schedule == "cosine":
            return base * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        return base * config.lr_decay_factor ** sum(epoch >= b for b in boundaries)

    return schedule


def _ends_with_softmax(model: tf.keras.Model) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return isinstance(last, tf.keras.layers.Softmax) or activation is tf.keras.activations.softmax


def compile_model(model: tf.keras.Model, learning_rate: float, jit_compile: bool = False) -> None:
    """Compile with the paper's recipe: Adam (no weight decay), sparse cross-entropy, top-1/5.

    Binarization happens on the fly in the forward pass (larq quantizers) with the
    straight-through estimator; latent weights stay real-valued and clipped.

    # Arguments
        model: A Keras classifier (softmax output, or logits).
        learning_rate: Initial learning rate.
        jit_compile: Compile the step with XLA.
    """
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=not _ends_with_softmax(model)
        ),
        metrics=[
            tf.keras.metrics.SparseCategoricalAccuracy(name="top1"),
            tf.keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ],
        jit_compile=jit_compile,
    )


def save_model_atomic(model: tf.keras.Model, path: str) -> None:
    """Save `model` as HDF5 at `path` so that `path` is either absent or complete.

    Writes a temporary file in the same directory and renames it (`os.replace`).

    # Example
        ```python
        save_model_atomic(model, "runs/a/model.h5")
        ```
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp.h5")
    try:
        with warnings.catch_warnings():  # HDF5 is "legacy" to Keras, but what LCE tools read
            warnings.simplefilter("ignore", UserWarning)
            model.save(tmp, include_optimizer=False, save_format="h5")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class _StopOnNaN(tf.keras.callbacks.TerminateOnNaN):
    """Keras' TerminateOnNaN that also remembers where it stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.stopped_at: tuple[int, int, float] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.stopped_at is None:
            self.stopped_at = (self.epoch + 1, batch + 1, float(loss))


class _MetricsLogger(tf.keras.callbacks.Callback):
    """metrics.json / metrics.csv with one row per epoch, keyed by epoch.

    Keyed rows (not an appending CSVLogger) keep the files right when a resumed run
    repeats an epoch whose row was written before the crash.
    """

    def __init__(self, output_dir: str, images_per_step: int) -> None:
        super().__init__()
        self.json_path = os.path.join(output_dir, "metrics.json")
        self.csv_path = os.path.join(output_dir, "metrics.csv")
        self.images_per_step = images_per_step
        self.rows: dict[int, dict[str, float]] = {}
        if os.path.exists(self.json_path):
            with open(self.json_path) as f:
                self.rows = {row["epoch"]: row for row in json.load(f)}
        self._start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.time() - self._start
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["seconds"] = round(seconds, 3)
        steps = self.params.get("steps") or 0
        row["images_per_second"] = round(steps * self.images_per_step / max(seconds, 1e-9), 2)
        self.rows[epoch + 1] = row
        self.write()

    def write(self) -> None:
        rows = [self.rows[epoch] for epoch in sorted(self.rows)]
        _write_atomic(self.json_path, json.dumps(rows, indent=1))
        fields = sorted({key for row in rows for key in row} - {"epoch"})
        tmp = self.csv_path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, ["epoch", *fields])
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv_path)


def _last_metrics(output_dir: str) -> dict[str, float]:
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = json.load(f)
    return dict(rows[-1]) if rows else {}


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def _prepare_output_dir(config: TrainConfig, chief: bool) -> bool:
    """Check that the run can write its outputs; True when it resumes a backup."""
    out = config.output_dir
    backup = os.path.join(out, "backup")
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        reason = error.strerror or error
        raise ConfigError(f"cannot write to --output_dir {out}: {reason}.") from error
    resuming = os.path.isdir(backup) and bool(os.listdir(backup))
    finished = os.path.exists(os.path.join(out, FINAL_MODEL))
    if finished and not resuming and chief:
        if not config.overwrite:
            raise ConfigError(
                f"{out} already holds a finished run ({FINAL_MODEL}); pass --overwrite to "
                "train again there, or choose another --output_dir."
            )
        for name in os.listdir(out):
            path = os.path.join(out, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return resuming


def _gamma_outputs(model: tf.keras.Model, output_dir: str) -> list[dict[str, Any]]:
    from el_larq import zoo

    report = zoo.gamma_report(model)
    _write_atomic(os.path.join(output_dir, "gamma_report.json"), json.dumps(report, indent=1))
    if report:
        zoo.plot_gamma_report(report, os.path.join(output_dir, "gamma_report.png"))
    return report


def _callbacks(config, chief, schedule, nan_stop, images_per_step):
    out = config.output_dir
    save_freq = config.backup_steps if config.backup_steps > 0 else "epoch"
    callbacks = [
        nan_stop,
        tf.keras.callbacks.BackupAndRestore(
            os.path.join(out, "backup"), save_freq=save_freq, delete_checkpoint=False
        ),
        tf.keras.callbacks.LearningRateScheduler(schedule),
        tf.keras.callbacks.ModelCheckpoint(
            os.path.join(out, "checkpoints", "last.h5"), save_weights_only=True
        ),
        tf.keras.callbacks.ModelCheckpoint(
            os.path.join(out, "checkpoints", "best.h5"),
            monitor="val_top1",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
        ),
        tf.keras.callbacks.TensorBoard(os.path.join(out, "logs"), profile_batch=0),
    ]
    if chief:
        callbacks.append(_MetricsLogger(out, images_per_step))
    return callbacks


def _versions() -> dict[str, str]:
    import larq
    import larq_compute_engine

    import el_larq

    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "larq": larq.__version__,
        "larq_compute_engine": larq_compute_engine.__version__,
        "el_larq": el_larq.__version__,
    }


def train(config: TrainConfig, strategy: tf.distribute.Strategy | None = None) -> dict[str, Any]:
    """Train `config.model` on `config.dataset` and write the run to `config.output_dir`.

    # Arguments
        config: The run (see `TrainConfig`).
        strategy: A `tf.distribute.Strategy` (see `el_larq.distribute.make_strategy`);
            default: the default strategy. `config.batch_size` is the global batch.

    # Returns
        The final epoch's metrics (`loss`, `top1`, `top5`, `val_loss`, `val_top1`,
        `val_top5`, ...) plus `epochs`, `resumed` and `output_dir`.

    # Raises
        ConfigError, DataError, StrategyError: bad configuration or data (nothing is
            trained, no `model.h5`).
        TrainingDiverged: the loss became NaN (no `model.h5`).

    # Example
        ```python
        config = TrainConfig("runs/fmnist", model="el_resnet26", width=0.25, epochs=2)
        metrics = train(config)
        print(metrics["val_top1"])
        ```
    """
    strategy = strategy or tf.distribute.get_strategy()
    chief = distribute.is_chief(strategy)
    distribute.check_global_batch(config.batch_size, strategy)
    resuming = _prepare_output_dir(config, chief)
    if resuming and config.verbose:
        print(f"resuming from the backup in {os.path.join(config.output_dir, 'backup')}")
    tf.keras.utils.set_random_seed(config.seed)

    train_split = data_lib.load_split(
        config.dataset,
        config.train_split,
        training=True,
        batch_size=config.batch_size,
        data_dir=config.data_dir,
        image_size=config.image_size,
        seed=config.seed,
        download=config.download,
    )
    eval_name = config.eval_split or data_lib.default_eval_split(config.dataset, config.data_dir)
    eval_split = data_lib.load_split(
        config.dataset,
        eval_name,
        training=False,
        batch_size=config.batch_size,
        data_dir=config.data_dir,
        image_size=train_split.input_shape[0],
        download=config.download,
    )
    steps = config.steps_per_epoch or train_split.num_examples // config.batch_size
    if steps < 1:
        raise ConfigError(
            f"--batch_size {config.batch_size} is larger than the {train_split.num_examples} "
            "training examples."
        )

    from el_larq import zoo

    with strategy.scope():
        try:
            model = zoo.get_model(
                config.model,
                input_shape=train_split.input_shape,
                num_classes=train_split.num_classes,
                width=config.width,
                **config.model_kwargs,
            )
        except (TypeError, ValueError) as error:  # bad builder arguments
            raise ConfigError(f"cannot build {config.model}: {error}") from error
        compile_model(model, config.learning_rate, config.jit_compile)

    if chief:
        record = {
            **dataclasses.asdict(config),
            "eval_split": eval_name,
            "strategy_class": type(strategy).__name__,
            "replicas": strategy.num_replicas_in_sync,
            "steps_per_epoch": steps,
            "train_examples": train_split.num_examples,
            "eval_examples": eval_split.num_examples,
            "input_shape": list(train_split.input_shape),
            "num_classes": train_split.num_classes,
            "data_source": train_split.source,
            "parameters": int(model.count_params()),
            "versions": _versions(),
        }
        _write_atomic(os.path.join(config.output_dir, "config.json"), json.dumps(record, indent=1))
        if config.command:
            _write_atomic(os.path.join(config.output_dir, "command.txt"), config.command)

    nan_stop = _StopOnNaN()
    history = model.fit(
        train_split.dataset,
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=eval_split.dataset,
        validation_steps=config.validation_steps,
        callbacks=_callbacks(
            config, chief, learning_rate_schedule(config), nan_stop, config.batch_size
        ),
        verbose=config.verbose,
    )
    if nan_stop.stopped_at is not None:
        epoch, step, loss = nan_stop.stopped_at
        if chief:  # the backup holds the diverged weights: a rerun must not resume them
            shutil.rmtree(os.path.join(config.output_dir, "backup"), ignore_errors=True)
        raise TrainingDiverged(
            f"training stopped: the loss became {loss} at epoch {epoch}, step {step}; no "
            f"{FINAL_MODEL} was written and the backup was removed. Lower --learning_rate "
            f"(now {config.learning_rate}) and run again."
        )

    final = {key: float(values[-1]) for key, values in history.history.items() if values}
    if not final and chief:  # resumed after the last epoch: nothing left to train
        final = _last_metrics(config.output_dir)
    # Every worker saves (reading synced variables is a collective op); only the chief's
    # copy is kept.
    save_dir = config.output_dir if chief else tempfile.mkdtemp(prefix="el_larq_worker_")
    save_model_atomic(model, os.path.join(save_dir, FINAL_MODEL))
    if chief:
        _gamma_outputs(model, config.output_dir)
        shutil.rmtree(os.path.join(config.output_dir, "backup"), ignore_errors=True)
    else:
        shutil.rmtree(save_dir, ignore_errors=True)
    return {**final, "epochs": config.epochs, "resumed": resuming, "output_dir": config.output_dir}


def _topk_hits(probabilities: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    k = min(5, probabilities.shape[-1])
    top = np.argsort(-probabilities, axis=-1)[:, :k]
    return int(np.sum(top[:, 0] == labels)), int(np.sum(np.any(top == labels[:, None], axis=1)))


def evaluate_model(
    path: str,
    dataset: str,
    split: str | None = None,
    *,
    data_dir: str | None = None,
    batch_size: int = 256,
    max_examples: int | None = None,
    num_threads: int = 1,
    kernel: str = "indirect_bgemm",
    download: bool = True,
) -> dict[str, Any]:
    """Top-1 and top-5 accuracy of a Keras `.h5` or an LCE `.tflite` model on a split.

    Both kinds see the same images, preprocessed as for evaluation during training
    (centre crop for ImageNet), at the model's input size. A `.tflite` runs in Larq
    Compute Engine's interpreter, so comparing the two shows whether deployment kept
    the accuracy.

    # Arguments
        path: `.h5`/`.keras`/SavedModel (Keras) or `.tflite` (LCE) model.
        dataset: Dataset name (see `el_larq.data.load_split`).
        split: Split; None: the dataset's test/validation split.
        data_dir: Dataset directory.
        batch_size: Batch size of the input pipeline.
        max_examples: Evaluate only the first that many examples.
        num_threads: LCE interpreter threads.
        kernel: LCE binary-conv kernel (`indirect_bgemm` is the fast one on x86).
        download: Let TFDS download a missing dataset.

    # Returns
        A dict with `model`, `format` (`keras`/`lce`), `dataset`, `split`, `examples`,
        `top1`, `top5`.

    # Raises
        ConfigError: missing model file; DataError: data not found;
        `el_larq.lce.DeploymentError`: a file that does not load.

    # Example
        ```python
        keras = evaluate_model("runs/a/model.h5", "fashion_mnist")
        lce = evaluate_model("runs/a/model.tflite", "fashion_mnist")
        print(keras["top1"] - lce["top1"])
        ```
    """
    from el_larq import lce

    if not os.path.exists(path):
        raise ConfigError(f"model file {path} does not exist.")
    if path.endswith(".tflite"):
        with open(path, "rb") as f:
            interpreter = lce.make_interpreter(f.read(), num_threads=num_threads, kernel=kernel)
        input_shape = tuple(interpreter.input_shapes[0][1:])
        predict, kind = interpreter.predict, "lce"
    else:
        model = lce.load_model(path)
        input_shape = tuple(model.inputs[0].shape[1:])
        predict, kind = (lambda x: model.predict_on_batch(x)), "keras"
    split = split or data_lib.default_eval_split(dataset, data_dir)
    data = data_lib.load_split(
        dataset,
        split,
        training=False,
        batch_size=batch_size,
        data_dir=data_dir,
        image_size=input_shape[0],
        download=download,
    )
    if data.input_shape != input_shape:
        raise ConfigError(
            f"{path} expects inputs {input_shape}, but {dataset} gives {data.input_shape}."
        )
    images = data.dataset.unbatch().take(max_examples) if max_examples else data.dataset
    if max_examples:
        images = images.batch(batch_size)
    seen = top1 = top5 = 0
    for x, y in images.as_numpy_iterator():
        hits1, hits5 = _topk_hits(np.asarray(predict(x)), y)
        seen, top1, top5 = seen + len(y), top1 + hits1, top5 + hits5
    return {
        "model": path,
        "format": kind,
        "dataset": dataset,
        "split": split,
        "examples": seen,
        "top1": top1 / max(seen, 1),
        "top5": top5 / max(seen, 1),
    }
