"""The zoo's input convention, as a function and as layers inside a model.

Every zoo model expects what `el_larq.data` feeds it in training: pixels scaled to
[0, 1], minus a per-channel mean (ImageNet's for ImageNet, 0.2860 for Fashion-MNIST,
`el_larq.data.CHANNEL_MEANS`). `preprocess_input` applies it to raw pixels, as
keras-applications' functions of that name do. A model that takes raw pixels itself,
so that a deployed `.tflite` needs no preprocessing code, is a builder with
`include_preprocessing=True` or a trained model wrapped by `with_preprocessing`: both
add a `Rescaling` layer (x / 255 - mean), which LCE converts to a float multiply and add.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from el_larq.data import CHANNEL_MEANS, IMAGENET

__all__ = ["channel_mean", "preprocess_input", "preprocessing_layer", "with_preprocessing"]


def channel_mean(mean: Sequence[float] | str | None, channels: int) -> tuple[float, ...]:
    """The per-channel mean for `channels` channels.

    # Arguments
        mean: Per-channel means in [0, 1], one per channel or one for all; a dataset name
            of `el_larq.data.CHANNEL_MEANS` (e.g. `"fashion_mnist"`); or None: ImageNet's
            for 3 channels, 0.5 otherwise (what `el_larq.data` uses for unknown data).
        channels: Input channels.

    # Returns
        A tuple of `channels` floats.

    # Raises
        ValueError: an unknown dataset, or means that do not fit the channels.

    # Example
        ```python
        channel_mean("fashion_mnist", 1)  # (0.286,)
        ```
    """
    if mean is None:
        mean = CHANNEL_MEANS[IMAGENET] if channels == 3 else (0.5,)
    elif isinstance(mean, str):
        if mean not in CHANNEL_MEANS:
            known = ", ".join(sorted(CHANNEL_MEANS))
            raise ValueError(f"no channel means known for {mean!r}; known: {known}")
        mean = CHANNEL_MEANS[mean]
    mean = tuple(float(m) for m in mean)
    if len(mean) == 1:
        mean *= channels
    if len(mean) != channels:
        raise ValueError(f"{len(mean)} channel means for {channels} channels")
    return mean


def preprocess_input(x: Any, mean: Sequence[float] | str | None = None) -> Any:
    """Raw pixels in [0, 255] -> the zoo's input: `x / 255 - mean` per channel (float32).

    # Arguments
        x: Images `(..., height, width, channels)`: a NumPy array or a tensor, uint8 or
            float.
        mean: See `channel_mean` (None: ImageNet's for 3 channels, 0.5 otherwise).

    # Returns
        float32 images of the same kind and shape.

    # Example
        ```python
        probabilities = model.predict(preprocess_input(images, "fashion_mnist"))
        ```
    """
    if tf.is_tensor(x):
        values = tf.cast(x, tf.float32) / 255.0
        return values - tf.constant(channel_mean(mean, int(x.shape[-1])), tf.float32)
    values = np.asarray(x, dtype=np.float32) / np.float32(255.0)
    return values - np.asarray(channel_mean(mean, values.shape[-1]), np.float32)


def preprocessing_layer(
    channels: int, mean: Sequence[float] | str | None = None, *, name: str = "preprocessing"
) -> tf.keras.layers.Rescaling:
    """`preprocess_input` as a Keras layer: `Rescaling(1 / 255, offset=-mean)`.

    # Arguments
        channels: Input channels.
        mean: See `channel_mean`.
        name: Whose error a bad `mean` is (a builder's name); the layer is `preprocessing`.

    # Example
        ```python
        x = preprocessing_layer(3)(tf.keras.Input((224, 224, 3)))
        ```
    """
    try:
        offset = [-m for m in channel_mean(mean, channels)]
    except ValueError as error:
        raise ValueError(f"{name}(): preprocessing_mean: {error}") from None
    return tf.keras.layers.Rescaling(1.0 / 255.0, offset=offset, name="preprocessing")


def with_preprocessing(
    model: tf.keras.Model, mean: Sequence[float] | str | None = None
) -> tf.keras.Model:
    """A model that takes raw pixels in [0, 255]: `preprocessing_layer` then `model`.

    For deployment: convert the result and the `.tflite` takes the camera's pixels (as
    float32) without preprocessing code. The weights are `model`'s (shared).

    # Arguments
        model: A trained zoo model (single input `(height, width, channels)`).
        mean: The means it was trained with; see `channel_mean`.

    # Returns
        A `tf.keras.Model` named `{model.name}_raw_pixels`.

    # Example
        ```python
        deployable = with_preprocessing(model, "fashion_mnist")
        flatbuffer, _ = convert(deployable)
        ```
    """
    shape = tuple(model.inputs[0].shape[1:])
    raw = tf.keras.Input(shape, name="raw_pixels")
    outputs = model(preprocessing_layer(shape[-1], mean, name="with_preprocessing")(raw))
    return tf.keras.Model(raw, outputs, name=f"{model.name}_raw_pixels")
