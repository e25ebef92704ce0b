"""Elastic-Link layers (Hu et al., "Elastic-Link for Binarized Neural Network", AAAI 2022).

The paper's module (eq. 4) is

    EL(x) = BN(BinConv(x)) + SEI(x) / gamma

and lives here as three pieces:

* `ElasticLink`: the `SEI(x) / gamma` shortcut (Squeeze, Expand or Identity, with
  the 2x2 max-pool of the downsampling case),
* `BinaryConv2D`: a `larq.layers.QuantConv2D` with the defaults Larq Compute Engine
  turns into an `LceBconv2d`, plus XNOR-Net's optional scaling factors K and alpha
  (eq. 3),
* `el_conv`: the functional unit `conv -> BatchNorm -> + ElasticLink(x) [-> ReLU]`
  that every model in `el_larq.zoo` is built from.
"""

from __future__ import annotations

import math
from typing import Any

import larq as lq
import tensorflow as tf

__all__ = ["BinaryConv2D", "BinaryDepthwiseConv2D", "ElasticLink", "el_conv"]

GAMMA_ON = ("squeeze_expand", "all", "none")


def _check_4d(layer: str, input_shape: tf.TensorShape) -> tf.TensorShape:
    input_shape = tf.TensorShape(input_shape)
    if input_shape.rank != 4 or input_shape[-1] is None:
        raise ValueError(
            f"{layer} expects a 4D input (batch, height, width, channels) with a known "
            f"number of channels, got shape {input_shape}."
        )
    return input_shape


