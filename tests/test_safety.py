"""el_larq.safety: hostile or broken saved Keras models.

Every hostile case is a real file (Keras saves it, or bytes are cut or flipped) and the
check must refuse it with one line before anything acts on it; that code from a file
never runs is observed, not assumed.
"""

import json
import zipfile
from pathlib import Path

import h5py
import pytest
import tensorflow as tf

from el_larq import safety
from el_larq.deploy.loading import load_model
from el_larq.layers import el_conv
from el_larq.zoo import get_model


def _marker_lambda(marker: Path, name: str = "evil") -> tf.keras.layers.Lambda:
    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()  # proves that the stored code ran
        return x

    return tf.keras.layers.Lambda(side_effect, name=name)


def _nested_lambda_model(kind: str, marker: Path) -> tf.keras.Model:
    """A model whose Lambda is not a top-level layer."""
    if kind == "time_distributed":
        inputs = tf.keras.Input((2, 8, 8, 4))
        return tf.keras.Model(
            inputs, tf.keras.layers.TimeDistributed(_marker_lambda(marker), name="td")(inputs)
        )
    inputs = tf.keras.Input((8, 8, 4))
    if kind == "nested_sequential":
        inner = tf.keras.Sequential(
            [tf.keras.layers.Conv2D(4, 1), _marker_lambda(marker)], name="inner"
        )
    else:  # a Functional model inside a Functional model inside the file's model
        x = tf.keras.Input((8, 8, 4))
        deepest = tf.keras.Model(x, _marker_lambda(marker)(x), name="deepest")
        y = tf.keras.Input((8, 8, 4))
        inner = tf.keras.Model(y, deepest(y), name="inner")
    return tf.keras.Model(inputs, inner(inputs))


# ---------------------------------------------------------------- stored code
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("kind", ["time_distributed", "nested_sequential", "nested_functional"])
def test_nested_lambda_is_refused_and_its_code_never_runs(tmp_path, kind, suffix):
    marker = tmp_path / "code-ran"
    path = tmp_path / f"model{suffix}"
    _nested_lambda_model(kind, marker).save(path)
    marker.unlink()  # building the model ran it once; the file must not run it again
    with pytest.raises(safety.DeploymentError, match=r"Lambda layer\(s\) evil in .*--allow_unsafe"):
        load_model(path)
    assert not marker.exists()


def test_nested_lambda_in_a_saved_model_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    _nested_lambda_model("time_distributed", marker).save(tmp_path / "sm", save_format="tf")
    marker.unlink()
    with pytest.raises(safety.DeploymentError, match=r"Lambda layer\(s\) evil"):
        load_model(tmp_path / "sm")
    assert not marker.exists()


def _functional(*layers: dict) -> dict:
    return {"class_name": "Functional", "config": {"name": "model", "layers": list(layers)}}


LAMBDA = {
    "class_name": "Lambda",
    "config": {"name": "evil", "function": ["4wEAAAAA", None, None], "function_type": "lambda"},
}


@pytest.mark.parametrize(
    "config, found",
    [
        # Wrappers and RNN cells keep their layers under other keys than "layers".
        (
            _functional(
                {
                    "class_name": "Bidirectional",
                    "config": {
                        "name": "bi",
                        "layer": {"class_name": "LSTM", "config": {"name": "fw"}},
                        "backward_layer": LAMBDA,
                    },
                }
            ),
            "Lambda layer(s) evil in bi",
        ),
        (
            _functional(
                {
                    "class_name": "RNN",
                    "config": {
                        "name": "rnn",
                        "cell": {
                            "class_name": "StackedRNNCells",
                            "config": {"name": "cells", "cells": [LAMBDA]},
                        },
                    },
                }
            ),
            "Lambda layer(s) evil in rnn/cells",
        ),
        # Any key at any depth, including ones Keras does not use for layers today.
        (_functional({"class_name": "Dense", "config": {"name": "d", "x": [[LAMBDA]]}}), "evil"),
        # An op layer naming a TensorFlow function that writes files.
        (
            _functional(
                {"class_name": "TFOpLambda", "config": {"name": "w", "function": "io.write_file"}}
            ),
            "TFOpLambda layer(s) w (calls tf.io.write_file)",
        ),
        # Another class carrying bytecode under Lambda's keys.
        (
            _functional({"class_name": "Dense", "config": {"name": "d", "function": ["AAAA"]}}),
            "Dense layer(s) d (stores code under 'function')",
        ),
        (_functional({"class_name": "TensorFlowOpLayer", "config": {"name": "op"}}), "op"),
        (_functional({"class_name": "__lambda__", "config": {"code": "AAAA"}}), "lambda"),
    ],
)
def test_code_anywhere_in_a_config_is_refused_unless_allowed(config, found):
    with pytest.raises(safety.DeploymentError, match="run code stored in the file") as error:
        safety.check_model_config(config, source="m.h5")
    assert found in str(error.value)
    safety.check_model_config(config, source="m.h5", allow_unsafe=True)


