"""Named recipes: one per paper configuration, stored as JSON in the repository's `zoo/`.

A recipe names a zoo builder with its ablation switches, the paper's training
recipe (Adam 1e-3, no weight decay, 100 epochs, batch 256, LR x0.1 at epochs 50
and 80, 224 px) and the paper rows it reproduces with their ImageNet top-1.
`train/train.py --recipe NAME` reads them; flags override the training values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import tensorflow as tf

from el_larq.zoo import get_model

__all__ = ["RECIPES_DIR", "build_recipe", "list_recipes", "load_recipe"]

# EL_LARQ_RECIPES points elsewhere, e.g. for a non-editable install or private recipes.
RECIPES_DIR = Path(os.environ.get("EL_LARQ_RECIPES", Path(__file__).resolve().parents[1] / "zoo"))
_KEYS = {"name", "description", "model", "model_kwargs", "paper", "training"}


def list_recipes() -> list[str]:
    """Names of all recipes in `RECIPES_DIR`, sorted.

    # Returns
        A list like `["el1", ..., "el_resnet26", ...]`.
    """
    if not RECIPES_DIR.is_dir():
        return []
    return sorted(path.stem for path in RECIPES_DIR.glob("*.json"))


def load_recipe(name: str) -> dict[str, Any]:
    """Read and validate the recipe `name`.

    # Arguments
        name: A recipe name (see `list_recipes()`).

    # Returns
        A dict with keys `name`, `description`, `model` (a zoo name), `model_kwargs`,
        `paper` (a list of `{table, row, imagenet_top1}`) and `training`.

    # Raises
        ValueError: unknown name (the message lists the valid ones) or a malformed file.

    # Example
        ```python
        recipe = load_recipe("el_resnet26")
        recipe["training"]["epochs"]  # 100
        ```
    """
    path = RECIPES_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(
            f"Unknown recipe {name!r}. Valid recipes: {', '.join(list_recipes()) or '(none)'}"
            f" (in {RECIPES_DIR})."
        )
    try:
        recipe = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"Recipe file {path} is not valid JSON: {error}") from error
    missing = _KEYS - set(recipe)
    if missing:
        raise ValueError(f"Recipe file {path} lacks the keys {sorted(missing)}.")
    return recipe


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
    return get_model(recipe["model"], **{**recipe["model_kwargs"], **overrides})