class _StaticCall:
    """Mixin for layers whose `call` has no tensor-dependent Python control flow.

    Keras runs every call of a user-defined layer through AutoGraph, at each use in a
    functional model and in every traced training step. These layers gain nothing from
    it, and converting them was ~40 % of the time `elasticize` takes on DenseNet121.
    """

    def _should_use_autograph(self) -> bool:  # tf_keras.layers.Layer's hook
        return False


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after): what `"same"` padding adds on one axis of length `size`.

    TensorFlow's rule: the total makes the output `ceil(size / stride)` long, and the
    odd pixel goes after. Used where explicit padding is compared with it (`elasticize`,
    `el_larq.deploy.rewrites`).
    """
    span = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _positive_int(layer: str, what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{layer}: `{what}` must be a positive integer, got {value!r}.")
    return value


@lq.utils.register_keras_custom_object
class ElasticLink(_StaticCall, tf.keras.layers.Layer):
    """The Elastic-Link shortcut `SEI(x) / gamma` (paper section "Elastic-Link", eq. 4-5).

    It carries the real-valued input `x` of a binarized convolution, with `Ci`
    channels, to that convolution's `filters` (`Co`) output channels so that it
    can be added to `BN(BinConv(x))`:

    * **Identity** (`Ci == Co`): `x` itself, no gamma (as Bi-Real Net), or `x / gamma`
      with gamma initialised to 1 (eq. 5's `ceil(Ci / Co)`) with `gamma_on="all"`:
      the paper's text speaks of "the gamma scaling after the Squeeze, Expand or
      Identity operation", so both readings are offered.
    * **Squeeze** (`Ci > Co`): `g = ceil(Ci / Co)`; `x` is zero-padded on the
      channel axis to `g * Co` channels, cut into `g` consecutive chunks of `Co`
      channels, and the chunks are summed. The paper's text can also be read as
      summing `g` neighbouring channels; both give every output channel the sum of
      `g` inputs and differ only by a fixed channel permutation. Chunk-sum is the
      exact transpose of Expand, and `g` is then "the number of groups" that the
      paper initialises gamma with.
    * **Expand** (`Ci < Co`): `g = ceil(Co / Ci)`; `x` is repeated `g` times along
      the channel axis and the first `Co` channels are kept.

    With `strides > 1` a `strides x strides` max-pool with the same stride (2x2,
    stride 2 in the paper) is applied first. It uses `"same"` padding so that odd
    sizes (7x7 -> 4x4) match a strided `"same"` convolution. `pool="avg"` gives
    Bi-Real Net's average-pooled shortcut instead (the S-ResNet26 baseline).

    Squeeze and Expand are divided by one learnable scalar gamma initialised to
    `g` (eq. 5). The division is written as a multiplication by `1 / gamma`, which
    TFLite folds into a single MUL by a constant, on the side with fewer channels.

    # Arguments
        filters: Integer, the output channels `Co` of the convolution this link
            bypasses.
        strides: Integer, the stride of that convolution (1 or the pooling factor).
        gamma_trainable: Whether gamma is learned (Table 2's gamma_l column) or
            frozen at its initial value.
        pool: `"max"` (the paper's EL) or `"avg"` (Bi-Real Net) pooling when strided.
        gamma_on: Which links carry a gamma: `"squeeze_expand"` (eq. 5, no gamma on
            Identity), `"all"` (Identity too, initialised to 1) or `"none"` (a plain
            Squeeze / Expand / Identity; e.g. ReActNet's shortcut that adds the same
            input to both halves of a doubled output is an Expand without gamma).
        **kwargs: Standard `tf.keras.layers.Layer` arguments (`name`, ...).

    # Input shape
        4D tensor `(batch, height, width, Ci)`.

    # Output shape
        4D tensor `(batch, ceil(height / strides), ceil(width / strides), filters)`.

    # Example
        ```python
        x = tf.keras.Input((28, 28, 64))
        y = BinaryConv2D(16, 1)(x)
        y = tf.keras.layers.BatchNormalization()(y)
        y = tf.keras.layers.Add()([y, ElasticLink(16)(x)])  # Squeeze, gamma = 4
        ```
    """

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        gamma_trainable: bool = True,
        pool: str = "max",
        gamma_on: str = "squeeze_expand",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = _positive_int(type(self).__name__, "filters", filters)
        self.strides = _positive_int(type(self).__name__, "strides", strides)
        self.gamma_trainable = bool(gamma_trainable)
        if pool not in ("max", "avg"):
            raise ValueError(f"ElasticLink: `pool` must be 'max' or 'avg', got {pool!r}.")
        self.pool = pool
        if gamma_on not in GAMMA_ON:
            raise ValueError(
                f"ElasticLink: `gamma_on` must be one of {GAMMA_ON}, got {gamma_on!r}."
            )
        self.gamma_on = gamma_on

    @property
    def kind(self) -> str:
        """`"identity"`, `"squeeze"` or `"expand"` (known once the layer is built)."""
        return self._kind

    @property
    def groups(self) -> int:
        """`g`: channels summed per output (Squeeze), copies of the input (Expand), or 1."""
        return self._groups

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = _check_4d(type(self).__name__, input_shape)[-1]
        self.input_channels = int(channels)
        ci, co = self.input_channels, self.filters
        if ci == co:
            self._kind, self._groups = "identity", 1
        elif ci > co:
            self._kind, self._groups = "squeeze", math.ceil(ci / co)
        else:
            self._kind, self._groups = "expand", math.ceil(co / ci)
        self.gamma = None
        if {"squeeze_expand": self._kind != "identity", "all": True}.get(self.gamma_on, False):
            self.gamma = self.add_weight(
                name="gamma",
                shape=(),
                initializer=tf.keras.initializers.Constant(float(self._groups)),
                trainable=self.gamma_trainable,
            )
        super().build(input_shape)

    def _squeeze(self, x: tf.Tensor) -> tf.Tensor:
        pad = self._groups * self.filters - self.input_channels
        if pad:
            x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, pad]])
        # Static spatial sizes keep the TFLite graph free of SHAPE/CONCAT ops.
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            spatial = tf.shape(x)[1:3]
            target = tf.concat([[-1], spatial, [self._groups, self.filters]], axis=0)
        else:
            target = [-1, height, width, self._groups, self.filters]
        return tf.reduce_sum(tf.reshape(x, target), axis=3)

    def _expand(self, x: tf.Tensor) -> tf.Tensor:
        full, rest = divmod(self.filters, self.input_channels)
        # Concatenating whole copies (plus one slice of the input, not of the
        # result) avoids a TILE and a STRIDED_SLICE over the expanded tensor.
        parts = [x] * full + ([x[..., :rest]] if rest else [])
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = inputs
        if self.strides > 1:
            pool = tf.nn.max_pool2d if self.pool == "max" else tf.nn.avg_pool2d
            x = pool(x, self.strides, self.strides, padding="SAME")

        def scale(values: tf.Tensor) -> tf.Tensor:
            if self.gamma is None:
                return values
            return values * tf.math.reciprocal(tf.cast(self.gamma, values.dtype))

        # 1/gamma goes on the narrow side: after Squeeze's sum, before Expand's copies
        # (Ci instead of Co values: ~10 % of EL's training-time cost, docs/training.md).
        if self._kind == "identity":
            return scale(x)
        if self._kind == "squeeze":
            return scale(self._squeeze(x))
        return self._expand(scale(x))

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        input_shape = _check_4d(type(self).__name__, input_shape)

        def down(size):
            return None if size is None else -(-size // self.strides)

        return tf.TensorShape(
            [input_shape[0], down(input_shape[1]), down(input_shape[2]), self.filters]
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "strides": self.strides,
            "gamma_trainable": self.gamma_trainable,
            "pool": self.pool,
            "gamma_on": self.gamma_on,
        }


def _activation_scale(
    inputs: tf.Tensor, kernel_size, strides, padding: str, training=None
) -> tf.Tensor:
    """XNOR-Net's K: `avg_pool_{k x k, s}(mean_c |x|)`, shape `(batch, Ho, Wo, 1)`.

    With `"same"` padding the average is over the valid input positions only
    (TensorFlow's `avg_pool2d`), so border outputs are not shrunk by the padding.

    Two forms of `mean_c |x|`, equal up to float rounding and with the same gradient:
    `mean_c |x|` in training, and `2 mean_c relu(x) - mean_c x` (`|x| = 2 relu(x) - x`)
    otherwise, i.e. in the graph that is converted for deployment. TFLite's builtin `ABS`
    kernel is about 20x slower than `RELU` + `MEAN` on the interpreter's default path and
    was half of an EL-ResNet50's latency; in training TensorFlow's `Abs` is one fast op
    whose gradient is one op too (docs/deployment.md, section 3; docs/training.md). A 1x1
    stride-1 pool is the identity and is left out rather than left for the converter to
    copy.
    """

    def magnitude_for_training():
        return tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)

    def magnitude_for_inference():
        relu_mean = tf.reduce_mean(tf.nn.relu(inputs), axis=-1, keepdims=True)
        return 2.0 * relu_mean - tf.reduce_mean(inputs, axis=-1, keepdims=True)

    if training is None or isinstance(training, bool):
        magnitude = magnitude_for_training() if training else magnitude_for_inference()
    else:  # a symbolic learning phase
        magnitude = tf.cond(
            tf.cast(training, tf.bool), magnitude_for_training, magnitude_for_inference
        )
    if tuple(kernel_size) == (1, 1) and tuple(strides) == (1, 1):
        return magnitude
    return tf.nn.avg_pool2d(magnitude, kernel_size, strides, padding=padding.upper())


@lq.utils.register_keras_custom_object
class BinaryConv2D(_StaticCall, lq.layers.QuantConv2D):
    """A binarized 2D convolution with the defaults Larq Compute Engine accelerates.

    A `larq.layers.QuantConv2D` with `ste_sign` input and kernel quantizers (the
    paper's Sign with the straight-through estimator, eq. 1-2), a `weight_clip`
    constraint, no bias and `"same"` padding with `pad_values=1.0`: LCE converts it
    to a single `LceBconv2d` and folds a BatchNorm that follows it.

    Optionally it applies XNOR-Net's scaling factors (eq. 3):

    * `activation_scaling=True`: the output is multiplied by
      `K = avg_pool_{k x k, s}(mean_c |x|)` of the real-valued input, shape
      `(batch, Ho, Wo, 1)`. The paper applies it to the channel-reduction 1x1
      conv of each bottleneck (Table 1). The conv itself still converts to
      `LceBconv2d`; K becomes a few float ops beside it.
    * `weight_scaling=True`: the binary kernel is scaled per output channel by
      `alpha = mean |W|` (larq's `magnitude_aware_sign`), which LCE folds into the
      bconv's output multiplier.

    # Arguments
        filters: Integer, number of output channels.
        kernel_size: Integer or tuple of 2 integers.
        strides: Integer or tuple of 2 integers.
        padding: `"same"` (default) or `"valid"`.
        activation_scaling: Multiply the output by XNOR-Net's K.
        weight_scaling: Scale the binary kernel by alpha per output channel.
        **kwargs: Any other `larq.layers.QuantConv2D` argument; the quantizers,
            constraint, `use_bias` and `pad_values` defaults can be overridden.

    # Example
        ```python
        x = tf.keras.Input((32, 32, 64))
        y = BinaryConv2D(16, 1, activation_scaling=True)(x)  # K_s of Table 1
        ```
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=1,
        padding: str = "same",
        activation_scaling: bool = False,
        weight_scaling: bool = False,
        **kwargs: Any,
    ) -> None:
        _positive_int(type(self).__name__, "filters", filters)
        kwargs.setdefault("input_quantizer", "ste_sign")
        kwargs.setdefault(
            "kernel_quantizer", "magnitude_aware_sign" if weight_scaling else "ste_sign"
        )
        kwargs.setdefault("kernel_constraint", "weight_clip")
        kwargs.setdefault("use_bias", False)
        kwargs.setdefault("pad_values", 1.0)
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        self.activation_scaling = bool(activation_scaling)
        self.weight_scaling = bool(weight_scaling)
        # Per-channel factors applied before K, set only while a model is traced for
        # conversion: the scale of the BatchNorm after K, which LCE then folds into the
        # bconv's output multiplier (el_larq.deploy.conversion).
        self._scale_before_k = None

    def build(self, input_shape: tf.TensorShape) -> None:
        super().build(_check_4d(type(self).__name__, input_shape))

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        # larq's quantizers are layers too: no AutoGraph for their calls either.
        outputs = tf.autograph.experimental.do_not_convert(super().call)(inputs)
        if self.activation_scaling:
            if self._scale_before_k is not None:
                outputs = outputs * tf.constant(self._scale_before_k, outputs.dtype)
            scale = _activation_scale(
                inputs, self.kernel_size, self.strides, self.padding, training=training
            )
            outputs = outputs * tf.cast(scale, outputs.dtype)
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "activation_scaling": self.activation_scaling,
            "weight_scaling": self.weight_scaling,
        }


@lq.utils.register_keras_custom_object
class BinaryDepthwiseConv2D(_StaticCall, lq.layers.QuantDepthwiseConv2D):
    """A binarized depthwise convolution (`ste_sign` input and kernel, `pad_values=1`).

    Larq Compute Engine has no binary depthwise kernel: this layer converts to a
    float `DEPTHWISE_CONV_2D` on +-1 values (see `el_larq.deploy.census`). It is what
    binarized MobileNet uses for its depthwise convs.

    # Arguments
        kernel_size: Integer or tuple of 2 integers.
        strides: Integer or tuple of 2 integers.
        padding: `"same"` (default) or `"valid"`.
        **kwargs: Any other `larq.layers.QuantDepthwiseConv2D` argument.

    # Example
        ```python
        x = tf.keras.Input((32, 32, 64))
        y = BinaryDepthwiseConv2D(3, strides=2)(x)
        ```
    """

    def __init__(self, kernel_size, strides=1, padding: str = "same", **kwargs: Any) -> None:
        kwargs.setdefault("input_quantizer", "ste_sign")
        kwargs.setdefault("depthwise_quantizer", "ste_sign")
        kwargs.setdefault("depthwise_constraint", "weight_clip")
        kwargs.setdefault("use_bias", False)
        kwargs.setdefault("pad_values", 1.0)
        super().__init__(kernel_size, strides=strides, padding=padding, **kwargs)

    def build(self, input_shape: tf.TensorShape) -> None:
        super().build(_check_4d(type(self).__name__, input_shape))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.autograph.experimental.do_not_convert(super().call)(inputs)  # as BinaryConv2D


def el_conv(
    x: tf.Tensor,
    filters: int | None,
    kernel_size: int,
    strides: int = 1,
    *,
    padding: str = "same",
    binary: bool = True,
    conv: bool = True,
    elastic_link: bool = True,
    depthwise: bool = False,
    activation_scaling: bool = False,
    weight_scaling: bool = False,
    gamma_trainable: bool = True,
    link_pool: str = "max",
    gamma_on: str = "squeeze_expand",
    branch_activation: str | None = None,
    activation: str | None = None,
    input_norm: bool = False,
    conv_kwargs: dict[str, Any] | None = None,
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
    name: str | None = None,
) -> tf.Tensor:
    """The Elastic-Link unit: `conv -> BatchNorm [-> gating] [-> + ElasticLink(x)] [-> act]`.

    This is eq. 4 of the paper with every switch the ablations need, so that
    models never repeat this wiring. Layers are named `{name}_input_bn`, `{name}_conv`,
    `{name}_bn`, `{name}_gating`, `{name}_el`, `{name}_add` and `{name}_act`.

    # Arguments
        x: 4D input tensor (real-valued).
        filters: Output channels; ignored (`None` allowed) for depthwise convs.
        kernel_size: Kernel size of the conv.
        strides: Stride of the conv (and of the link's max-pool).
        padding: Padding of the conv. Only `"same"` keeps the spatial size that the
            link needs; `"valid"` with a kernel > 1 raises a `ValueError`.
        binary: `BinaryConv2D` / `BinaryDepthwiseConv2D` when True; a
            full-precision `Conv2D` / `DepthwiseConv2D` otherwise.
        conv: False drops the conv and its BatchNorm and returns the link alone
            (Table 4's EL-minus, "EL without the 1x1 conv"). Needs `elastic_link`.
        elastic_link: Add the `ElasticLink` shortcut of `x` to the BN output.
        depthwise: Use a depthwise conv (MobileNet); the output keeps `x`'s channels.
        activation_scaling: XNOR-Net's K on the binary conv (Table 1).
        weight_scaling: XNOR-Net's alpha on the binary kernel.
        gamma_trainable: Learn gamma (True) or keep it at its initial value.
        link_pool: Pooling of a strided link, `"max"` (EL) or `"avg"` (Bi-Real).
        gamma_on: Which links carry a gamma (`ElasticLink`): `"squeeze_expand"` (eq. 5),
            `"all"` (an Identity link too, initialised to 1) or `"none"`.
        branch_activation: Activation on the conv branch, after BN and before the
            sum (`ReLU(BN(BinConv(x))) + SEI(x) / gamma`).
        activation: Activation after the sum. Note that a ReLU here makes every
            input of the next binary conv >= 0, so its signs are all +1 unless
            that conv has `input_norm`.
        input_norm: BatchNormalization of the conv's input before it is binarized
            (XNOR-Net's `BN -> sign -> conv` order). It re-centres inputs that a
            ReLU made non-negative, so that their signs carry information; the
            link still carries the un-normalized `x`. Binary convs only.
        conv_kwargs: Extra arguments for the binary conv layer, e.g. Bi-Real Net's
            `{"input_quantizer": "approx_sign", "kernel_quantizer": "magnitude_aware_sign"}`.
        binary_weights: False uses the binary conv's latent real weights directly
            (Real-to-Binary's stage 2, ReActNet's step 1); weights are the same as with
            True, so each stage loads the previous one's. No effect on float convs.
        soft_activations: `tanh` instead of `sign` as the binary conv's input
            quantizer (Real-to-Binary's stage 2). No effect on float convs.
        gating: Real-to-Binary's data-driven channel rescaling of the binary conv's
            output (`el_larq.real_to_binary.ChannelGating`, fed the conv's real-valued
            input), after the BatchNorm, so that LCE still folds that BatchNorm into
            the `LceBconv2d`, and before the link is added.
        gating_reduction: The gating's hidden-layer reduction `r`.
        name: Prefix of the layer names.

    # Returns
        The output tensor, `(batch, ceil(H / strides), ceil(W / strides), filters)`.

    # Raises
        ValueError: bad `filters`, a non-4D input, or a link that cannot match the
            conv output (e.g. a `"valid"`-sized conv output).

    # Example
        ```python
        inputs = tf.keras.Input((28, 28, 64))
        x = el_conv(inputs, 16, 1, activation_scaling=True, name="b1_reduce")  # Squeeze
        x = el_conv(x, 16, 3, name="b1_spatial")  # Identity
        x = el_conv(x, 64, 1, name="b1_expand")  # Expand
        model = tf.keras.Model(inputs, x)
        ```
    """
    in_channels = _check_4d("el_conv", x.shape)[-1]
    if depthwise:
        filters = in_channels
    filters = _positive_int("el_conv", "filters", filters)
    if not conv and not elastic_link:
        raise ValueError("el_conv: `conv=False` (EL-minus) needs `elastic_link=True`.")
    if (activation_scaling or weight_scaling) and not (binary and conv and not depthwise):
        raise ValueError("el_conv: activation/weight scaling apply to a binary standard conv only.")
    if input_norm and not (binary and conv):
        raise ValueError("el_conv: `input_norm` normalizes the input of a binary conv only.")
    if gating and not (binary and conv):
        raise ValueError("el_conv: `gating` rescales the output of a binary conv only.")

    def layer_name(suffix: str) -> str | None:
        return f"{name}_{suffix}" if name else None

    if not conv:
        return _activate(
            ElasticLink(
                filters, strides, gamma_trainable, link_pool, gamma_on, name=layer_name("el")
            )(x),
            activation,
            layer_name,
        )

    conv_kwargs = dict(conv_kwargs or {}) if binary else {}
    if binary:  # the stage switches win over the quantizers of `conv_kwargs`
        conv_kwargs.update(stage_conv_kwargs(binary_weights, soft_activations, depthwise))
    if depthwise:
        conv_layer = (BinaryDepthwiseConv2D if binary else tf.keras.layers.DepthwiseConv2D)(
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            name=layer_name("conv"),
            **conv_kwargs,
        )
    elif binary:
        conv_layer = BinaryConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            activation_scaling=activation_scaling,
            weight_scaling=weight_scaling,
            name=layer_name("conv"),
            **conv_kwargs,
        )
    else:
        conv_layer = tf.keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            name=layer_name("conv"),
        )
    conv_input = _batch_norm(layer_name("input_bn"))(x) if input_norm else x
    y = conv_layer(conv_input)
    y = _batch_norm(layer_name("bn"))(y)
    if gating:
        y = ChannelGating(gating_reduction, name=layer_name("gating"))([conv_input, y])
    if branch_activation is not None:
        y = tf.keras.layers.Activation(branch_activation, name=layer_name("branch_act"))(y)
    if elastic_link:
        link = ElasticLink(
            filters, strides, gamma_trainable, link_pool, gamma_on, name=layer_name("el")
        )(x)
        if link.shape[1:] != y.shape[1:]:
            raise ValueError(
                f"el_conv: the Elastic-Link shortcut of input {x.shape} with stride {strides} "
                f"has shape {link.shape}, which cannot be added to the conv output {y.shape}."
            )
        y = tf.keras.layers.Add(name=layer_name("add"))([y, link])
    return _activate(y, activation, layer_name)


def _batch_norm(name: str | None) -> tf.keras.layers.BatchNormalization:
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _activate(y: tf.Tensor, activation: str | None, layer_name) -> tf.Tensor:
    if activation is None:
        return y
    return tf.keras.layers.Activation(activation, name=layer_name("act"))(y)


# Last: el_larq.real_to_binary builds on this module; importing it here registers its
# layers with Keras wherever el_conv's are.
from el_larq.real_to_binary import ChannelGating, stage_conv_kwargs  # noqa: E402
