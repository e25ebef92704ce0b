"""LCE's converter on one traced inference function, with its own error lines captured."""

from __future__ import annotations

import contextlib
import math
import re
import tempfile
from collections.abc import Iterator
from typing import Any

import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

from el_larq.io import captured_stderr
from el_larq.layers import same_padding
from el_larq.safety import DeploymentError

__all__ = ["convert"]


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


def _k_batch_norms(model: tf.keras.Model) -> list[tuple[Any, Any]]:
    """(BinaryConv2D with K, the BatchNorm that alone consumes it) pairs of `model`."""
    from el_larq.deploy.kinds import walk_layers
    from el_larq.layers import BinaryConv2D

    pairs = []
    for conv in walk_layers(model):
        if not (
            isinstance(conv, BinaryConv2D)
            and conv.activation_scaling
            and len(conv._inbound_nodes) == 1
            and len(conv._outbound_nodes) == 1
        ):
            continue
        norm = conv._outbound_nodes[0].outbound_layer
        if (
            isinstance(norm, tf.keras.layers.BatchNormalization)
            and len(norm._inbound_nodes) == 1
            and tuple(np.atleast_1d(norm.axis)) in ((-1,), (3,))
        ):
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
    from el_larq.deploy.kinds import walk_layers

    quantized = (lq.layers.QuantConv2D, lq.layers.QuantDepthwiseConv2D)
    found = []
    for norm in walk_layers(model):
        if not (
            isinstance(norm, tf.keras.layers.BatchNormalization)
            and len(norm._inbound_nodes) == 1
            and len(norm._outbound_nodes) == 1
            and tuple(np.atleast_1d(norm.axis)) in ((-1,), (3,))
        ):
            continue
        conv = norm._outbound_nodes[0].outbound_layer
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


def _convert_traced(model: tf.keras.Model, target: str) -> bytes:
    """`lce.convert_keras_model`, minus its Keras SavedModel export, on the model as
    traced for deployment (`_unfused_paddings`, `_k_batch_norms_folded`,
    `_input_norms_as_thresholds`).

    `convert_keras_model` saves the model with `model.save(save_format="tf")`, which
    traces every layer's call functions for revival: minutes for a ResNet50. The
    converter needs only one inference function, so that is all we save (about 3x
    faster on EL-ResNet50); the conversion itself is LCE's `convert_saved_model`.
    """
    with (
        _unfused_paddings(model),
        _k_batch_norms_folded(model),
        _input_norms_as_thresholds(model),
    ):
        if len(model.inputs) != 1:
            return lce.convert_keras_model(model, target=target)
        return _convert_saved_model(model, target)


def _convert_saved_model(model: tf.keras.Model, target: str) -> bytes:
    spec = tf.TensorSpec((None, *model.input_shape[1:]), model.inputs[0].dtype)
    serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    module = tf.Module()
    module.model_variables = model.variables  # tracked, so the SavedModel holds them
    with tempfile.TemporaryDirectory() as saved_model_dir:
        tf.saved_model.save(module, saved_model_dir, signatures=serve.get_concrete_function())
        return lce.convert_saved_model(saved_model_dir, target=target)


def convert(model: tf.keras.Model, *, target: str = "arm") -> tuple[bytes, list[str]]:
    """Convert a Keras model with LCE and return the converter's error messages too.

    LCE's converter may print an error (e.g. "Invalid binary grouped convolution") and
    still emit a float op in place of a binary one, so its messages are returned for the
    report; the flatbuffer itself is checked by `census`.

    # Arguments
        model: A Keras model with larq / el_larq layers.
        target: `"arm"` (ARM64 and x86 hosts) or `"xcore"`.

    # Returns
        `(flatbuffer, messages)`: the `.tflite` bytes and the converter's `error:` /
        `warning:` lines, de-duplicated.

    # Example
        ```python
        flatbuffer, messages = convert(model)
        ```
    """
    if target not in ("arm", "xcore"):
        raise DeploymentError(f"unknown target '{target}'; valid targets: arm, xcore")
    with captured_stderr() as lines:
        flatbuffer = _convert_traced(model, target)
    messages = []
    for line in lines:
        found = re.search(r"\b(error|warning): (.*)$", line)
        if found and f"{found.group(1)}: {found.group(2)}" not in messages:
            messages.append(f"{found.group(1)}: {found.group(2).strip()}")
    return flatbuffer, messages
