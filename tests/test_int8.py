"""el_larq.deploy.int8: int8 weights for the float layers LCE keeps.

Against the real converter and LCE interpreter.
"""

import numpy as np
import tensorflow as tf
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import op_counts, weight_bytes
from el_larq.deploy.host import make_interpreter
from el_larq.deploy.int8 import format_quantized, quantize_weights
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


def test_int8_weights_quantize_every_float_layer_and_nothing_else(mixed):
    model, flatbuffer, _ = mixed
    small, quantized = quantize_weights(flatbuffer, min_elements=0, keep_input_layers=False)
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
    assert quantize_weights(small, min_elements=0, keep_input_layers=False) == (small, [])


def test_int8_weights_keep_a_float_model_within_a_percent_with_and_without_xnnpack():
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(32, 3, strides=2, activation="relu")(inputs)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = tf.keras.layers.Conv2D(64, 1, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))
    everything = dict(min_elements=0, keep_input_layers=False)
    small, quantized = quantize_weights(convert(model)[0], **everything)
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
    small, quantized = quantize_weights(flatbuffer, min_elements=0, keep_input_layers=False)
    assert len(quantized) == 1 and op_counts(small)["CONV_2D"] == 2
    check = verify(model, small, random_inputs(model, 4))
    assert check.passed and check.mean_abs > 1e-5 * check.scale, check.summary()


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
    int8 = {name for name, (kind, _) in _tensor_types(small).items() if kind == 9}
    assert int8 == {w.tensor for w in weights if w.int8}
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
