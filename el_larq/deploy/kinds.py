"""How LCE treats each Keras layer (binary, binary depthwise, float conv, ...).

Needs larq and TensorFlow only, not LCE: `el_larq.summary` counts layers with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import larq as lq
import tensorflow as tf

__all__ = ["is_binary", "layer_kind", "walk_layers"]


def is_binary(quantizer: Any) -> bool:
    """Whether a larq quantizer binarizes (what LCE turns into bit-packed values).

    # Example
        ```python
        assert is_binary(larq.quantizers.SteSign())
        ```
    """
    # larq's own test (layers_base._is_binary); NoOp(precision=1) only tags a variable.
    return getattr(quantizer, "precision", None) == 1 and not isinstance(
        quantizer, lq.quantizers.NoOp
    )


def walk_layers(model: tf.keras.Model) -> Iterator[tf.keras.layers.Layer]:
    """Every layer of `model`, nested models flattened."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from walk_layers(layer)
        else:
            yield layer


def layer_kind(layer: tf.keras.layers.Layer) -> str | None:
    """How LCE treats a Keras layer: `"binary"`, `"binary_depthwise"`, `"binary_dense"`,
    `"float"` (a conv or dense kept in float on purpose) or `None` (not a conv).

    # Example
        ```python
        assert layer_kind(el_larq.layers.BinaryConv2D(8, 3)) == "binary"
        ```
    """
    input_binary = is_binary(getattr(layer, "input_quantizer", None))
    if isinstance(layer, lq.layers.QuantDepthwiseConv2D):
        if input_binary and is_binary(layer.depthwise_quantizer):
            return "binary_depthwise"
    elif isinstance(layer, lq.layers.QuantConv2D):
        if input_binary and is_binary(layer.kernel_quantizer):
            return "binary"
    elif isinstance(layer, lq.layers.QuantDense):
        if input_binary and is_binary(layer.kernel_quantizer):
            return "binary_dense"
    conv_types = (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D, tf.keras.layers.Dense)
    conv_types += (lq.layers.QuantConv2D, lq.layers.QuantDepthwiseConv2D, lq.layers.QuantDense)
    return "float" if isinstance(layer, conv_types) else None
