"""Multi-stage recipes: ReActNet's two steps, Real-to-Binary's stages, one command for all.

A recipe with `stages` (see `el_larq.recipes`) trains them in order, each a normal
run (`train`) in its own folder `<output_dir>/<n>_<stage name>`:

    "stages": [
      {"name": "step1", "model_kwargs": {"binary_weights": false},
       "training": {"weight_decay": 1e-5}, "teacher": "--teacher"},
      {"name": "step2", "init_from": "step1", "training": {"weight_decay": 0},
       "teacher": "--teacher"}
    ]

A stage's `model_kwargs` and `training` go over the recipe's; `init_from` starts it
from an earlier stage's `model.h5`; `teacher` distills from an earlier stage's model
or from the command's `--teacher` file, with the stage's `distillation` settings
(`attention_pairs: "blocks"` pairs every block output both models have).

Each stage is crash-safe as a single run, and so is the recipe: a finished stage (its
`model.h5` complete, no backup left) is never trained again, a killed one resumes
from its backup, and a finished recipe run again trains nothing.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import tensorflow as tf

from el_larq import distribute, recipes, run_dir
from el_larq.io import json_dumps, write_atomic
from el_larq.training.config import ConfigError, TrainConfig, resolve_config
from el_larq.training.loop import FINAL_MODEL, read_metrics, train

__all__ = ["STAGES_FILE", "recipe_stages", "stage_configs", "train_stages"]

# The summary of a multi-stage run, in its output directory.
STAGES_FILE = "stages.json"
# What a stage's `distillation` mapping may set (TrainConfig fields).
_DISTILLATION_FIELDS = (
    "temperature",
    "distribution_weight",
    "label_weight",
    "attention_weight",
    "attention_pairs",
)


def _load(recipe: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(recipe, dict):
        return recipe
    try:
        return recipes.load_recipe(recipe)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def recipe_stages(recipe: str | dict[str, Any]) -> list[dict[str, Any]]:
    """The stages of `recipe` (a name or a loaded recipe); empty for a one-stage recipe.

    # Raises
        ConfigError: unknown recipe or a file breaking the schema.
    """
    return list(_load(recipe).get("stages", []))


def _stage_recipe(recipe: dict[str, Any], stage: dict[str, Any]) -> dict[str, Any]:
    """The recipe as one stage sees it: the stage's values over the recipe's."""
    return {
        **recipe,
        "name": f"{recipe['name']}/{stage['name']}",
        "model": stage.get("model", recipe["model"]),
        "model_kwargs": {**recipe["model_kwargs"], **stage.get("model_kwargs", {})},
        "training": {**recipe["training"], **stage.get("training", {})},
    }


def stage_configs(
    recipe: str | dict[str, Any], overrides: dict[str, Any], teacher: str | None = None
) -> list[TrainConfig]:
    """The `TrainConfig` of every stage of `recipe`, all checked before anything trains.

    # Arguments
        recipe: A recipe name or a loaded recipe with `stages`.
        overrides: `TrainConfig` fields given explicitly, which win over every stage's
            values; `output_dir` is the folder of the whole recipe.
        teacher: The command's `--teacher` file, for stages with `"teacher": "--teacher"`.

    # Returns
        One config per stage. A teacher or `init_from` that is an earlier stage points at
        that stage's `model.h5` (there once the stage has run).

    # Raises
        ConfigError: unknown recipe, a recipe without stages, a stage that needs
            `--teacher` without one, or a bad value in any stage.

    # Example
        ```python
        configs = stage_configs("reactnet_a", {"output_dir": "runs/ra"}, teacher="t.h5")
        [c.output_dir for c in configs]  # ["runs/ra/1_step1", "runs/ra/2_step2"]
        ```
    """
    recipe = _load(recipe)
    if not recipe.get("stages"):
        raise ConfigError(f"recipe {recipe['name']!r} has no stages: train it without them.")
    models: dict[str, str] = {}
    configs = []
    for index, stage in enumerate(recipe["stages"], 1):
        out = os.path.join(overrides["output_dir"], f"{index}_{stage['name']}")
        values: dict[str, Any] = {"output_dir": out}
        source = stage.get("teacher")
        if source == recipes.TEACHER_FLAG and not teacher:
            raise ConfigError(
                f"stage {stage['name']!r} of recipe {recipe['name']!r} distills from a "
                "teacher: pass --teacher PATH (a trained classifier, .h5)."
            )
        if source:
            values["teacher"] = teacher if source == recipes.TEACHER_FLAG else models[source]
        if stage.get("init_from"):
            values["init_from"] = models[stage["init_from"]]
        distillation = stage.get("distillation", {})
        values.update({k: distillation[k] for k in _DISTILLATION_FIELDS if k in distillation})
        stage_overrides = {
            k: v for k, v in overrides.items() if k != "output_dir" and v is not None
        }
        config = resolve_config({**values, **stage_overrides}, recipe=_stage_recipe(recipe, stage))
        configs.append(config)
        models[stage["name"]] = os.path.join(out, FINAL_MODEL)
    return configs


def train_stages(
    configs: list[TrainConfig],
    strategy: tf.distribute.Strategy | None = None,
    output_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Train the stages in order, skipping finished ones; write `stages.json`.

    # Arguments
        configs: From `stage_configs`.
        strategy: As for `train`.
        output_dir: The recipe's folder, for `stages.json` (default: the parent of the
            first stage's folder).

    # Returns
        Per stage: `stage`, `output_dir`, `trained` (False when it had finished before)
        and its last metrics row.

    # Raises
        What `train` raises, for the stage that failed; later stages do not start.
    """
    strategy = strategy or tf.distribute.get_strategy()
    output_dir = output_dir or os.path.dirname(configs[0].output_dir)
    results = []
    for index, config in enumerate(configs, 1):
        name = os.path.basename(config.output_dir)
        done = run_dir.is_finished(config.output_dir) and not config.overwrite
        if config.verbose:
            state = "finished before, skipped" if done else f"training {config.model}"
            print(f"stage {index}/{len(configs)} {name}: {state}", flush=True)
        if not done:
            train(config, strategy)
        rows = read_metrics(config.output_dir)
        results.append(
            {
                "stage": name,
                "output_dir": config.output_dir,
                "trained": not done,
                "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "command"},
                "metrics": rows[max(rows)] if rows else {},
            }
        )
        if distribute.is_chief(strategy):
            write_atomic(os.path.join(output_dir, STAGES_FILE), json_dumps(results).encode())
    return results
