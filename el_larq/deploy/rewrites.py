"""Rewrites of a Keras model's inference graph, applied only while it is traced for LCE.

Each is a context manager that changes how some layers compute (never what: the same
values up to float rounding) and restores them afterwards, so that the Keras model a
user holds is untouched; `traced_for_deployment` applies all of them:

* `_unfused_paddings`: works around LCE 0.16's fuse-padding pass, which reads some
  explicitly padded strided convs one pixel off;
* `_k_batch_norms_folded`: the BatchNorm after K becomes a scale LCE folds into the
  bconv, plus a bias;
* `_input_norms_as_thresholds`: a BatchNorm that only feeds a sign becomes a threshold
  `ADD` (no `MUL`);
* `_expand_links_broadcast`: an Expand link is added to the conv output through a
  broadcasting `ADD` instead of a `CONCATENATION` of copies.

Measured effects: docs/deployment.md, section 3.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import larq as lq
import numpy as np
import tensorflow as tf

from el_larq.deploy.kinds import walk_layers
from el_larq.layers import BinaryConv2D, ElasticLink, same_padding

__all__ = ["broadcast_add", "traced_for_deployment"]


def _misfused(padding: tf.keras.layers.ZeroPadding2D) -> bool:
    """Whether LCE 0.16's fuse-padding pass would turn this padding + its conv into a
    wrong `"SAME"` conv.

    The pass folds `PAD -> CONV_2D/DEPTHWISE_CONV_2D("VALID")` into a `"SAME"` conv when
    the output size is `ceil(n / stride)` and the padding is split as SAME splits it, but
    it does not check the padding's total against SAME's. With stride 2 they differ:
    keras-applications' ResNet/DenseNet stems pad 3 + 3 before a 7x7/2 conv, where SAME
    pads 2 + 3 on an even input, so the converted stem reads the image one pixel off.
    """
    if len(padding._outbound_nodes) != 1:
        return False  # the pass needs the pad to have one use
    conv = padding._outbound_nodes[0].outbound_layer
    quantized = (lq.layers.QuantConv2D, lq.layers.QuantDepthwiseConv2D)
    if (
        not isinstance(conv, (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D))
        or isinstance(conv, quantized)
        or conv.padding != "valid"
        or conv.data_format != "channels_last"
    ):
        return False
    sizes_in, sizes_out = padding.input_shape[1:3], conv.output_shape[1:3]
    for axis in range(2):
        n, out = sizes_in[axis], sizes_out[axis]
        before, after = padding.padding[axis]
        stride, kernel = conv.strides[axis], conv.kernel_size[axis]
        if n is None or out is None:
            return False
        total = before + after
        fused = out == math.ceil(n / stride) and (before, after) == (total // 2, (total + 1) // 2)
        if fused and total != sum(same_padding(n, kernel, stride, conv.dilation_rate[axis])):
            return True
    return False


@contextlib.contextmanager
def _unfused_paddings(model: tf.keras.Model) -> Iterator[int]:
    """While tracing, pad in two `PAD`s where one would be fused wrongly (`_misfused`).

    The same zeros in the same places (after, then before), so the model's function is
    unchanged; the converter keeps two `PAD` ops, and the one before the conv pads only
    before, which the pass never takes for SAME's split (SAME pads at least as much after
    as before). Yields how many layers it changed.
    """
    layers = [
        layer
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.ZeroPadding2D) and _misfused(layer)
    ]

    def two_pads(layer):
        (top, bottom), (left, right) = layer.padding

        def call(inputs):
            x = tf.pad(inputs, [[0, 0], [0, bottom], [0, right], [0, 0]])
            return tf.pad(x, [[0, 0], [top, 0], [left, 0], [0, 0]])

        return call

    for layer in layers:
        layer.call = two_pads(layer)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.call  # the class's call again


def _sole_consumer(layer: Any) -> Any | None:
    """The layer that alone consumes `layer`'s output, if `layer` is called exactly once."""
    if len(layer._inbound_nodes) == 1 and len(layer._outbound_nodes) == 1:
        return layer._outbound_nodes[0].outbound_layer
    return None


