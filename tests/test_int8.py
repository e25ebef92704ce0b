"""el_larq.deploy.int8: int8 weights for the float layers LCE keeps.

Against the real converter and LCE interpreter.
"""

import numpy as np
import pytest
import tensorflow as tf
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import op_counts, op_type, weight_bytes
from el_larq.deploy.host import make_interpreter
from el_larq.deploy.int8 import INT8_MODES, binary_convs_after, format_quantized, quantize_weights
from el_larq.deploy.profile import as_if_trained
from el_larq.deploy.verification import random_inputs, verify
from el_larq.layers import el_conv

BUILTIN = tflite_schema.BuiltinOperator


def _tensor_types(flatbuffer: bytes) -> dict[str, tuple[int, int]]:
    """`{op name: (weight tensor type, number of scales)}` of every float conv / dense op."""
    model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)
    found = {}
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin in (BUILTIN.CONV_2D, BUILTIN.DEPTHWISE_CONV_2D, BUILTIN.FULLY_CONNECTED):
            weights = graph.Tensors(op.Inputs(1))
            quant = weights.Quantization()
            found[weights.Name().decode()] = (weights.Type(), quant.ScaleLength() if quant else 0)
    return found


EVERYTHING = dict(min_elements=0, keep_input_layers=False, max_binary_after=None)


def test_hybrid_int8_weights_quantize_every_float_layer_and_nothing_else(mixed):
    model, flatbuffer, _ = mixed
    small, quantized = quantize_weights(flatbuffer, mode="hybrid", **EVERYTHING)
    # stem conv, binary depthwise, classifier; not the grouped conv that LCE kept float
    # (TFLite has no hybrid grouped conv)
    assert [weight.op for weight in quantized] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
    ]
    assert op_counts(small) == op_counts(flatbuffer)
    types = _tensor_types(small)
    int8 = {name for name, (kind, _) in types.items() if kind == tflite_schema.TensorType.INT8}
    assert int8 == {weight.tensor for weight in quantized} and len(types) == 4
    for weight in quantized:  # per output channel for convs, one scale for the dense layer
        channels = (
            1
            if weight.op == "FULLY_CONNECTED"
            else weight.shape[3 if weight.op == "DEPTHWISE_CONV_2D" else 0]
        )
        assert types[weight.tensor][1] == channels
        assert weight.int8_bytes * 4 == weight.float32_bytes
    # Three quarters of every weight's bytes go; each scale and zero point costs 12 bytes,
    # alignment a few hundred at most.
    saved = sum(weight.float32_bytes - weight.int8_bytes for weight in quantized)
    scales = sum(types[weight.tensor][1] for weight in quantized)
    assert 0 < len(small) - (len(flatbuffer) - saved) <= 12 * scales + 512
    assert weight_bytes(small)["LceBconv2d"] == weight_bytes(flatbuffer)["LceBconv2d"]
    # The binary depthwise kernel's +-1 weights are stored exactly, the float ones nearly.
    errors = {weight.op: weight.max_abs_error for weight in quantized}
    assert errors["DEPTHWISE_CONV_2D"] == 0
    # Reports name each by its Keras layer (the op's output), whatever the constant's name.
    layers = {weight.op: weight.label for weight in quantized}
    assert "/stem" in layers["CONV_2D"] and "/dw_" in layers["DEPTHWISE_CONV_2D"]
    assert layers["FULLY_CONNECTED"] == "FULLY_CONNECTED of the model output"
    assert 0 < errors["CONV_2D"] < 0.01 and 0 < errors["FULLY_CONNECTED"] < 0.01

    # The int8 weights are what runs: further from Keras than float32 rounding. (How far
    # is no test here: a random BNN flips signs chaotically; see the float model below and
    # docs/deployment.md for a trained one.)
    x = random_inputs(model, 16)
    exact = verify(model, flatbuffer, x)
    assert verify(model, small, x).mean_abs > 100 * exact.mean_abs
    # Nothing float is left, so a second pass changes nothing.
    assert quantize_weights(small, mode="hybrid", **EVERYTHING) == (small, [])