@pytest.mark.parametrize(
    "obj, reason",
    [
        ({"class_name": "Evil", "config": {"name": "e"}}, "unknown layer class 'Evil' (at e in d)"),
        (
            {"class_name": "Dense", "module": "os", "config": {"name": "d"}},
            "names the Python module 'os'",
        ),
        (
            {"class_name": "function", "module": "builtins", "config": "eval"},
            "function 'eval' at d is neither a Keras activation",
        ),
    ],
)
def test_unknown_classes_and_foreign_modules_are_refused_even_when_allowed(obj, reason):
    config = _functional({"class_name": "Dense", "config": {"name": "d", "bias": obj}})
    with pytest.raises(safety.DeploymentError, match="m.keras") as error:
        safety.check_model_config(config, source="m.keras", allow_unsafe=True)
    assert reason in str(error.value)


def test_op_layers_doing_tensor_maths_still_load(tmp_path):
    inputs = tf.keras.Input((8, 8, 4))
    outputs = tf.reshape(tf.math.multiply(inputs, 2.0), (-1, 256))  # op layers
    tf.keras.Model(inputs, outputs).save(tmp_path / "ops.h5")
    classes = json.dumps(safety.read_model_config(tmp_path / "ops.h5"))
    assert "TFOpLambda" in classes
    assert load_model(tmp_path / "ops.h5").output_shape == (None, 256)


@pytest.mark.parametrize("name", ["el_resnet18", "el_mobilenet", "bireal_resnet18"])
def test_zoo_models_pass_the_config_check_in_every_format(tmp_path, name):
    model = get_model(name, input_shape=(16, 16, 3), num_classes=10, width=0.25)
    model.save(tmp_path / "m.h5")
    model.save(tmp_path / "m.keras")
    for path in (tmp_path / "m.h5", tmp_path / "m.keras"):
        safety.check_model_file(path)
    assert load_model(tmp_path / "m.keras").count_params() == model.count_params()


def test_saved_model_of_a_zoo_model_passes_the_config_check(tmp_path):
    model = get_model("el_resnet18", input_shape=(16, 16, 3), num_classes=10, width=0.25)
    model.save(tmp_path / "sm", save_format="tf")
    safety.check_model_file(tmp_path / "sm")


# ---------------------------------------------------------------- corrupt configs
def _with_config(tmp_path: Path, text: str) -> Path:
    inputs = tf.keras.Input((8, 8, 32))
    tf.keras.Model(inputs, el_conv(inputs, 32, 3, name="a")).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "a") as f:
        f.attrs["model_config"] = text
    return tmp_path / "m.h5"


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"class_name": "Functional", "config": ', "is not valid JSON"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"a": ' * 150 + "1" + "}" * 150, "nested more than 100 levels deep"),
    ],
)
def test_corrupt_or_absurdly_nested_configs_are_one_line_errors(tmp_path, text, reason):
    path = _with_config(tmp_path, text)
    with pytest.raises(safety.DeploymentError, match=reason) as error:
        load_model(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_a_zip_not_named_keras_is_not_read_as_a_keras_archive(tmp_path):
    # Keras decides the format by the name; reading another config than it builds
    # would check the wrong one.
    with zipfile.ZipFile(tmp_path / "m.h5", "w") as archive:
        archive.writestr("config.json", json.dumps(_functional()))
    with pytest.raises(safety.DeploymentError, match="must be named \\*.keras"):
        safety.read_model_config(tmp_path / "m.h5")
