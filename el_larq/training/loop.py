"""The training loop: compile, fit with crash-safe records and backups, save the run.

`train(config)` is documented in `el_larq.training`; the callbacks here make a run
resumable from any point (see `_EpochRecords`).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from typing import Any

import h5py
import tensorflow as tf

from el_larq import data as data_lib
from el_larq import distribute, plots, run_dir, summary
from el_larq.distillation import DistillationError, DistillationModel, ends_with_softmax
from el_larq.io import atomic_path, write_atomic
from el_larq.training.config import (
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    learning_rate_schedule,
)

FINAL_MODEL = "model.h5"
# HDF5 attribute of checkpoints/last.h5 and best.h5: the (1-based) epoch they hold.
CHECKPOINT_EPOCH = "el_larq_epoch"

# Test hook, for crash-safety tests only: with EL_LARQ_TEST_KILL_AT=<point> the process
# kills itself with SIGKILL when it reaches that named point (`_kill_point` calls), so a
# test can cut a run at an exact moment, e.g. `epoch_end:2` (records written, backup not
# yet), `backup:2`, `step:1.3`, `final_save` (model.h5's temporary written, not renamed).
KILL_HOOK_ENV = "EL_LARQ_TEST_KILL_AT"


def _kill_point(name: str) -> None:
    if os.environ.get(KILL_HOOK_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


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
            from_logits=not ends_with_softmax(model)
        ),
        metrics=[
            tf.keras.metrics.SparseCategoricalAccuracy(name="top1"),
            tf.keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ],
        jit_compile=jit_compile,
    )


def save_model_atomic(model: tf.keras.Model, path: str) -> None:
    """Save `model` as HDF5 at `path` so that `path` is either absent or complete.

    Writes a temporary file in the same directory, flushes it to disk and renames it
    (`el_larq.io.atomic_path`).

    # Example
        ```python
        save_model_atomic(model, "runs/a/model.h5")
        ```
    """
    with atomic_path(path, suffix=".tmp.h5") as tmp:
        with warnings.catch_warnings():  # HDF5 is "legacy" to Keras, but what LCE tools read
            warnings.simplefilter("ignore", UserWarning)
            model.save(tmp, include_optimizer=False, save_format="h5")
        _kill_point("final_save")


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


class _EpochRecords(tf.keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore that never lets a backup get ahead of the per-epoch records.

    At an epoch end the records come first — `checkpoints/last.h5` and the
    `metrics.json`/`.csv` row — then the backup. Killed in between, the rerun repeats
    that epoch and replaces its row, so every epoch ends with exactly one row. With
    `backup_steps`, the backup that would fall on an epoch's last step (from which Keras
    resumes at the next epoch, skipping validation and the row) moves to the epoch end.
    On resume, rows of epochs the backup does not cover are dropped.

    `best.h5` is a copy of `last.h5` made after the backup, so it never holds an epoch
    that is repeated; both carry their epoch (HDF5 attribute `el_larq_epoch`), and a
    copy that a kill prevented is made on resume.
    """

    def __init__(self, output_dir: str, backup_steps: int, chief: bool, images_per_step: int):
        super().__init__(
            os.path.join(output_dir, run_dir.BACKUP),
            save_freq=backup_steps if backup_steps > 0 else "epoch",
            delete_checkpoint=False,
        )
        self.output_dir = output_dir
        self.chief = chief
        self.images_per_step = images_per_step
        self.json_path = os.path.join(output_dir, "metrics.json")
        self.csv_path = os.path.join(output_dir, "metrics.csv")
        self.rows: dict[int, dict[str, float]] = {}
        self.best = -math.inf
        self._start = time.time()

    def _implements_train_batch_hooks(self):
        return self.save_freq != "epoch" or KILL_HOOK_ENV in os.environ

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)  # restores the backup, if there is one
        done, _ = self._training_state.maybe_load_initial_counters_from_ckpt(
            self.params["steps"], 0, "train"
        )
        if self.chief:
            self.rows = read_metrics(self.output_dir)
            stale = [epoch for epoch in self.rows if epoch > done]
            for epoch in stale:
                del self.rows[epoch]
            if stale:
                self._write_rows()
            self._repair_best()

    def _repair_best(self) -> None:
        # The best epoch so far (the first of equals, as `score > best` keeps it) must be
        # what best.h5 holds; a kill between the backup and the copy leaves it in last.h5.
        scored = [(row.get("val_top1", -math.inf), -epoch) for epoch, row in self.rows.items()]
        if not scored:
            return
        self.best, epoch = max(scored)
        directory = os.path.join(self.output_dir, "checkpoints")
        best, last = os.path.join(directory, "best.h5"), os.path.join(directory, "last.h5")
        if _h5_epoch(best) != -epoch and _h5_epoch(last) == -epoch:
            _copy_atomic(last, best)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if self.model.stop_training:  # NaN: no backup of diverged weights
            return
        if self.save_freq != "epoch" and batch + 1 < self.params["steps"]:
            super().on_train_batch_end(batch, logs)
        _kill_point(f"step:{self._current_epoch + 1}.{batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:
            return
        logs = logs or {}
        self._save_last(epoch + 1)
        if self.chief:
            seconds = time.time() - self._start
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
            row["seconds"] = round(seconds, 3)
            steps = self.params.get("steps") or 0
            row["images_per_second"] = round(steps * self.images_per_step / max(seconds, 1e-9), 2)
            self.rows[epoch + 1] = row
            self._write_rows()
        _kill_point(f"epoch_end:{epoch + 1}")
        self._backup(epoch=epoch)
        self._batches_count = 0  # mid-epoch backups count from here
        _kill_point(f"backup:{epoch + 1}")
        score = logs.get("val_top1", -math.inf)
        if self.chief and score > self.best:
            self.best = score
            directory = os.path.join(self.output_dir, "checkpoints")
            _copy_atomic(os.path.join(directory, "last.h5"), os.path.join(directory, "best.h5"))

    def _save_last(self, epoch: int) -> None:
        # Every worker saves (reading synced variables is a collective op) once per epoch;
        # only the chief keeps its copy.
        if not self.chief:
            scratch = tempfile.mkdtemp(prefix="el_larq_worker_")
            self.model.save_weights(os.path.join(scratch, "last.h5"))
            shutil.rmtree(scratch, ignore_errors=True)
            return
        directory = os.path.join(self.output_dir, "checkpoints")
        os.makedirs(directory, exist_ok=True)
        with atomic_path(os.path.join(directory, "last.h5"), suffix=".tmp.h5") as tmp:
            self.model.save_weights(tmp)
            with h5py.File(tmp, "a") as f:
                f.attrs[CHECKPOINT_EPOCH] = epoch

    def _write_rows(self) -> None:
        rows = [self.rows[epoch] for epoch in sorted(self.rows)]
        _write_text(self.json_path, json.dumps(rows, indent=1))
        fields = sorted({key for row in rows for key in row} - {"epoch"})
        text = io.StringIO()
        writer = csv.DictWriter(text, ["epoch", *fields], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _write_text(self.csv_path, text.getvalue().rstrip("\n"))
        if importlib.util.find_spec("matplotlib") is not None:  # the optional extra `plot`
            plots.plot_training_curves(rows, os.path.join(self.output_dir, "curves.png"))


def _h5_epoch(path: str) -> int | None:
    """The epoch a checkpoint holds (its `el_larq_epoch` attribute); None if unknown."""
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs[CHECKPOINT_EPOCH])
    except (OSError, KeyError, ValueError):
        return None


def _copy_atomic(source: str, destination: str) -> None:
    with atomic_path(destination, suffix=".tmp.h5") as tmp:
        shutil.copyfile(source, tmp)


def read_metrics(output_dir: str) -> dict[int, dict[str, float]]:
    """The per-epoch rows of the run in `output_dir`, keyed by (1-based) epoch.

    # Arguments
        output_dir: A run directory.

    # Returns
        `{epoch: row}`; empty when the run has no `metrics.json` yet.
    """
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {row["epoch"]: row for row in json.load(f)}


def _last_metrics(output_dir: str) -> dict[str, float]:
    rows = read_metrics(output_dir)
    return dict(rows[max(rows)]) if rows else {}


def _write_text(path: str, text: str) -> None:
    write_atomic(path, (text + "\n").encode())


def _gamma_outputs(model: tf.keras.Model, output_dir: str) -> list[dict[str, Any]]:
    from el_larq import zoo

    report = zoo.gamma_report(model)
    _write_text(os.path.join(output_dir, "gamma_report.json"), json.dumps(report, indent=1))
    if report and importlib.util.find_spec("matplotlib") is None:
        # The plot is an optional extra: a finished training run must not fail over it.
        print(
            "gamma_report.png skipped: " + summary.MATPLOTLIB_MISSING.format(what="the gamma plot"),
            file=sys.stderr,
        )
    elif report:
        zoo.plot_gamma_report(report, os.path.join(output_dir, "gamma_report.png"))
    return report


def _callbacks(config, chief, schedule, nan_stop, images_per_step):
    out = config.output_dir
    # Order matters: NaN is caught first, the scheduler puts `lr` into the logs before
    # the records take them, and the records and backup are one callback (see there).
    return [
        nan_stop,
        tf.keras.callbacks.LearningRateScheduler(schedule),
        tf.keras.callbacks.TensorBoard(os.path.join(out, "logs"), profile_batch=0),
        _EpochRecords(out, config.backup_steps, chief, images_per_step),
    ]


def _load_initial_weights(model: tf.keras.Model, path: str) -> None:
    """Start from `path`'s weights (a previous stage's model.h5 or a weights file)."""
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ConfigError(
            f"--init_from {path}: its weights do not fit {model.name}: {message}"
        ) from None


def _wrap(model: tf.keras.Model, config: TrainConfig) -> DistillationModel:
    """The student inside a `DistillationModel` with the config's teacher and losses."""
    teacher = None
    if config.teacher:
        from el_larq.deploy.loading import DeploymentError, load_model

        try:
            teacher = load_model(config.teacher)
        except DeploymentError as error:
            raise ConfigError(f"--teacher: {error}") from None
        teacher.trainable = False
    try:
        return DistillationModel(
            model,
            teacher=teacher,
            temperature=config.temperature,
            distribution_weight=config.distribution_weight,
            label_weight=config.label_weight,
            attention_weight=config.attention_weight,
            attention_pairs=config.attention_pairs,
            weight_decay=config.weight_decay,
        )
    except DistillationError as error:
        raise ConfigError(f"--teacher {config.teacher}: {error}.") from None


def _versions() -> dict[str, str | None]:
    import el_larq

    def installed(distribution: str) -> str | None:
        # Read from the metadata: training does not import LCE just to name its version.
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "larq": installed("larq"),
        "larq_compute_engine": installed("larq-compute-engine"),
        "el_larq": el_larq.__version__,
    }


