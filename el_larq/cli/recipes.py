"""`el-larq recipes [NAME ...]`: the paper's recipes that ship with el_larq.

Without a name: one line per recipe (name, builder, paper rows with their ImageNet
top-1, description). With names: each recipe as JSON. `EL_LARQ_RECIPES` points at
another directory of recipes.
"""

from __future__ import annotations

import json
import sys

__all__ = ["run"]


def run(argv: list[str] | None = None, prog: str = "el-larq recipes") -> None:
    """List the recipes, or print the named ones as JSON; exits with the status.

    # Arguments
        argv: The command line, program name first (default `sys.argv`).
        prog: The name in messages.

    # Example
        ```python
        run(["el-larq recipes", "el_resnet26"])
        ```
    """
    from el_larq import recipes

    names = list(sys.argv if argv is None else argv)[1:]
    if any(name.startswith("-") for name in names):
        sys.exit(f"{prog}: error: no flags; usage: {prog} [NAME ...]")
    try:
        if names:
            for name in names:
                print(json.dumps(recipes.load_recipe(name), indent=2))
            sys.exit(0)
        for name in recipes.list_recipes():
            recipe = recipes.load_recipe(name)
            rows = ", ".join(
                f"Table {row['table']} {row['row']} ({row['imagenet_top1']})"
                for row in recipe["paper"]
            )
            print(f"{name:<26} {recipe['model']:<18} {rows} - {recipe['description']}")
    except ValueError as error:
        sys.exit(f"{prog}: error: {error}")
    sys.exit(0)
