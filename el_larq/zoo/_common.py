"""Scaffolding shared by every zoo family: input, stem, classifier head, Bi-Real shortcut.

The family modules (`resnet.py`, `mobilenet.py`, ...) build only their stacks and
hand them to `application`, in the style of keras-applications.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import tensorflow as tf

from el_larq.zoo.preprocessing import preprocessing_layer

SMALL_INPUT_MAX = 64
# keras-applications arguments every builder takes (the rest are stack switches), in
# the order of the builders' signatures.
MODEL_ARGS = (
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
)
POOLINGS = (None, "avg", "max")


def scaled(channels: int, width: float) -> int:
    """Channels times `width`, rounded to a multiple of 8 (LCE bitpacks in words of 32)."""
    return max(8, int(round(channels * width / 8)) * 8)


def inputs(input_shape, input_tensor, name: str = "the builder") -> tuple[tf.Tensor, tf.Tensor]:
    if input_tensor is not None:
        if tf.keras.backend.is_keras_tensor(input_tensor):
            return input_tensor, input_tensor
        tensor = tf.keras.Input(tensor=input_tensor)
        return tensor, tensor
    if input_shape is None:
        input_shape = (224, 224, 3)
    if len(input_shape) != 3:
        raise ValueError(
            f"{name}(): input_shape must be (height, width, channels), got {input_shape}."
        )
    inputs = tf.keras.Input(tuple(input_shape))
    return inputs, inputs


def pick_stem(stem: str | None, inputs: tf.Tensor, name: str = "the builder") -> str:
    if stem is None:
        sizes = [size for size in inputs.shape[1:3] if size is not None]
        return "small" if sizes and max(sizes) <= SMALL_INPUT_MAX else "imagenet"
    if stem not in ("imagenet", "small"):
        raise ValueError(
            f"{name}(): stem must be 'imagenet', 'small' or None (auto), got {stem!r}."
        )
    return stem


def stem(
    x: tf.Tensor, filters: int, stem: str, kernel_imagenet: int, pool: bool, binary: bool
) -> tf.Tensor:
    imagenet = stem == "imagenet"
    x = tf.keras.layers.Conv2D(
        filters,
        kernel_imagenet if imagenet else 3,
        strides=2 if imagenet else 1,
        padding="same",
        use_bias=False,
        name="stem_conv",
    )(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem_bn")(x)
    if not binary:
        # Not before a binary net: a ReLU would make every sign of the first binary conv +1.
        x = tf.keras.layers.Activation("relu", name="stem_relu")(x)
    if imagenet and pool:
        x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
    return x


def head(
    x,
    inputs,
    include_top: bool,
    num_classes: int,
    name: str,
    weights,
    activation: str | None = "relu",
    pooling: str | None = None,
    classifier_activation: str | Callable | None = "softmax",
) -> tf.keras.Model:
    """keras-applications' top: pool + classifier, or (`include_top=False`) `pooling`."""
    if activation is not None:  # ReActNet pools its last RPReLU's output directly
        x = tf.keras.layers.Activation(activation, name=f"head_{activation}")(x)
    if include_top or pooling == "avg":
        x = tf.keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    elif pooling == "max":
        x = tf.keras.layers.GlobalMaxPooling2D(name="head_pool")(x)
    if include_top:
        classifier = tf.keras.layers.Dense
        x = classifier(num_classes, activation=classifier_activation, name="classifier")(x)
    model = tf.keras.Model(inputs, x, name=name)
    if weights is not None:
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"{name}(): weights={weights!r} is not a file. el_larq downloads nothing: pass "
                "None or the path of a weights file saved with model.save_weights / model.save."
            )
        model.load_weights(weights)
    return model


def check_model_args(
    name: str,
    *,
    include_top: bool,
    num_classes: int,
    width: float,
    pooling: str | None,
    classifier_activation: str | Callable | None,
) -> None:
    """keras-applications' argument checks, with the public function's name in the error.

    # Raises
        ValueError: an argument out of its range.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"{name}(): pooling must be None, 'avg' or 'max', got {pooling!r}.")
    if include_top and pooling is not None:
        raise ValueError(
            f"{name}(): pooling={pooling!r} is for include_top=False (the top pools by "
            "average before its classifier)."
        )
    if include_top and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"{name}(): num_classes must be an integer >= 1, got {num_classes!r}.")
    if not width > 0:
        raise ValueError(f"{name}(): width must be > 0, got {width!r}.")
    try:
        tf.keras.activations.get(classifier_activation)
    except (ValueError, TypeError):
        raise ValueError(
            f"{name}(): unknown classifier_activation {classifier_activation!r} (e.g. "
            "'softmax', or None for logits)."
        ) from None


def downsample(x: tf.Tensor, filters: int, strides: int, name: str) -> tf.Tensor:
    """Bi-Real shortcut: 2x2 average-pool (when strided) + full-precision 1x1 conv + BN."""
    if strides > 1:
        x = tf.keras.layers.AveragePooling2D(strides, strides, padding="same", name=f"{name}_pool")(
            x
        )
    x = tf.keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def shortcut(x: tf.Tensor, filters: int, strides: int, name: str) -> tf.Tensor:
    if strides == 1 and x.shape[-1] == filters:
        return x
    return downsample(x, filters, strides, name)


def application(
    name: str,
    body: Callable[[tf.keras.layers.Layer, str, float], tf.Tensor],
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    num_classes: int = 1000,
    weights: str | None = None,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | Callable | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    head_activation: str | None = "relu",
) -> tf.keras.Model:
    """The keras-applications scaffolding around a stack: input, `body`, head, weights.

    `name` is the model's and its public builder's name (errors name the builder).
    With `include_preprocessing` the model takes raw pixels in [0, 255]
    (`el_larq.zoo.preprocessing`).
    """
    check_model_args(
        name,
        include_top=include_top,
        num_classes=num_classes,
        width=width,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    inputs_, x = inputs(input_shape, input_tensor, name)
    if include_preprocessing:
        x = preprocessing_layer(x.shape[-1], preprocessing_mean, name=name)(x)
    features = body(x, pick_stem(stem, x, name), width)
    return head(
        features,
        inputs_,
        include_top,
        num_classes,
        name,
        weights,
        activation=head_activation,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )


def model_args(values: dict) -> dict:
    """The keras-applications arguments among a builder's `locals()` (those it has).

    # Example
        ```python
        return application("el_resnet26", body, **model_args(locals()))
        ```
    """
    return {key: values[key] for key in MODEL_ARGS if key in values}


def split_model_args(kwargs: dict) -> tuple[dict, dict]:
    """(keras-applications arguments, stack switches) of a builder's keyword arguments."""
    model_args = {k: kwargs.pop(k) for k in list(kwargs) if k in MODEL_ARGS}
    return model_args, kwargs
