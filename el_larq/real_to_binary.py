"""Real-to-Binary layers (Martinez et al., "Training binary neural networks with
real-to-binary convolutions", ICLR 2020), for the EL-dagger nets of the paper's Table 3.

* `ChannelGating`: the data-driven channel rescaling of a binary conv's output
  (section 4.3): global average pool of the conv's real-valued input -> Dense(Ci / r,
  ReLU) -> Dense(Co, sigmoid) -> multiply the conv output per channel.
* `LearnedRescale`: the strong baseline's static learned scaling (XNOR-Net++,
  section 4.1): a factor per output channel, optionally times factors per row and
  column.
* `TanhSign` and `stage_conv_kwargs`: the multi-stage switches. Stage 2 of
  Real-to-Binary trains with real weights and soft (tanh) activations; stage 3
  initialises the binary net from it, so every setting keeps the same weights.

Neither scaling touches the binary conv: it still converts to one `LceBconv2d`. The
float ops they add beside it after conversion (`el_larq.deploy.census` lists them):

* `ChannelGating`: `MEAN` (the pool), `FULLY_CONNECTED` with its ReLU fused,
  `FULLY_CONNECTED`, `LOGISTIC`, `RESHAPE` and a `MUL` over the conv output.
* `LearnedRescale`: nothing; LCE folds the per-channel factor into the
  `LceBconv2d`'s output multiplier.
"""

from __future__ import annotations

from typing import Any

import larq as lq
import numpy as np
import tensorflow as tf

from el_larq.layers import _check_4d, _positive_int

__all__ = ["ChannelGating", "LearnedRescale", "TanhSign", "scaling_ops", "stage_conv_kwargs"]