def test_hybrid_int8_weights_keep_a_float_model_within_a_percent_with_and_without_xnnpack():
    model = _float_model()
    small, quantized = quantize_weights(convert(model)[0], mode="hybrid", **EVERYTHING)
    assert len(quantized) == 4 and all(weight.int8 for weight in quantized)
    x = random_inputs(model, 16)
    check = verify(model, small, x)  # the float32 tolerance: 1 % of the output range
    assert check.passed and check.top1_agreement == 1.0, check.summary()
    assert check.mean_abs > 1e-4 * check.scale  # int8, not float32 rounding
    xnnpack = make_interpreter(small, xnnpack=True).predict(x)
    assert np.abs(xnnpack - model.predict(x, verbose=0)).mean() <= 0.01 * check.scale


def test_int8_weights_shared_by_two_convs_are_quantized_once_and_serve_both():
    inputs = tf.keras.Input((8, 8, 4))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(4, 3, padding="same", name="b")(x))
    model.get_layer("b").set_weights(model.get_layer("a").get_weights())
    flatbuffer, _ = convert(model)  # the converter keeps one constant for both convs
    for mode in INT8_MODES:
        small, quantized = quantize_weights(flatbuffer, mode=mode, **EVERYTHING)
        assert len(quantized) == 1 and op_counts(small)["CONV_2D"] == 2
        assert op_counts(small).get("DEQUANTIZE", 0) == (mode == "dequantize")
        check = verify(model, small, random_inputs(model, 4))
        assert check.passed and check.mean_abs > 1e-5 * check.scale, check.summary()


def _float_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(32, 3, strides=2, activation="relu")(inputs)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = tf.keras.layers.Conv2D(64, 1, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))


def _rounded_copy(model: tf.keras.Model) -> tf.keras.Model:
    """The model with every kernel rounded to int8, one scale per output channel."""
    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in copy.layers:
        if not layer.weights:
            continue
        kernel, *rest = layer.get_weights()
        # output channels: last axis (Conv2D, Dense), the input-channel axis (depthwise)
        axis = 2 if isinstance(layer, tf.keras.layers.DepthwiseConv2D) else kernel.ndim - 1
        others = tuple(i for i in range(kernel.ndim) if i != axis)
        scale = np.abs(kernel).max(axis=others, keepdims=True) / 127
        layer.set_weights([np.round(kernel / scale) * scale, *rest])
    return copy


def test_dequantize_mode_runs_the_float_net_on_int8_rounded_weights():
    model = _float_model()
    flatbuffer, _ = convert(model)
    small, quantized = quantize_weights(flatbuffer, **EVERYTHING)  # the default mode
    assert len(quantized) == 4 and all(weight.int8 for weight in quantized)
    # The float ops stay; one DEQUANTIZE per weight tensor feeds each its float weights.
    counts = op_counts(small)
    assert counts.pop("DEQUANTIZE") == 4 and counts == op_counts(flatbuffer)
    # Per-channel scales everywhere, the dense layer included.
    types = _tensor_types(small)
    assert all(kind == tflite_schema.TensorType.FLOAT32 for kind, _ in types.values())
    assert sum(w.int8_bytes for w in quantized) * 4 == sum(w.float32_bytes for w in quantized)
    # A scale and a zero point (12 bytes) per channel, a tensor and an op per weight.
    scales = sum(w.shape[3 if w.op == "DEPTHWISE_CONV_2D" else 0] for w in quantized)
    saved = sum(w.float32_bytes - w.int8_bytes for w in quantized)
    assert saved >= len(flatbuffer) - len(small) >= saved - 12 * scales - 1024
    # Sizes by op: the int8 bytes count for the float op that reads them.
    before, after = weight_bytes(flatbuffer), weight_bytes(small)
    assert "DEQUANTIZE" not in after and set(after) == set(before)
    assert sum(before.values()) - sum(after.values()) == saved
    # What runs is exactly the float net with the rounded weights: float32 rounding
    # away from a Keras copy holding them, int8 rounding away from the original.
    x = random_inputs(model, 16)
    rounded = _rounded_copy(model).predict(x, verbose=0)
    for xnnpack in (False, True):
        out = make_interpreter(small, xnnpack=xnnpack).predict(x)
        scale = np.abs(rounded).max()
        assert np.abs(out - rounded).max() <= 1e-5 * scale
        assert np.abs(out - model.predict(x, verbose=0)).max() > 1e-4 * scale
    assert quantize_weights(small, **EVERYTHING) == (small, [])