def _channel_batch_norm(layer: Any) -> bool:
    """A BatchNormalization over the channels, called once."""
    return (
        isinstance(layer, tf.keras.layers.BatchNormalization)
        and len(layer._inbound_nodes) == 1
        and tuple(np.atleast_1d(layer.axis)) in ((-1,), (3,))
    )


def _k_batch_norms(model: tf.keras.Model) -> list[tuple[Any, Any]]:
    """(BinaryConv2D with K, the BatchNorm that alone consumes it) pairs of `model`."""
    pairs = []
    for conv in walk_layers(model):
        if isinstance(conv, BinaryConv2D) and conv.activation_scaling:
            norm = _sole_consumer(conv)
            if norm is not None and _channel_batch_norm(norm):
                pairs.append((conv, norm))
    return pairs


def _add_bias(bias: np.ndarray):
    def call(inputs, training=None):
        return inputs + tf.constant(bias, inputs.dtype)

    return call


@contextlib.contextmanager
def _k_batch_norms_folded(model: tf.keras.Model) -> Iterator[int]:
    """While tracing, apply a BatchNorm that follows K as a scale before K and a bias after.

    `BN(K y) = (y s) K + (beta - mean s)` with `s = gamma / sqrt(var + eps)` per channel:
    the same values up to float rounding, but `y s` is a per-channel `MUL` right after the
    bconv, which LCE folds into the bconv's output multiplier, where `K y` (K is per
    pixel) kept the whole BatchNorm out of it. One `MUL` over the conv's output fewer
    per K. Yields how many BatchNorms it changed.
    """
    pairs = _k_batch_norms(model)
    for conv, norm in pairs:
        scale, bias = _batch_norm_scale_and_bias(norm)
        conv._scale_before_k = scale.astype(np.float32)
        norm.call = _add_bias(bias.astype(np.float32))
    try:
        yield len(pairs)
    finally:
        for conv, norm in pairs:
            conv._scale_before_k = None
            del norm.call  # the class's call again


def _batch_norm_scale_and_bias(norm: Any) -> tuple[np.ndarray, np.ndarray]:
    """`(s, b)` with `BN(x) = x s + b` per channel at inference, in float64."""
    gamma, beta, mean, variance = (
        np.asarray(weight, np.float64)
        for weight in (
            norm.gamma if norm.scale else 1.0,
            norm.beta if norm.center else 0.0,
            norm.moving_mean,
            norm.moving_variance,
        )
    )
    scale = gamma / np.sqrt(variance + norm.epsilon)
    return scale, beta - mean * scale


_SIGN_QUANTIZERS = (lq.quantizers.SteSign, lq.quantizers.ApproxSign, lq.quantizers.SwishSign)


def _input_norms(model: tf.keras.Model) -> list[tuple[Any, Any, np.ndarray, np.ndarray]]:
    """`(BatchNorm, binary conv, s, b)` where the BatchNorm feeds only the conv's sign.

    Left out: a conv with K (K reads the normalized values, not only their signs), a
    zero `s`, and a negative `s` where the conv pads (its `pad_values` cannot follow a
    channel's flipped sign).
    """
    quantized = (lq.layers.QuantConv2D, lq.layers.QuantDepthwiseConv2D)
    found = []
    for norm in walk_layers(model):
        conv = _sole_consumer(norm) if _channel_batch_norm(norm) else None
        if not (
            isinstance(conv, quantized)
            and isinstance(conv.input_quantizer, _SIGN_QUANTIZERS)
            and len(conv._inbound_nodes) == 1
            and not getattr(conv, "activation_scaling", False)
        ):
            continue
        scale, bias = _batch_norm_scale_and_bias(norm)
        pads = conv.padding != "valid" and tuple(conv.kernel_size) != (1, 1)
        if np.all(scale != 0) and (np.all(scale > 0) or not pads):
            found.append((norm, conv, scale, bias))
    return found


