"""Scaffolding shared by every zoo family: input, stem, classifier head, Bi-Real shortcut.

The family modules (`resnet.py`, `mobilenet.py`, ...) build only their stacks and
hand them to `application`, in the style of keras-applications.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import tensorflow as tf

SMALL_INPUT_MAX = 64
# keras-applications arguments every builder takes (the rest are stack switches).
MODEL_ARGS = (
    "input_shape",
    "input_tensor",
    "include_top",
    "num_classes",
    "weights",
    "width",
    "stem",
)


def scaled(channels: int, width: float) -> int:
    """Channels times `width`, rounded to a multiple of 8 (LCE bitpacks in words of 32)."""
    return max(8, int(round(channels * width / 8)) * 8)


def inputs(input_shape, input_tensor) -> tuple[tf.Tensor, tf.Tensor]:
    if input_tensor is not None:
        if tf.keras.backend.is_keras_tensor(input_tensor):
            return input_tensor, input_tensor
        tensor = tf.keras.Input(tensor=input_tensor)
        return tensor, tensor
    if input_shape is None:
        input_shape = (224, 224, 3)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}.")
    inputs = tf.keras.Input(tuple(input_shape))
    return inputs, inputs


def pick_stem(stem: str | None, inputs: tf.Tensor) -> str:
    if stem is None:
        sizes = [size for size in inputs.shape[1:3] if size is not None]
        return "small" if sizes and max(sizes) <= SMALL_INPUT_MAX else "imagenet"
    if stem not in ("imagenet", "small"):
        raise ValueError(f"stem must be 'imagenet', 'small' or None (auto), got {stem!r}.")
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
) -> tf.keras.Model:
    if activation is not None:  # ReActNet pools its last RPReLU's output directly
        x = tf.keras.layers.Activation(activation, name=f"head_{activation}")(x)
    if include_top:
        x = tf.keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
        x = tf.keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    model = tf.keras.Model(inputs, x, name=name)
    if weights is not None:
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"weights={weights!r} is not a file. el_larq downloads nothing: pass None or "
                "the path of a weights file saved with model.save_weights / model.save."
            )
        model.load_weights(weights)
    return model


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
    head_activation: str | None = "relu",
) -> tf.keras.Model:
    """The keras-applications scaffolding around a stack: input, `body`, head, weights."""
    inputs_, x = inputs(input_shape, input_tensor)
    features = body(x, pick_stem(stem, x), width)
    return head(
        features, inputs_, include_top, num_classes, name, weights, activation=head_activation
    )


def split_model_args(kwargs: dict) -> tuple[dict, dict]:
    """(keras-applications arguments, stack switches) of a builder's keyword arguments."""
    model_args = {k: kwargs.pop(k) for k in list(kwargs) if k in MODEL_ARGS}
    return model_args, kwargs