def test_int8_weights_in_front_of_many_binary_convs_stay_float(mixed):
    model, flatbuffer, _ = mixed
    # stem -> reduce, spatial (binary) -> grouped (float) -> expand (binary) -> dw -> dense
    tflite = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(flatbuffer, 0))
    graph = tflite.subgraphs[0]
    after = binary_convs_after(tflite, graph)
    counts = [
        (op_type(tflite, op), n)
        for op, n in zip(graph.operators, after, strict=True)
        if op_type(tflite, op) in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    ]  # reduce, spatial and expand after the stem; the grouped conv is float
    assert counts == [
        ("CONV_2D", 3),
        ("CONV_2D", 1),
        ("DEPTHWISE_CONV_2D", 0),
        ("FULLY_CONNECTED", 0),
    ]
    _, weights = quantize_weights(
        flatbuffer, min_elements=0, keep_input_layers=False, max_binary_after=1
    )
    stem, grouped, depthwise, dense = weights  # in the graph's order
    assert stem.reason == "3 binary convs after it > 1" and not stem.int8
    assert grouped.int8 and depthwise.int8 and dense.int8
    # The binary convs LCE kept float (grouped, depthwise) hold +-c per channel, exact
    # in int8: quantized wherever they are and however small.
    _, weights = quantize_weights(flatbuffer, min_elements=10**9, max_binary_after=0)
    assert [w.op for w in weights if w.int8] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert all(w.max_abs_error < 1e-6 for w in weights if w.int8)


def test_int8_mode_must_be_known(mixed):
    with pytest.raises(ValueError, match="int8 mode must be one of dequantize, hybrid"):
        quantize_weights(mixed[1], mode="int4")


def test_int8_weights_keep_the_stem_and_small_tensors_float_unless_asked():
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(64, 3, padding="same", name="stem")(inputs)  # 1,728 weights
    x = tf.keras.layers.Conv2D(256, 1, name="big")(x)  # 16,384 weights
    x = tf.keras.layers.Conv2D(16, 1, name="small")(x)  # 4,096 weights
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    flatbuffer, _ = convert(tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x)))
    small, weights = quantize_weights(flatbuffer)
    decided = {w.shape: (w.int8, w.reason) for w in weights}
    assert decided[(64, 3, 3, 3)] == (False, "reads the model input")
    assert decided[(256, 1, 1, 64)] == (True, "")
    assert decided[(16, 1, 1, 256)] == (False, "4096 < 16384 weights")
    assert decided[(10, 16)] == (False, "160 < 16384 weights")
    graph = tflite_schema.Model.GetRootAsModel(small, 0).Subgraphs(0)
    tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    int8 = {t.Name().decode() for t in tensors if t.Type() == tflite_schema.TensorType.INT8}
    assert int8 == {f"{w.tensor}_int8" for w in weights if w.int8}
    text = format_quantized(weights)
    assert "int8 weights: 1 tensors (CONV_2D x1)" in text and "kept float32: 3 tensors" in text
    # `only` quantizes exactly the named tensors (one layer at a time, for measuring).
    stem = next(w.tensor for w in weights if w.shape == (64, 3, 3, 3))
    _, only = quantize_weights(flatbuffer, only={stem})
    assert [w.tensor for w in only if w.int8] == [stem]
    # Nothing to quantize: the bytes come back unchanged.
    assert quantize_weights(flatbuffer, min_elements=10**9)[0] == flatbuffer


def test_int8_weights_of_a_model_without_float_layers_change_nothing():
    inputs = tf.keras.Input((8, 8, 32))
    model = as_if_trained(tf.keras.Model(inputs, el_conv(inputs, 32, 3, name="a")))
    flatbuffer, _ = convert(model)
    assert quantize_weights(flatbuffer) == (flatbuffer, [])
    assert "no float32 conv or dense weights" in format_quantized([])
