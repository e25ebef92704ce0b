"""el_larq.zoo builders follow keras-applications' conventions (el_larq/zoo/_common.py)."""

import inspect

import numpy as np
import pytest
import tensorflow as tf

from el_larq.zoo import MODELS, get_model

# keras-applications' arguments, in order, first in every builder's signature.
MODEL_ARGUMENTS = [
    "input_shape",
    "input_tensor",
    "include_top",
    "weights",
    "num_classes",
    "width",
    "stem",
    "pooling",
    "classifier_activation",
    "include_preprocessing",
    "preprocessing_mean",
]
SMALL = dict(input_shape=(32, 32, 3), num_classes=10, width=0.25)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builders_have_explicit_keyword_only_signatures(name):
    parameters = inspect.signature(MODELS[name]).parameters
    assert list(parameters)[: len(MODEL_ARGUMENTS)] == MODEL_ARGUMENTS
    kinds = {p.kind for p in parameters.values()}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}, f"{name}: {kinds}"  # no **kwargs
    assert all(p.default is not inspect.Parameter.empty for p in parameters.values())
    assert parameters["classifier_activation"].default == "softmax"
    assert parameters["pooling"].default is None


def test_every_switch_shows_its_default():
    el26 = inspect.signature(MODELS["el_resnet26"]).parameters
    bireal26 = inspect.signature(MODELS["bireal_resnet26"]).parameters
    assert (el26["el_expand"].default, bireal26["el_expand"].default) == (True, False)
    assert (el26["spatial_pool"].default, bireal26["spatial_pool"].default) == ("max", "avg")
    assert inspect.signature(MODELS["binary_mobilenet"]).parameters["el_pointwise"].default is False
    float_twin = inspect.signature(MODELS["resnet26"]).parameters
    assert "k_reduce" not in float_twin and "el_expand" not in float_twin  # no EL switches


def test_pooling_and_classifier_activation():
    tiny = dict(input_shape=(16, 16, 3), num_classes=10, width=0.125)
    pools = {None: None, "avg": "GlobalAveragePooling2D", "max": "GlobalMaxPooling2D"}
    for pooling, layer in pools.items():
        model = get_model("el_resnet18", include_top=False, pooling=pooling, **tiny)
        assert len(model.output_shape) == (4 if pooling is None else 2)
        assert layer is None or type(model.layers[-1]).__name__ == layer
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    logits_model = get_model("el_resnet18", classifier_activation=None, **tiny)
    softmax_model = get_model("el_resnet18", **tiny)
    softmax_model.set_weights(logits_model.get_weights())
    logits = logits_model(x, training=False).numpy()
    np.testing.assert_allclose(
        softmax_model(x, training=False).numpy(), tf.nn.softmax(logits).numpy(), atol=1e-6
    )
    assert not np.allclose(logits.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(include_top=False, pooling="min"), "pooling must be None, 'avg' or 'max', got 'min'"),
        (dict(pooling="avg"), "pooling='avg' is for include_top=False"),
        (dict(classifier_activation="softmaxx"), "unknown classifier_activation 'softmaxx'"),
        (dict(width=0), "width must be > 0"),
        (dict(num_classes=0), "num_classes must be an integer >= 1"),
        (dict(stem="tiny"), "stem must be 'imagenet', 'small' or None"),
        (dict(input_shape=(32, 32)), "input_shape must be (height, width, channels)"),
        (dict(reduce_conv="half"), "reduce_conv must be one of"),
        (dict(weights="/nonexistent.h5"), "is not a file"),
    ],
)
def test_errors_name_the_public_function(kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        get_model("bireal_resnet26", **{**SMALL, **kwargs})
    assert str(error.value).startswith("bireal_resnet26(): ") and message in str(error.value)


def test_unknown_switch_names_the_function():
    with pytest.raises(
        TypeError, match=r"^resnet26\(\) got an unexpected keyword argument 'k_reduce'"
    ):
        get_model("resnet26", k_reduce=False)
    with pytest.raises(ValueError, match=r"^el_mobilenet\(\): relu_position must be"):
        get_model("el_mobilenet", relu_position="everywhere", **SMALL)
