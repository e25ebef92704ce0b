"""Feature maps of trained models side by side: the paper's Fig. 1, for any model.

The paper's Fig. 1 shows the same feature maps of a full-precision network, a binary
one and its EL version: binarization loses detail, Elastic-Link keeps more of it. Here
`feature_maps` reads a named layer's output for some images, and `plot_feature_maps`
draws several models' maps of the same images and channels in one PNG
(`el_larq.plots.feature_maps_figure`); `el-larq feature-maps` does it from files.

    from el_larq.feature_maps import plot_feature_maps
    plot_feature_maps({"FP": fp, "Bi-Real": bireal, "EL": el}, "stage2_block1_out",
                      images, "fig1.png", channels=(0, 1, 2, 3))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["FeatureMapError", "feature_maps", "plot_feature_maps"]


class FeatureMapError(ValueError):
    """A layer that is not in a model, is not a 4D map, or lacks the asked channels."""


def feature_maps(model: tf.keras.Model, layer: str, images: np.ndarray) -> np.ndarray:
    """The output of `model`'s layer `layer` for `images` (inference mode).

    # Arguments
        model: A functional or Sequential `tf.keras.Model`.
        layer: The layer's name (the zoo's ResNets name block outputs
            `stage{s}_block{b}_out`, the same in every family).
        images: A batch the model takes, `(n, height, width, channels)`.

    # Returns
        A float32 array `(n, h, w, c)`.

    # Raises
        FeatureMapError: no such layer, or its output is not a 4D feature map.

    # Example
        ```python
        maps = feature_maps(model, "stage1_block2_out", x_test[:4])
        ```
    """
    try:
        output = model.get_layer(layer).output
    except ValueError:
        raise FeatureMapError(f"model {model.name!r} has no layer {layer!r}.") from None
    if isinstance(output, (list, tuple)) or len(output.shape) != 4:
        raise FeatureMapError(
            f"layer {layer!r} of model {model.name!r} does not output one 4D feature map "
            f"(batch, height, width, channels)."
        )
    probe = tf.keras.Model(model.inputs, output)
    return np.asarray(probe(np.asarray(images), training=False), dtype=np.float32)


def plot_feature_maps(
    models: Mapping[str, tf.keras.Model],
    layer: str | Mapping[str, str],
    images: np.ndarray,
    path: str,
    channels: Sequence[int] = (0, 1, 2, 3),
    title: str = "",
) -> str:
    """Draw the same channels of the same layer of several models for the same images.

    # Arguments
        models: `{label: model}`, drawn in this order (e.g. FP, binary, EL).
        layer: One layer name for all models, or `{label: layer name}`.
        images: The input batch (a row per image in the figure).
        path: The PNG to write (atomically).
        channels: Channel indices to show, the same for every model.
        title: Figure title.

    # Returns
        `path`.

    # Raises
        FeatureMapError: a missing or non-map layer, or a channel a model lacks.
        ImportError: matplotlib is not installed (the `plot` extra).

    # Example
        ```python
        plot_feature_maps({"FP": fp, "EL": el}, "stage1_block2_out", x[:3], "fig1.png")
        ```
    """
    from el_larq.plots import feature_maps_figure, save_png

    maps = {}
    for label, model in models.items():
        name = layer if isinstance(layer, str) else layer[label]
        values = feature_maps(model, name, images)
        missing = [c for c in channels if not 0 <= c < values.shape[-1]]
        if missing:
            raise FeatureMapError(
                f"layer {name!r} of {label} has {values.shape[-1]} channels; no channel "
                f"{missing[0]}."
            )
        maps[f"{label}: {name}"] = values[..., list(channels)]
    return save_png(feature_maps_figure(np.asarray(images), maps, list(channels), title), path)