@contextlib.contextmanager
def _input_norms_as_thresholds(model: tf.keras.Model) -> Iterator[int]:
    """While tracing, apply a BatchNorm that only feeds a sign as a threshold: no `MUL`.

    `sign(x s + b) = sign(s) sign(x + b / s)` per channel, so the BatchNorm becomes an
    `ADD` of `b / s`, and a channel with `s < 0` flips its sign in the conv's kernel
    instead (`_input_norms` says where that is exact). The same signs except where
    rounding moves a value across zero; one `MUL` over the conv's input fewer per
    BatchNorm (XNOR-Net's `BN -> sign -> conv` order, e.g. `el_mobilenet`). The kernel
    is restored afterwards. Yields how many BatchNorms it changed.
    """
    found = _input_norms(model)
    flipped = []
    try:
        for norm, conv, scale, bias in found:
            norm.call = _add_bias((bias / scale).astype(np.float32))
            if np.any(scale < 0):
                depthwise = isinstance(conv, lq.layers.QuantDepthwiseConv2D)
                kernel = conv.depthwise_kernel if depthwise else conv.kernel
                flipped.append((kernel, kernel.numpy()))
                signs = np.sign(scale).astype(np.float32)[None, None, :, None]
                kernel.assign(flipped[-1][1] * signs)
        yield len(found)
    finally:
        for kernel, value in flipped:
            kernel.assign(value)
        for norm, *_ in found:
            vars(norm).pop("call", None)  # the class's call again


def _expand_adds(model: tf.keras.Model) -> list[tuple[Any, Any, int]]:
    """`(Expand ElasticLink, the Add that alone consumes it, the link's input index)`.

    Left out: an Expand whose `Co` is not a whole multiple of `Ci` (it slices).
    """
    found = []
    for link in walk_layers(model):
        if not (
            isinstance(link, ElasticLink)
            and link.kind == "expand"
            and link.filters % link.input_channels == 0
        ):
            continue
        add = _sole_consumer(link)
        if not isinstance(add, tf.keras.layers.Add) or len(add._inbound_nodes) != 1:
            continue
        sources = add._inbound_nodes[0].inbound_layers
        if not isinstance(sources, list) or len(sources) != 2 or sources.count(link) != 1:
            continue
        found.append((link, add, sources.index(link)))
    return found


def _identity(x):
    return x


def broadcast_add(index: int, groups: int) -> Callable[[list[tf.Tensor]], tf.Tensor]:
    """`y + concat([x] * groups)` without the copies: the call of an Expand link's `Add`.

    # Arguments
        index: Which of the two inputs is the link's `x` (`Ci` channels); the other is
            the conv output `y` (`groups * Ci` channels).
        groups: How many copies of `x` the link adds.

    # Returns
        A function of the two inputs returning their sum with `Co` channels.

    # Example
        ```python
        y = broadcast_add(1, 4)([conv_output, link_input])  # 256 = 4 x 64 channels
        ```
    """

    def call(inputs):
        x, y = inputs[index], inputs[1 - index]
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        if height is None or width is None:
            spatial = tf.shape(y)[1:3]
            height, width = spatial[0], spatial[1]
        grouped = tf.reshape(y, [-1, height, width, groups, channels])
        grouped += tf.reshape(x, [-1, height, width, 1, channels])
        return tf.reshape(grouped, [-1, height, width, groups * channels])

    return call


@contextlib.contextmanager
def _expand_links_broadcast(model: tf.keras.Model) -> Iterator[int]:
    """While tracing, add an Expand link's `Ci` channels to each group of the conv output.

    `y + concat([x] * g)` is `y` viewed as `(H, W, g, Ci)` plus `x` broadcast over the g
    groups: the same sums, without writing the `Co`-channel copy (`RESHAPE`s instead of
    a `CONCATENATION`). The link returns its scaled, pooled input; the Add broadcasts it.
    Yields how many links it changed.
    """
    found = _expand_adds(model)
    for link, add, index in found:
        link._expand = _identity
        add.call = broadcast_add(index, link.groups)
    try:
        yield len(found)
    finally:
        for link, add, _ in found:
            del link._expand, add.call  # the classes' methods again


@contextlib.contextmanager
def traced_for_deployment(model: tf.keras.Model) -> Iterator[None]:
    """Every rewrite of this module at once, for the length of the `with` block.

    # Arguments
        model: The Keras model about to be traced (changed only inside the block).

    # Example
        ```python
        with traced_for_deployment(model):
            flatbuffer = lce.convert_keras_model(model)
        ```
    """
    with (
        _unfused_paddings(model),
        _k_batch_norms_folded(model),
        _input_norms_as_thresholds(model),
        _expand_links_broadcast(model),
    ):
        yield
