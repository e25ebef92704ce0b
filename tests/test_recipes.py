"""el_larq.recipes: every shipped recipe passes the schema; malformed ones fail with one line."""

import copy
import json

import pytest

from el_larq import recipes

GOOD = recipes.load_recipe("el_resnet26")


_MISSING = object()


def _broken(key: str, value):
    """GOOD with `key` (dotted; `paper.0` indexes the list) set to `value` or removed."""
    recipe = copy.deepcopy(GOOD)
    *parents, last = key.split(".")
    node = recipe
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _MISSING:
        del node[last]
    elif isinstance(node, list):
        node.append(value)
    else:
        node[last] = value
    return recipe


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("training", [1, 2], "training must be a mapping, got a list ([1, 2])."),
        ("training.epochs", "100", 'training.epochs must be an integer, got a string ("100").'),
        ("training.epochs", True, "training.epochs must be an integer, got a boolean (true)."),
        ("training.batch_size", 25.6, "training.batch_size must be an integer, got a float"),
        ("training.learning_rate", "1e-3", "training.learning_rate must be a number, got a str"),
        ("training.learning_rate", 0, "training.learning_rate must be positive, got 0."),
        ("training.lr_decay_epochs_fraction", [50, 80], "training.lr_decay_epochs_fraction "
         "must be a list of numbers in (0, 1), got [50, 80]."),
        ("training.epoch", 10, "unknown key training.'epoch'; valid keys of training: "
         "batch_norm_momentum, batch_size, epochs,"),
        ("modle", "x", "unknown key 'modle'; valid keys: description, elasticize, "
         "model, model_kwargs,"),
        ("model", _MISSING, "the key model is missing."),
        ("model_kwargs", ["el_reduce"], "model_kwargs must be a mapping, got a list"),
        ("model_kwargs.el_reduce", {"on": True}, "model_kwargs.el_reduce must be a boolean, "
         "number or string, got a mapping."),
        ("paper", {"table": "2"}, "paper must be a list, got a mapping"),
        ("paper.new", "EL6", "paper[2] must be a mapping, got a string."),
        ("paper.0.imagenet_top1", "64", "paper[0].imagenet_top1 must be a number or null, got "
         "a string"),
        ("elasticize", {}, "elasticize needs a keras: model, got 'el_resnet26'."),
    ],
)  # fmt: skip
def test_malformed_recipe_names_the_key_and_the_expected_type(key, value, message):
    with pytest.raises(ValueError) as error:
        recipes.validate_recipe(_broken(key, value), "zoo/x.json")
    text = str(error.value)
    assert text.startswith("Recipe file zoo/x.json: ") and message in text and "\n" not in text


def test_recipe_file_that_is_not_a_mapping_or_not_json(tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "RECIPES_DIR", tmp_path)
    (tmp_path / "list.json").write_text(json.dumps([GOOD]))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"list.json must hold a JSON mapping, got a list\."):
        recipes.load_recipe("list")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        recipes.load_recipe("broken")


@pytest.mark.parametrize("name", recipes.list_recipes())
def test_every_zoo_recipe_passes_the_schema(name):
    recipes.validate_recipe(recipes.load_recipe(name), name)


def test_recipes_share_the_paper_training_and_override_single_values(tmp_path, monkeypatch):
    # The paper's recipes hold no training block: every one uses the paper's values; only the
    # multi-stage recipes (ReActNet, Real-to-Binary) carry their sources' own.
    for path in recipes.RECIPES_DIR.iterdir():
        if path.name.endswith(".json"):
            recipe = json.loads(path.read_text())
            assert ("training" in recipe) == ("stages" in recipe), path.name
    assert GOOD["training"] == recipes.PAPER_TRAINING
    mine = {key: value for key, value in GOOD.items() if key != "training"}
    mine["training"] = {"epochs": 3}
    (tmp_path / "short.json").write_text(json.dumps(mine))
    monkeypatch.setattr(recipes, "RECIPES_DIR", tmp_path)
    training = recipes.load_recipe("short")["training"]
    assert training == {**recipes.PAPER_TRAINING, "epochs": 3}
    assert recipes.PAPER_TRAINING["epochs"] == 100  # the shared values are not changed


def test_an_elasticize_recipe_checks_its_options():
    recipe = copy.deepcopy(recipes.load_recipe("binary_mobilenetv2"))
    assert recipe["model"] == "keras:MobileNetV2" and recipe["elasticize"] == {
        "elastic_link": False
    }
    recipe["elasticize"] = {"elastic_link": "no"}
    with pytest.raises(ValueError, match="^Recipe file x.json: elasticize option elastic_link "):
        recipes.validate_recipe(recipe, "x.json")


def test_a_recipe_may_set_batch_norm_momentum_in_0_1():
    recipe = copy.deepcopy(recipes.load_recipe("mobilenetv2"))
    recipe["training"]["batch_norm_momentum"] = 0.9
    recipes.validate_recipe(recipe, "x.json")
    recipe["training"]["batch_norm_momentum"] = 1.0
    with pytest.raises(ValueError, match=r"^Recipe file x.json: training.batch_norm_momentum "):
        recipes.validate_recipe(recipe, "x.json")
