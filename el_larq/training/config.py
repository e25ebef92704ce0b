"""A training run's configuration: `TrainConfig`, recipe values, checks, learning rate.

Everything here is decided before any data is read or any model is built, so a bad
configuration is refused before the output directory is touched.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from el_larq import data as data_lib
from el_larq import distribute, run_dir, zoo
from el_larq.distillation import BLOCK_PAIRS
from el_larq.elasticize import ElasticizeError, check_options

LR_SCHEDULES = ("step", "cosine", "linear", "constant")


class ConfigError(ValueError):
    """A training configuration that cannot work; the message says how to fix it."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


# Errors that are the user's to fix: the CLIs print them as one line, without traceback.
USER_ERRORS = (
    ConfigError,
    data_lib.DataError,
    distribute.StrategyError,
    TrainingDiverged,
    run_dir.RunDirError,
)


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (what `config.json` records).

    # Attributes
        output_dir: Directory for all outputs (created).
        model: Zoo model name (`el_larq.zoo.MODELS`), or `keras:<Name>` for a
            `tf.keras.applications` builder (built with `weights=None`; `width` is its
            `alpha`).
        elasticize: Binarize a `keras:` model with `el_larq.elasticize.elasticize`
            before training.
        elasticize_options: Its options (`el_larq.elasticize.OPTIONS`: `elastic_link`,
            `keep_float`, `activation_scaling`, `gamma_trainable`, `gamma_on`).
        model_kwargs: Extra keyword arguments of the zoo builder.
        recipe: Name of the recipe (`el_larq.recipes`) the values came from, if any.
        dataset: `fashion_mnist`, `imagenet2012` or any TFDS image dataset.
        data_dir: IDX directory (Fashion-MNIST) or TFDS data directory.
        train_split, eval_split: Split names; `eval_split=None` picks the dataset's
            test/validation split.
        image_size: Model input side; None: native for small images, 224 for large.
        download: Let TFDS download a missing dataset.
        epochs, batch_size (global), learning_rate: The paper's 100, 256, 1e-3.
        lr_schedule: `step` (decay by `lr_decay_factor` at `lr_decay_epochs`, fractions
            of `epochs`), `cosine`, `linear` (to 0 at the end: ReActNet) or `constant`.
        width: Channel multiplier of the model.
        seed: Seed for weights, shuffling and augmentation.
        strategy: Name of the strategy (`el_larq.distribute.STRATEGIES`), recorded.
        steps_per_epoch: Steps per epoch; None: one pass over the training split.
        validation_steps: Validation batches per epoch; None: the whole split.
        backup_steps: Back up every that many steps instead of at every epoch end
            (0: at epoch ends).
        jit_compile: Compile the training step with XLA.
        verbose: Keras verbosity (1: progress bar, 2: one line per epoch).
        overwrite: Replace the run in `output_dir` (finished, failed or of another
            configuration; only its files are removed). An interrupted run of the same
            configuration is resumed even so.
        command: The command line, for `command.txt`.
        teacher: A trained Keras classifier file to distill from (loaded with the
            deployment safety rules); None: train on the labels alone.
        temperature, distribution_weight, label_weight: The distributional loss's
            temperature and weight, and the label cross-entropy's weight (with a teacher;
            without one the labels weigh 1). See `el_larq.distillation`.
        attention_weight, attention_pairs: Attention matching (Real-to-Binary): weight and
            `{student layer: teacher layer}` block outputs, or `"blocks"`: every block
            output (`*_out` layer) the two models share by name.
        weight_decay: L2 on conv and dense kernels, added to the loss (PyTorch Adam's
            coupled decay, as ReActNet and Real-to-Binary trained).
        init_from: A model or weights file of the same architecture whose weights start
            the run (a previous stage's `model.h5`); ignored when resuming.
        batch_norm_momentum: Set every BatchNormalization's momentum (None: the
            builder's). keras-applications use 0.999, which leaves the moving statistics
            untrained after a short run; 0.9 suits budgets of a few hundred steps.
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
    teacher: str | None = None
    temperature: float = 1.0
    distribution_weight: float = 1.0
    label_weight: float = 0.0
    attention_weight: float = 0.0
    attention_pairs: dict[str, str] | str = dataclasses.field(default_factory=dict)
    weight_decay: float = 0.0
    init_from: str | None = None
    elasticize: bool = False
    elasticize_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch_norm_momentum: float | None = None

    @property
    def wrapped(self) -> bool:
        """Whether training needs `el_larq.distillation.DistillationModel` around the model."""
        return bool(self.teacher or self.weight_decay)


def resolve_config(
    overrides: dict[str, Any],
    *,
    recipe: str | dict[str, Any] | None = None,
    model: str | None = None,
) -> TrainConfig:
    """Combine a recipe's values with explicitly given ones (which win).

    # Arguments
        overrides: `TrainConfig` fields given explicitly (e.g. on the command line).
        recipe: A recipe name (`el_larq.recipes`) or a loaded recipe (one stage of a
            multi-stage recipe: `el_larq.training.stages`); its model, model arguments and
            training values become the defaults.
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
    options = {**values.get("elasticize_options", {}), **overrides.get("elasticize_options", {})}
    values.update({key: value for key, value in overrides.items() if value is not None})
    values["elasticize_options"] = options
    config = TrainConfig(**values)
    _check_config(config)
    return config


def _recipe_values(recipe: str | dict[str, Any], dataset: str) -> dict[str, Any]:
    from el_larq import recipes

    if isinstance(recipe, str):
        try:
            recipe = recipes.load_recipe(recipe)
        except ValueError as error:
            raise ConfigError(str(error)) from error
    name = recipe["name"]
    training = recipe.get("training", {})
    if training.get("optimizer", "adam") != "adam":
        raise ConfigError(f"recipe {name!r}: only Adam is supported.")
    values = {
        "recipe": name,
        "model": recipe["model"],
        "model_kwargs": dict(recipe.get("model_kwargs", {})),
    }
    if "elasticize" in recipe:
        values.update(elasticize=True, elasticize_options=dict(recipe["elasticize"]))
    keys = {"epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate"}
    keys.update(lr_decay_epochs="lr_decay_epochs_fraction", lr_decay_factor="lr_decay_factor")
    keys.update(lr_schedule="lr_schedule", weight_decay="weight_decay")
    keys.update(batch_norm_momentum="batch_norm_momentum")
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
    try:
        zoo.check_model_name(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_config(config: TrainConfig) -> None:
    _check_model(config.model)
    if config.elasticize and not config.model.startswith(zoo.KERAS_PREFIX):
        raise ConfigError(
            "--elasticize binarizes a keras: model (e.g. --model keras:MobileNetV2); "
            f"zoo model {config.model!r} is built binary already."
        )
    if config.elasticize_options and not config.elasticize:
        raise ConfigError(
            f"elasticize options ({', '.join(config.elasticize_options)}) need --elasticize."
        )
    try:
        check_options(config.elasticize_options)
    except ElasticizeError as error:
        raise ConfigError(str(error)) from None
    if not config.output_dir:
        raise ConfigError("--output_dir must not be empty.")
    for name in ("learning_rate", "width", "lr_decay_factor", "temperature", "weight_decay"):
        if not math.isfinite(getattr(config, name)):
            raise ConfigError(f"--{name} must be a finite number, got {getattr(config, name)}.")
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
    if not config.lr_decay_factor > 0:
        raise ConfigError(f"--lr_decay_factor must be positive, got {config.lr_decay_factor}.")
    if not 0 <= config.seed < 2**32:  # NumPy's seed range
        raise ConfigError(f"--seed must be in [0, 2**32), got {config.seed}.")
    for name in ("steps_per_epoch", "validation_steps", "image_size"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}.")
    momentum = config.batch_norm_momentum
    if momentum is not None and not 0 <= momentum < 1:
        raise ConfigError(f"--batch_norm_momentum must be in [0, 1), got {momentum}.")
    if config.backup_steps < 0:
        raise ConfigError(
            f"--backup_steps must be 0 (at epoch ends) or more, got {config.backup_steps}."
        )
    if not isinstance(config.model_kwargs, dict):
        raise ConfigError(f"model_kwargs must be a mapping, got {config.model_kwargs!r}.")
    if config.model_kwargs.get("include_preprocessing"):  # the pipeline normalises already
        raise ConfigError(
            "include_preprocessing=True would normalise the images twice (the input pipeline "
            "does x / 255 - mean): train without it and add it to the trained model with "
            "el_larq.zoo.with_preprocessing."
        )
    _check_distillation(config)


def _check_distillation(config: TrainConfig) -> None:
    if not config.temperature > 0:
        raise ConfigError(f"--temperature must be positive, got {config.temperature}.")
    for name in ("distribution_weight", "label_weight", "attention_weight", "weight_decay"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"--{name} must be a finite number >= 0, got {value}.")
    if not config.teacher and (config.attention_weight or config.attention_pairs):
        raise ConfigError("attention matching needs a --teacher.")
    if config.attention_weight and not config.attention_pairs:
        raise ConfigError("--attention_weight > 0 needs attention_pairs (student -> teacher).")
    pairs = config.attention_pairs
    if pairs != BLOCK_PAIRS and not (
        isinstance(pairs, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items())
    ):
        raise ConfigError(
            f"attention_pairs must be {BLOCK_PAIRS!r} or map layer names to layer names, "
            f"got {pairs!r}."
        )


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
        if config.lr_schedule == "linear":  # per epoch, reaching 0 after the last one
            return base * (1 - epoch / epochs)
        return base * config.lr_decay_factor ** sum(epoch >= b for b in boundaries)

    return schedule