def _build_model(config: TrainConfig, input_shape, num_classes: int) -> tf.keras.Model:
    """The zoo model, or a `keras:` application (elasticized with `config.elasticize`)."""
    from el_larq import zoo
    from el_larq.deploy.kinds import walk_layers

    model = zoo.get_model(
        config.model,
        input_shape=input_shape,
        num_classes=num_classes,
        width=config.width,
        elasticize=config.elasticize_options if config.elasticize else None,
        batch_norm_momentum=config.batch_norm_momentum,
        **config.model_kwargs,
    )
    # keras-applications' EfficientNet (v1) always builds these: a user should know that
    # the already normalised images are scaled again (the conv and BatchNorm after adapt).
    scaling = tf.keras.layers.Rescaling, tf.keras.layers.Normalization
    rescaled = [layer.name for layer in walk_layers(model) if isinstance(layer, scaling)]
    if rescaled:
        print(
            f"warning: {config.model} rescales its input itself ({', '.join(rescaled)}); the "
            "input pipeline feeds it images normalised already (pixels/255 minus the mean)",
            file=sys.stderr,
        )
    return model


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
        ConfigError, DataError, StrategyError: bad configuration or data, found before
            the output directory is touched (nothing is trained, no `model.h5`).
        RunDirError: another training holds `output_dir`, or it holds another run
            (finished, failed or of a different configuration) and `overwrite` is off.
        TrainingDiverged: the loss became NaN (no `model.h5`; a directory the run made
            is removed, an existing one is marked `FAILED`).

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
    out = config.output_dir
    if chief:  # read-only: a finished run is refused before the data is loaded
        run_dir.preflight(out, config.overwrite)
    tf.keras.utils.set_random_seed(config.seed)

    # Everything that can be wrong with the data and the model is found before the
    # output directory is touched.
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
    if eval_split.num_classes != train_split.num_classes:
        raise ConfigError(
            f"the {eval_name!r} split has {eval_split.num_classes} classes, the "
            f"{config.train_split!r} split {train_split.num_classes}."
        )
    steps = config.steps_per_epoch or train_split.num_examples // config.batch_size
    if steps < 1:
        raise ConfigError(
            f"--batch_size {config.batch_size} is larger than the {train_split.num_examples} "
            "training examples."
        )

    with strategy.scope():
        try:
            model = _build_model(config, train_split.input_shape, train_split.num_classes)
        except (TypeError, ValueError) as error:  # bad builder arguments
            raise ConfigError(f"cannot build {config.model}: {error}") from error
        if config.init_from:
            _load_initial_weights(model, config.init_from)
        fit_model = _wrap(model, config) if config.wrapped else model
        compile_model(fit_model, config.learning_rate, config.jit_compile)

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
    if chief:  # locks the directory; refuses another run's directory before rewriting it
        run = run_dir.RunDir(out, verbose=bool(config.verbose))
        resuming = run.claim(record, config.overwrite)
    else:
        backup = os.path.join(out, run_dir.BACKUP)
        resuming = os.path.isdir(backup) and bool(os.listdir(backup))
    if resuming and config.verbose:
        print(f"resuming from the backup in {os.path.join(out, run_dir.BACKUP)}")

    try:
        if chief:
            _write_text(os.path.join(out, "config.json"), json.dumps(record, indent=1))
            if config.command:
                _write_text(os.path.join(out, "command.txt"), config.command)
        nan_stop = _StopOnNaN()
        history = fit_model.fit(
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
            if chief:  # the backup may hold diverged weights: a rerun must not resume them
                run_dir.remove_backup(out)
            raise TrainingDiverged(
                f"training stopped: the loss became {loss} at epoch {epoch}, step {step}; no "
                f"{FINAL_MODEL} was written"
            )
        final = {key: float(values[-1]) for key, values in history.history.items() if values}
        if not final and chief:  # resumed after the last epoch: nothing left to train
            final = _last_metrics(out)
        # Every worker saves (reading synced variables is a collective op); only the
        # chief's copy is kept.
        save_dir = out if chief else tempfile.mkdtemp(prefix="el_larq_worker_")
        save_model_atomic(model, os.path.join(save_dir, FINAL_MODEL))
        if chief:
            _gamma_outputs(model, out)
        else:
            shutil.rmtree(save_dir, ignore_errors=True)
    except BaseException as error:
        if not chief:
            raise
        fate = run.fail(f"{type(error).__name__}: {error}")
        run.release()
        if isinstance(error, TrainingDiverged):
            again = " and --overwrite" if fate.endswith(f"({run_dir.FAILED})") else ""
            raise TrainingDiverged(
                f"{error}; {fate}. Run again with a lower --learning_rate (now "
                f"{config.learning_rate}){again}."
            ) from None
        raise
    if chief:  # model.h5 is complete: the backup has served (removed whole or not at all)
        _kill_point("final_cleanup")
        run_dir.remove_backup(out)
        run.release()
    return {**final, "epochs": config.epochs, "resumed": resuming, "output_dir": out}
