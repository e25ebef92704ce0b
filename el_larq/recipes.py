"""Named recipes: one per paper configuration, JSON files shipped in `el_larq/recipe_files/`.

A recipe names a zoo builder with its ablation switches, the paper's training
recipe (Adam 1e-3, no weight decay, 100 epochs, batch 256, LR x0.1 at epochs 50
and 80, 224 px) and the paper rows it reproduces with their ImageNet top-1.
`train/train.py --recipe NAME` reads them; flags override the training values.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import tensorflow as tf

from el_larq.elasticize import check_options
from el_larq.zoo import KERAS_PREFIX, get_model

__all__ = [
    "PAPER_TRAINING",
    "RECIPES_DIR",
    "build_recipe",
    "list_recipes",
    "load_recipe",
    "validate_recipe",
]

# The recipes are package data, read through importlib.resources (so they are found in
# any install, also a zipped one); EL_LARQ_RECIPES points at another directory instead,
# e.g. for private recipes.
RECIPES_DIR: Traversable = (
    Path(os.environ["EL_LARQ_RECIPES"])
    if os.environ.get("EL_LARQ_RECIPES")
    else importlib.resources.files("el_larq") / "recipe_files"
)

# The recipe schema: key -> (expected type, what to call that type in an error, required).
# `int` excludes bool (JSON true is not an epoch count); numbers accept ints and floats.
_STR = (str, "a string")
_NUMBER = ((int, float), "a number")
_INT = (int, "an integer")
_TOP_LEVEL = {
    "name": (_STR, True),
    "description": (_STR, True),
    "model": (_STR, True),
    "model_kwargs": ((dict, "a mapping"), True),
    "paper": ((list, "a list"), True),
    "training": ((dict, "a mapping"), False),
    "stages": ((list, "a list"), False),
    # A keras: model binarized by el_larq.elasticize with these options ({}: defaults).
    "elasticize": ((dict, "a mapping"), False),
}
# One stage of a multi-stage recipe (`el_larq.training.stages`): its own model switches and
# training values over the recipe's, where its teacher and first weights come from.
_STAGE = {
    "name": (_STR, True),
    "description": (_STR, False),
    "model": (_STR, False),
    "model_kwargs": ((dict, "a mapping"), False),
    "training": ((dict, "a mapping"), False),
    "teacher": (_STR, False),
    "init_from": (_STR, False),
    "distillation": ((dict, "a mapping"), False),
}
# `teacher` of a stage: an earlier stage's name, or this: the command's --teacher file.
TEACHER_FLAG = "--teacher"
_DISTILLATION = {
    "temperature": (_NUMBER, False),
    "distribution_weight": (_NUMBER, False),
    "label_weight": (_NUMBER, False),
    "attention_weight": (_NUMBER, False),
    "attention_pairs": (((str, dict), '"blocks" or a mapping'), False),
}
_PAPER_ROW = {
    "table": (_STR, True),
    "row": (_STR, True),
    "imagenet_top1": (((int, float, type(None)), "a number or null"), True),
}
_TRAINING = {
    "optimizer": (_STR, False),
    "learning_rate": (_NUMBER, False),
    "weight_decay": (_NUMBER, False),
    "epochs": (_INT, False),
    "batch_size": (_INT, False),
    "lr_decay_epochs_fraction": ((list, "a list of numbers"), False),
    "lr_decay_factor": (_NUMBER, False),
    "lr_schedule": (_STR, False),
    "input_size": (_INT, False),
    # keras-applications' BatchNorms use 0.999: too slow for short runs (TrainConfig).
    "batch_norm_momentum": (_NUMBER, False),
}
# The paper's training recipe ("Training Details"), shared by every recipe; a recipe's own
# `training` mapping overrides single values.
PAPER_TRAINING: dict[str, Any] = {
    "optimizer": "adam",
    "learning_rate": 0.001,
    "weight_decay": 0.0,
    "epochs": 100,
    "batch_size": 256,
    "lr_decay_epochs_fraction": [0.5, 0.8],
    "lr_decay_factor": 0.1,
    "input_size": 224,
}
# Training values that must be above zero.
_POSITIVE = {"learning_rate", "epochs", "batch_size", "lr_decay_factor", "input_size"}


def list_recipes() -> list[str]:
    """Names of all recipes in `RECIPES_DIR`, sorted.

    # Returns
        A list like `["el1", ..., "el_resnet26", ...]`.
    """
    if not RECIPES_DIR.is_dir():
        return []
    return sorted(
        entry.name.removesuffix(".json")
        for entry in RECIPES_DIR.iterdir()
        if entry.name.endswith(".json") and entry.is_file()
    )


def load_recipe(name: str) -> dict[str, Any]:
    """Read and validate the recipe `name`.

    # Arguments
        name: A recipe name (see `list_recipes()`).

    # Returns
        A dict with keys `name`, `description`, `model` (a zoo name, or `keras:<Name>`
        for a `tf.keras.applications` CNN), `model_kwargs`, `paper` (a list of
        `{table, row, imagenet_top1}`) and `training` (`PAPER_TRAINING` with the file's
        own `training` values over it); optionally `stages` (`el_larq.training.stages`)
        and `elasticize` (options of `el_larq.elasticize.elasticize`, which a `keras:`
        model is binarized with).

    # Raises
        ValueError: unknown name (the message lists the valid ones), or a file that is not
            valid JSON or breaks the schema (`validate_recipe`; the message names the key).

    # Example
        ```python
        recipe = load_recipe("el_resnet26")
        recipe["training"]["epochs"]  # 100
        ```
    """
    path = RECIPES_DIR / f"{name}.json"
    # Only names of files in RECIPES_DIR: "../x" must not read JSON from elsewhere.
    if name not in list_recipes() or not path.is_file():
        raise ValueError(
            f"Unknown recipe {name!r}. Valid recipes: {', '.join(list_recipes()) or '(none)'}"
            f" (in {RECIPES_DIR})."
        )
    try:
        recipe = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"Recipe file {path} is not valid JSON: {error}") from error
    except OSError as error:
        raise ValueError(f"cannot read recipe file {path}: {error.strerror or error}") from error
    validate_recipe(recipe, str(path))
    return {**recipe, "training": {**PAPER_TRAINING, **recipe.get("training", {})}}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", dict: "a mapping", list: "a list"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _check_mapping(mapping: dict, schema: dict, where: str, prefix: str) -> None:
    unknown = sorted(set(mapping) - set(schema))
    if unknown:
        raise ValueError(
            f"Recipe file {where}: unknown key {prefix}{unknown[0]!r}; valid keys"
            f"{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(schema))}."
        )
    for key, ((types, expected), required) in schema.items():
        if key not in mapping:
            if required:
                raise ValueError(f"Recipe file {where}: the key {prefix}{key} is missing.")
            continue
        value = mapping[key]
        # bool is an int subclass: true is never a count or a rate.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _flat(types)):
            raise ValueError(
                f"Recipe file {where}: {prefix}{key} must be {expected}, got "
                f"{_type_name(value)} ({json.dumps(value)[:40]})."
            )


def _flat(types: Any) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def validate_recipe(recipe: Any, where: str = "recipe") -> None:
    """Check a recipe against the schema: every key known, of the right type and range.

    # Arguments
        recipe: The parsed JSON of a recipe file.
        where: The file, for the message.

    # Raises
        ValueError: one line naming the key, the expected type and what was found.

    # Example
        ```python
        validate_recipe({"name": "x", "model": "el_resnet26", ...}, "x.json")
        ```
    """
    if not isinstance(recipe, dict):
        raise ValueError(f"Recipe file {where} must hold a JSON mapping, got {_type_name(recipe)}.")
    _check_mapping(recipe, _TOP_LEVEL, where, "")
    for index, row in enumerate(recipe["paper"]):
        if not isinstance(row, dict):
            raise ValueError(
                f"Recipe file {where}: paper[{index}] must be a mapping, got {_type_name(row)}."
            )
        _check_mapping(row, _PAPER_ROW, where, f"paper[{index}].")
    _check_model_kwargs(recipe["model_kwargs"], where, "model_kwargs")
    if "elasticize" in recipe:
        if not recipe["model"].startswith(KERAS_PREFIX):
            raise ValueError(
                f"Recipe file {where}: elasticize needs a keras: model, got {recipe['model']!r}."
            )
        try:
            check_options(recipe["elasticize"])
        except ValueError as error:
            raise ValueError(f"Recipe file {where}: {error}") from None
    _check_training(recipe.get("training", {}), where, "training")
    _check_stages(recipe.get("stages", []), where)


def _check_model_kwargs(model_kwargs: dict, where: str, prefix: str) -> None:
    for key, value in model_kwargs.items():
        # Builder switches are flags, names and numbers; the builder checks the names.
        if not isinstance(value, (bool, int, float, str)):
            raise ValueError(
                f"Recipe file {where}: {prefix}.{key} must be a boolean, number or "
                f"string, got {_type_name(value)}."
            )


def _check_stages(stages: list, where: str) -> None:
    names: list[str] = []
    for index, stage in enumerate(stages):
        prefix = f"stages[{index}]"
        if not isinstance(stage, dict):
            raise ValueError(
                f"Recipe file {where}: {prefix} must be a mapping, got {_type_name(stage)}."
            )
        _check_mapping(stage, _STAGE, where, f"{prefix}.")
        name = stage["name"]
        if not name.isidentifier() or name in names:
            raise ValueError(
                f"Recipe file {where}: {prefix}.name {name!r} must be a unique identifier."
            )
        _check_model_kwargs(stage.get("model_kwargs", {}), where, f"{prefix}.model_kwargs")
        _check_training(stage.get("training", {}), where, f"{prefix}.training")
        distillation = stage.get("distillation", {})
        _check_mapping(distillation, _DISTILLATION, where, f"{prefix}.distillation.")
        pairs = distillation.get("attention_pairs", {})
        if isinstance(pairs, str) and pairs != "blocks":
            raise ValueError(
                f"Recipe file {where}: {prefix}.distillation.attention_pairs must be "
                f'"blocks" or a mapping of layer names, got {pairs!r}.'
            )
        for key, allowed in (("teacher", [*names, TEACHER_FLAG]), ("init_from", names)):
            if key in stage and stage[key] not in allowed:
                raise ValueError(
                    f"Recipe file {where}: {prefix}.{key} {stage[key]!r} must name an earlier "
                    f"stage{' or be ' + repr(TEACHER_FLAG) if key == 'teacher' else ''} "
                    f"(earlier: {', '.join(names) or 'none'})."
                )
        names.append(name)


def _check_training(training: dict, where: str, prefix: str) -> None:
    _check_mapping(training, _TRAINING, where, f"{prefix}.")
    for key in _POSITIVE & set(training):
        if not training[key] > 0:
            raise ValueError(
                f"Recipe file {where}: {prefix}.{key} must be positive, got {training[key]}."
            )
    if training.get("weight_decay", 0) < 0:
        raise ValueError(f"Recipe file {where}: {prefix}.weight_decay must be >= 0.")
    if not 0 <= training.get("batch_norm_momentum", 0) < 1:
        raise ValueError(f"Recipe file {where}: {prefix}.batch_norm_momentum must be in [0, 1).")
    fractions = training.get("lr_decay_epochs_fraction", [])
    numbers = all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in fractions)
    if not (numbers and all(0 < f < 1 for f in fractions)):
        raise ValueError(
            f"Recipe file {where}: {prefix}.lr_decay_epochs_fraction must be a list of "
            f"numbers in (0, 1), got {json.dumps(fractions)[:60]}."
        )


def build_recipe(name: str, **overrides: Any) -> tf.keras.Model:
    """Build the model of recipe `name`; `overrides` replace builder arguments.

    # Arguments
        name: A recipe name.
        **overrides: e.g. `input_shape=(28, 28, 1), num_classes=10, width=0.25`.

    # Returns
        A `tf.keras.Model`.

    # Example
        ```python
        model = build_recipe("el4", input_shape=(28, 28, 1), num_classes=10, width=0.25)
        ```
    """
    recipe = load_recipe(name)
    momentum = recipe.get("training", {}).get("batch_norm_momentum")
    return get_model(
        recipe["model"],
        elasticize=recipe.get("elasticize"),
        batch_norm_momentum=momentum,
        **{**recipe["model_kwargs"], **overrides},
    )