@lq.utils.register_alias("tanh_sign")
@lq.utils.register_keras_custom_object
class TanhSign(lq.quantizers.Quantizer):
    """`tanh(x)`: the soft stand-in for `sign(x)` of Real-to-Binary's second stage.

    As an input quantizer it keeps activations real-valued but squashed towards +-1,
    so that the next stage's `ste_sign` changes them little. Its `precision` is None:
    a conv with it is not binarized (`el_larq.deploy.kinds.layer_kind` says "float").

    # Example
        ```python
        conv = lq.layers.QuantConv2D(16, 3, input_quantizer=TanhSign())
        ```
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.math.tanh(inputs)


def stage_conv_kwargs(
    binary_weights: bool = True, soft_activations: bool = False, depthwise: bool = False
) -> dict[str, Any]:
    """Quantizer arguments of a binarized conv for one Real-to-Binary stage.

    The defaults (binary weights, sign activations) return `{}`: the conv keeps its own
    quantizers. The switches only remove or replace quantizers and the clip constraint,
    never weights, so a model built with any setting loads the weights of any other.

    # Arguments
        binary_weights: False uses the latent real weights directly: no kernel
            quantizer and no `weight_clip` constraint (stage 2 / ReActNet's step 1).
        soft_activations: True binarizes the input with `tanh` instead of `sign`.
        depthwise: The arguments of a `QuantDepthwiseConv2D` (`depthwise_*`).

    # Returns
        A dict of keyword arguments for `larq.layers.QuantConv2D` (or depthwise).

    # Example
        ```python
        conv = BinaryConv2D(16, 3, **stage_conv_kwargs(binary_weights=False))
        ```
    """
    kwargs: dict[str, Any] = {}
    if not binary_weights:
        prefix = "depthwise" if depthwise else "kernel"
        kwargs[f"{prefix}_quantizer"] = None
        kwargs[f"{prefix}_constraint"] = None
    if soft_activations:
        kwargs["input_quantizer"] = TanhSign()
    return kwargs


@lq.utils.register_keras_custom_object
class ChannelGating(tf.keras.layers.Layer):
    """Real-to-Binary's data-driven channel rescaling of a binary conv's output.

    Called on `[conv_input, conv_output]`: the real-valued input `x` of the binary conv
    (`Ci` channels) decides a per-sample, per-channel scale of its output `y` (`Co`
    channels):

        s = sigmoid(relu(mean_hw(x) W_reduce) W_expand),   out = y * s

    with `W_reduce` of shape `(Ci, max(1, Ci // reduction))` and `W_expand` of shape
    `(Ci // reduction, Co)`, no biases, He-normal initialised, as in larq-zoo's
    `RealToBinaryNet`. The gate only reads the real input, so the conv stays an
    `LceBconv2d`; see the module docstring for the float ops it adds.

    # Arguments
        reduction: `r`, the channel reduction of the hidden layer (8 in the paper).
        kernel_initializer: Initializer of both kernels.
        kernel_regularizer: Optional regularizer of both kernels (weight decay).
        **kwargs: Standard `tf.keras.layers.Layer` arguments (`name`, ...).

    # Input shape
        A list of two 4D tensors: `(batch, H, W, Ci)` and `(batch, Ho, Wo, Co)`.

    # Output shape
        The shape of the second input.

    # Example
        ```python
        x = tf.keras.Input((32, 32, 64))
        y = BinaryConv2D(128, 3, strides=2)(x)
        y = ChannelGating(reduction=8)([x, y])
        ```
    """

    def __init__(
        self,
        reduction: int = 8,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reduction = _positive_int(type(self).__name__, "reduction", reduction)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

    def _shapes(self, input_shape) -> tuple[tf.TensorShape, tf.TensorShape]:
        if not isinstance(input_shape, list | tuple) or len(input_shape) != 2:
            raise ValueError(
                "ChannelGating is called on [conv_input, conv_output], got input shape "
                f"{input_shape}."
            )
        name = type(self).__name__
        return _check_4d(name, input_shape[0]), _check_4d(name, input_shape[1])

    def build(self, input_shape) -> None:
        conv_input, conv_output = self._shapes(input_shape)
        self.hidden = max(1, int(conv_input[-1]) // self.reduction)
        kernels = {
            "reduce_kernel": (int(conv_input[-1]), self.hidden),
            "expand_kernel": (self.hidden, int(conv_output[-1])),
        }
        for name, shape in kernels.items():
            weight = self.add_weight(
                name=name,
                shape=shape,
                # A fresh initializer per kernel (Keras warns about reusing an unseeded one).
                initializer=type(self.kernel_initializer).from_config(
                    self.kernel_initializer.get_config()
                ),
                regularizer=self.kernel_regularizer,
            )
            setattr(self, name, weight)
        super().build(input_shape)

    def gate(self, conv_input: tf.Tensor) -> tf.Tensor:
        """The scales `s`, shape `(batch, 1, 1, Co)`."""
        pooled = tf.reduce_mean(conv_input, axis=[1, 2])
        hidden = tf.nn.relu(tf.matmul(pooled, tf.cast(self.reduce_kernel, pooled.dtype)))
        scales = tf.math.sigmoid(tf.matmul(hidden, tf.cast(self.expand_kernel, hidden.dtype)))
        return tf.reshape(scales, [-1, 1, 1, scales.shape[-1]])

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        conv_input, conv_output = inputs
        return conv_output * tf.cast(self.gate(conv_input), conv_output.dtype)

    def compute_output_shape(self, input_shape) -> tf.TensorShape:
        return self._shapes(input_shape)[1]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "reduction": self.reduction,
            "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None
            else None,
        }


@lq.utils.register_keras_custom_object
class LearnedRescale(tf.keras.layers.Layer):
    """XNOR-Net++'s learned static scaling of a binary conv's output (Real-to-Binary's
    strong baseline).

    The output is multiplied by one learned factor per channel, initialised to 1; it
    does not depend on the input, and LCE folds it into the `LceBconv2d`'s output
    multiplier. `spatial=True` also learns one factor per row and one per column
    (`Gamma = alpha (x) beta (x) gamma`, as larq-zoo's strong baseline): for training
    only, because LCE 0.16 folds any constant multiply that follows a binary conv into
    that per-channel multiplier without checking its shape, and the flatbuffer then
    fails to load (`NumDimensions(post_activation_multiplier) != 1`).

    # Arguments
        spatial: Also learn the per-row and per-column factors (needs a static input
            height and width; not deployable with LCE 0.16, see above).
        regularizer: Optional regularizer of the factors.
        **kwargs: Standard `tf.keras.layers.Layer` arguments (`name`, ...).

    # Input shape
        4D tensor `(batch, H, W, C)`.

    # Output shape
        The input shape.

    # Example
        ```python
        x = tf.keras.Input((32, 32, 64))
        y = LearnedRescale()(BinaryConv2D(64, 3)(x))
        ```
    """

    def __init__(self, spatial: bool = False, regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spatial = bool(spatial)
        self.regularizer = tf.keras.regularizers.get(regularizer)

    def build(self, input_shape: tf.TensorShape) -> None:
        _, height, width, channels = _check_4d(type(self).__name__, input_shape)
        # (C,), not (1, 1, C): LCE folds the factor into the bconv as it is, and its
        # output multiplier must be 1D.
        shapes = {"scale_c": (int(channels),)}
        if self.spatial:
            if height is None or width is None:
                raise ValueError(
                    "LearnedRescale(spatial=True) learns one factor per row and column and "
                    f"needs a static height and width, got input shape {input_shape}."
                )
            shapes.update(scale_h=(int(height), 1, 1), scale_w=(1, int(width), 1))
        self.scales = [
            self.add_weight(
                name=name, shape=shape, initializer="ones", regularizer=self.regularizer
            )
            for name, shape in shapes.items()
        ]
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        scale = self.scales[0]
        for factor in self.scales[1:]:
            scale = scale * factor
        return inputs * tf.cast(scale, inputs.dtype)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "spatial": self.spatial,
            "regularizer": tf.keras.regularizers.serialize(self.regularizer)
            if self.regularizer is not None
            else None,
        }


def scaling_ops(layer: tf.keras.layers.Layer) -> int:
    """Float operations of one `ChannelGating` or `LearnedRescale` layer (0 for others).

    Counted as `el_larq.summary` counts Elastic-Link's work, one per add or multiply:
    gating's pool (one add per input value), its two dense layers (MACs), one sigmoid
    per channel and one multiply per output value; a spatial rescale's multiply per
    output value. A per-channel rescale is folded into the binary conv: 0.

    # Arguments
        layer: A built Keras layer.

    # Returns
        The number of float operations per image.

    # Example
        ```python
        extra = sum(scaling_ops(layer) for layer in model.layers)
        ```
    """
    if isinstance(layer, ChannelGating):
        conv_input, conv_output = (tf.TensorShape(shape) for shape in layer.input_shape)
        co = int(conv_output[-1])
        pool = int(np.prod(conv_input[1:]))
        dense = int(conv_input[-1]) * layer.hidden + layer.hidden * co
        return pool + dense + co + int(np.prod(conv_output[1:]))
    if isinstance(layer, LearnedRescale) and layer.spatial:
        return int(np.prod(tf.TensorShape(layer.input_shape)[1:]))
    return 0
