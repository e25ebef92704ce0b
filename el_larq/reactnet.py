"""ReActNet's generalized activations (Liu et al., "ReActNet", ECCV 2020).

* `RSign`: `sign(x - beta_c)` with a learnable threshold per channel, a larq quantizer
  that goes where any other input quantizer goes (`BinaryConv2D(..., input_quantizer=RSign())`).
* `RPReLU`: a per-channel shift, a PReLU with a per-channel slope and a second shift.

Both are float work beside the binary convs after conversion: RSign's threshold is one
`SUB` in front of the `LceQuantize` that feeds an `LceBconv2d`, RPReLU is `SUB`, `PRELU`
and `ADD` (docs/deployment.md lists what the ReActNet models add).
"""

from __future__ import annotations

from typing import Any

import larq as lq
import tensorflow as tf

__all__ = ["RPReLU", "RSign"]


def _channels(layer: str, input_shape: tf.TensorShape) -> int:
    input_shape = tf.TensorShape(input_shape)
    if input_shape.rank is None or input_shape.rank < 2 or input_shape[-1] is None:
        raise ValueError(
            f"{layer} expects an input with a known number of channels (last axis), "
            f"got shape {input_shape}."
        )
    return int(input_shape[-1])


@lq.utils.register_keras_custom_object
class RSign(lq.quantizers.Quantizer):
    r"""ReActNet's RSign: a binarization with a learnable threshold per channel.

    \\[
    q(x_c) = \begin{cases}
      -1 & x_c < \beta_c \\\
      1 & x_c \geq \beta_c
    \end{cases}
    \\]

    The gradient is ReActNet's (and Bi-Real Net's) ApproxSign, the derivative of the
    piecewise polynomial `2u + u^2` / `2u - u^2` that approximates sign(u), `u = x - beta`:
    `(2 - 2 |u|)` for `|u| <= 1`, 0 elsewhere (larq's `approx_sign`). It reaches both `x`
    and `beta`, so the threshold is learned.

    It is a larq quantizer of precision 1, so that a larq conv that uses it as its
    input quantizer is a binarized conv (Larq Compute Engine turns it into an
    `LceBconv2d`; `beta` becomes one float `SUB` in front of it). One instance per conv:
    it owns the conv input's thresholds.

    # Arguments
        beta_initializer: Initializer of the thresholds (ReActNet: zeros).
        **kwargs: Standard `tf.keras.layers.Layer` arguments (`name`, ...).

    # Input shape
        Any tensor with a known last (channel) axis.

    # Output shape
        The input shape; values are -1 or +1.

    # Example
        ```python
        x = tf.keras.Input((32, 32, 64))
        y = BinaryConv2D(64, 3, input_quantizer=RSign(), weight_scaling=True)(x)
        ```

    # References
        - [ReActNet: Towards Precise Binary Neural Network with Generalized Activation
            Functions](https://arxiv.org/abs/2003.03488)
    """

    precision = 1

    def __init__(self, beta_initializer: Any = "zeros", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.beta_initializer = tf.keras.initializers.get(beta_initializer)

    def build(self, input_shape: tf.TensorShape) -> None:
        self.beta = self.add_weight(
            name="beta",
            shape=(_channels(type(self).__name__, input_shape),),
            initializer=self.beta_initializer,
            trainable=True,
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return lq.quantizers.approx_sign(inputs - tf.cast(self.beta, inputs.dtype))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_initializer": tf.keras.initializers.serialize(self.beta_initializer),
        }


@lq.utils.register_keras_custom_object
class RPReLU(tf.keras.layers.Layer):
    """ReActNet's RPReLU: shift, PReLU with a per-channel slope, shift.

    `RPReLU(x_c) = PReLU(x_c - gamma_c; beta_c) + zeta_c`, i.e. `x_c - gamma_c + zeta_c`
    where `x_c > gamma_c` and `beta_c (x_c - gamma_c) + zeta_c` elsewhere, with
    ReActNet's initial values `gamma = zeta = 0` and `beta = 0.25` (PyTorch's PReLU).
    The weights are named `shift_in` (gamma), `slope` (beta) and `shift_out` (zeta).

    The PReLU part is written as Keras' `PReLU` is, `relu(u) + (-slope) * relu(-u)`, which
    the TFLite converter turns into one `PRELU` op (between a `SUB` and an `ADD`).

    # Arguments
        shift_initializer: Initializer of `shift_in` and `shift_out` (zeros).
        slope_initializer: Initializer of the negative-side slope (0.25).
        **kwargs: Standard `tf.keras.layers.Layer` arguments (`name`, ...).

    # Input shape
        Any tensor with a known last (channel) axis.

    # Output shape
        The input shape.

    # Example
        ```python
        x = tf.keras.Input((32, 32, 64))
        y = RPReLU(name="block1_act")(x)
        ```

    # References
        - [ReActNet: Towards Precise Binary Neural Network with Generalized Activation
            Functions](https://arxiv.org/abs/2003.03488)
    """

    def __init__(
        self,
        shift_initializer: Any = "zeros",
        slope_initializer: Any = 0.25,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.shift_initializer = tf.keras.initializers.get(shift_initializer)
        if isinstance(slope_initializer, (int, float)) and not isinstance(slope_initializer, bool):
            slope_initializer = tf.keras.initializers.Constant(float(slope_initializer))
        self.slope_initializer = tf.keras.initializers.get(slope_initializer)

    def build(self, input_shape: tf.TensorShape) -> None:
        shape = (_channels(type(self).__name__, input_shape),)
        self.shift_in = self.add_weight(
            name="shift_in", shape=shape, initializer=self.shift_initializer
        )
        self.slope = self.add_weight(name="slope", shape=shape, initializer=self.slope_initializer)
        self.shift_out = self.add_weight(
            name="shift_out", shape=shape, initializer=self.shift_initializer
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        shifted = inputs - tf.cast(self.shift_in, inputs.dtype)
        # The slope shaped as the input without its batch axis, (1, 1, C) for images: the
        # shape TFLite's PRELU pattern matches (a (C,) slope stays NEG, RELU, MUL, RELU, ADD).
        slope_shape = [1] * (inputs.shape.rank - 2) + [-1]
        slope = tf.reshape(tf.cast(self.slope, inputs.dtype), slope_shape)
        prelu = tf.nn.relu(shifted) + (-slope) * tf.nn.relu(-shifted)
        return prelu + tf.cast(self.shift_out, inputs.dtype)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "shift_initializer": tf.keras.initializers.serialize(self.shift_initializer),
            "slope_initializer": tf.keras.initializers.serialize(self.slope_initializer),
        }
