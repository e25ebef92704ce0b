"""el_larq.lce against the real converter and LCE interpreter: census, verification, loading."""

import os
import stat

import h5py
import numpy as np
import pytest
import tensorflow as tf
from larq_compute_engine.mlir.python import tflite_schema

from el_larq import lce
from el_larq.deploy.profile import as_if_trained
from el_larq.layers import BinaryConv2D, el_conv
from el_larq.summary import model_summary
from el_larq.zoo import get_model

RNG = np.random.default_rng(0)
BUILTIN = tflite_schema.BuiltinOperator


def mixed_model() -> tf.keras.Model:
    """Every kind of conv the census tells apart, at 16 px."""
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(64, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = el_conv(x, 16, 1, activation_scaling=True, name="reduce")  # Squeeze + K
    x = el_conv(x, 16, 3, strides=2, name="spatial")  # Identity
    # 16 input channels per group (< 32): LCE cannot make this an LceBconv2d.
    x = BinaryConv2D(32, 3, groups=2, name="grouped")(x)
    x = el_conv(x, 64, 1, name="expand")  # Expand
    x = el_conv(x, None, 3, depthwise=True, activation="relu", name="dw")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, name="classifier")(x)
    return as_if_trained(tf.keras.Model(inputs, outputs))


@pytest.fixture(scope="module")
def mixed():
    model = mixed_model()
    flatbuffer, messages = lce.convert(model)
    return model, flatbuffer, messages


# ---------------------------------------------------------------- census
def test_census_names_the_grouped_binary_conv_that_fell_back_to_float(mixed):
    model, flatbuffer, messages = mixed
    report = lce.census(model, flatbuffer, messages)
    assert report.fallback == [("grouped", "CONV_2D")]
    assert sorted(report.accelerated) == ["expand_conv", "reduce_conv", "spatial_conv"]
    assert report.ops["LceBconv2d"] == 3
    # LCE says why on stderr while still emitting the float conv; we keep its words.
    assert any("grouped convolution" in message for message in report.converter_messages)
    assert "NOT accelerated: grouped became CONV_2D" in lce.format_census(report)


def test_census_reports_float_and_binary_depthwise_layers_separately(mixed):
    model, flatbuffer, _ = mixed
    report = lce.census(model, flatbuffer)
    assert report.float_kept == [("stem", "CONV_2D"), ("classifier", "FULLY_CONNECTED")]
    assert report.binary_not_accelerated == [("dw_conv", "DEPTHWISE_CONV_2D")]
    assert report.has_binary


def test_census_of_a_float_model_finds_nothing_binary():
    inputs = tf.keras.Input((8, 8, 3))
    x = el_conv(inputs, 16, 3, binary=False, name="a")
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4, name="classifier")(x))
    flatbuffer, _ = lce.convert(model)
    report = lce.census(model, flatbuffer)
    assert not report.has_binary and not report.fallback and not report.accelerated
    assert report.float_kept == [
        ("a_conv", "CONV_2D"),
        ("dw", "DEPTHWISE_CONV_2D"),
        ("classifier", "FULLY_CONNECTED"),
    ]


@pytest.mark.parametrize("name", ["el_resnet26", "el_mobilenet"])
def test_zoo_model_converts_with_census_and_verification_passing(name):
    model = as_if_trained(get_model(name, input_shape=(16, 16, 3), num_classes=10, width=0.25))
    flatbuffer, messages = lce.convert(model)
    report = lce.census(model, flatbuffer, messages)
    binary = [layer for layer in lce.walk_layers(model) if lce.layer_kind(layer) == "binary"]
    assert not report.fallback
    assert sorted(report.accelerated) == sorted(layer.name for layer in binary)
    assert report.ops["LceBconv2d"] == len(binary) > 0
    assert "?" not in dict(report.float_kept + report.binary_not_accelerated).values()
    check = lce.verify(model, flatbuffer, lce.random_inputs(model, 8))
    assert check.passed, check.summary()
    assert check.top1_agreement == 1.0


# ---------------------------------------------------------------- verification
def test_verification_passes_for_the_model_and_fails_for_another(mixed):
    model, flatbuffer, _ = mixed
    x = lce.random_inputs(model, 8)
    check = lce.verify(model, flatbuffer, x)
    assert check.passed, check.summary()
    assert check.samples == 8 and check.max_abs < 1e-3 * check.scale
    # Same architecture, other weights: the flatbuffer no longer matches the model.
    other = mixed_model()
    other.set_weights([w + RNG.normal(0, 0.5, w.shape) for w in other.get_weights()])
    mismatch = lce.verify(other, flatbuffer, x)
    assert not mismatch.passed
    assert "FAIL" in mismatch.summary()


def test_untrained_batchnorms_are_detected():
    inputs = tf.keras.Input((8, 8, 32))
    model = tf.keras.Model(inputs, el_conv(inputs, 32, 3, name="a"))
    assert lce.untrained_batchnorms(model) == ["a_bn"]
    assert lce.untrained_batchnorms(as_if_trained(model)) == []


def test_size_report_compares_with_float32_weights(mixed):
    model, flatbuffer, _ = mixed
    size = lce.size_report(model, flatbuffer)
    assert size["flatbuffer_bytes"] == len(flatbuffer)
    assert size["float32_bytes"] == 4 * model.count_params()
    assert size["ratio"] == pytest.approx(size["float32_bytes"] / len(flatbuffer))


# ---------------------------------------------------------------- int8 weights
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
    small, quantized = lce.quantize_weights(flatbuffer, min_elements=0, keep_input_layers=False)
    # stem conv, binary depthwise, classifier; not the grouped conv that LCE kept float
    # (TFLite has no hybrid grouped conv)
    assert [weight.op for weight in quantized] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
    ]
    assert lce.op_counts(small) == lce.op_counts(flatbuffer)
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
    assert lce.weight_bytes(small)["LceBconv2d"] == lce.weight_bytes(flatbuffer)["LceBconv2d"]
    # The binary depthwise kernel's +-1 weights are stored exactly, the float ones nearly.
    errors = {weight.op: weight.max_abs_error for weight in quantized}
    assert errors["DEPTHWISE_CONV_2D"] == 0
    assert 0 < errors["CONV_2D"] < 0.01 and 0 < errors["FULLY_CONNECTED"] < 0.01

    # The int8 weights are what runs: further from Keras than float32 rounding. (How far
    # is no test here: a random BNN flips signs chaotically; see the float model below and
    # docs/deployment.md for a trained one.)
    x = lce.random_inputs(model, 16)
    exact = lce.verify(model, flatbuffer, x)
    assert lce.verify(model, small, x).mean_abs > 100 * exact.mean_abs
    # Nothing float is left, so a second pass changes nothing.
    assert lce.quantize_weights(small, min_elements=0, keep_input_layers=False) == (small, [])


def test_int8_weights_keep_a_float_model_within_a_percent_with_and_without_xnnpack():
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(32, 3, strides=2, activation="relu")(inputs)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = tf.keras.layers.Conv2D(64, 1, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))
    everything = dict(min_elements=0, keep_input_layers=False)
    small, quantized = lce.quantize_weights(lce.convert(model)[0], **everything)
    assert len(quantized) == 4 and all(weight.int8 for weight in quantized)
    x = lce.random_inputs(model, 16)
    check = lce.verify(model, small, x)  # the float32 tolerance: 1 % of the output range
    assert check.passed and check.top1_agreement == 1.0, check.summary()
    assert check.mean_abs > 1e-4 * check.scale  # int8, not float32 rounding
    xnnpack = lce.make_interpreter(small, xnnpack=True).predict(x)
    assert np.abs(xnnpack - model.predict(x, verbose=0)).mean() <= 0.01 * check.scale


def test_int8_weights_shared_by_two_convs_are_quantized_once_and_serve_both():
    inputs = tf.keras.Input((8, 8, 4))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(4, 3, padding="same", name="b")(x))
    model.get_layer("b").set_weights(model.get_layer("a").get_weights())
    flatbuffer, _ = lce.convert(model)  # the converter keeps one constant for both convs
    small, quantized = lce.quantize_weights(flatbuffer, min_elements=0, keep_input_layers=False)
    assert len(quantized) == 1 and lce.op_counts(small)["CONV_2D"] == 2
    check = lce.verify(model, small, lce.random_inputs(model, 4))
    assert check.passed and check.mean_abs > 1e-5 * check.scale, check.summary()


def test_int8_weights_keep_the_stem_and_small_tensors_float_unless_asked():
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(64, 3, padding="same", name="stem")(inputs)  # 1,728 weights
    x = tf.keras.layers.Conv2D(256, 1, name="big")(x)  # 16,384 weights
    x = tf.keras.layers.Conv2D(16, 1, name="small")(x)  # 4,096 weights
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    flatbuffer, _ = lce.convert(tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x)))
    small, weights = lce.quantize_weights(flatbuffer)
    decided = {w.shape: (w.int8, w.reason) for w in weights}
    assert decided[(64, 3, 3, 3)] == (False, "reads the model input")
    assert decided[(256, 1, 1, 64)] == (True, "")
    assert decided[(16, 1, 1, 256)] == (False, "4096 < 16384 weights")
    assert decided[(10, 16)] == (False, "160 < 16384 weights")
    int8 = {name for name, (kind, _) in _tensor_types(small).items() if kind == 9}
    assert int8 == {w.tensor for w in weights if w.int8}
    text = lce.format_quantized(weights)
    assert "int8 weights: 1 tensors (CONV_2D x1)" in text and "kept float32: 3 tensors" in text
    # `only` quantizes exactly the named tensors (one layer at a time, for measuring).
    stem = next(w.tensor for w in weights if w.shape == (64, 3, 3, 3))
    _, only = lce.quantize_weights(flatbuffer, only={stem})
    assert [w.tensor for w in only if w.int8] == [stem]
    # Nothing to quantize: the bytes come back unchanged.
    assert lce.quantize_weights(flatbuffer, min_elements=10**9)[0] == flatbuffer


def test_verification_with_labels_gates_the_labelled_top1():
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(8, 3)(inputs))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4, activation="softmax")(x))
    flatbuffer, _ = lce.convert(model)
    x = lce.random_inputs(model, 40)
    labels = model.predict(x, verbose=0).argmax(1)  # Keras is right on all of them
    check = lce.verify(model, flatbuffer, x, labels=labels)
    assert check.keras_accuracy == check.lce_accuracy == 1.0 and check.passed
    assert "labelled top-1 Keras 100.00% vs LCE 100.00%" in check.summary()
    # A flatbuffer of another model: right by chance only, so the labelled gate fails.
    other = tf.keras.models.clone_model(model)
    wrong = lce.verify(model, lce.convert(other)[0], x, labels=labels, rtol=1e9, min_top1=0)
    assert wrong.lce_accuracy < 0.9 and not wrong.passed
    with pytest.raises(lce.DeploymentError, match="3 labels for 40 inputs"):
        lce.verify(model, flatbuffer, x, labels=labels[:3])


def test_int8_weights_of_a_model_without_float_layers_change_nothing():
    inputs = tf.keras.Input((8, 8, 32))
    model = as_if_trained(tf.keras.Model(inputs, el_conv(inputs, 32, 3, name="a")))
    flatbuffer, _ = lce.convert(model)
    assert lce.quantize_weights(flatbuffer) == (flatbuffer, [])
    assert "no float32 conv or dense weights" in lce.format_quantized([])


def test_model_flops_counts_binary_macs_at_one_64th(mixed):
    model, _, _ = mixed
    flops = model_summary(model)
    assert flops["binary_macs"] > 0 and flops["float_macs"] > 0
    expected = flops["float_macs"] + flops["binary_macs"] / 64 + flops["el_ops"]
    assert flops["flops"] == pytest.approx(expected)
    # reduce (Squeeze, 16x16x16) and expand (8x8x64): 1/gamma MUL + ADD; spatial
    # (Identity, 8x8x16): ADD only; dw (Identity, 8x8x64): ADD only.
    assert flops["el_ops"] == 2 * 16 * 16 * 16 + 2 * 8 * 8 * 64 + 8 * 8 * 16 + 8 * 8 * 64


# ---------------------------------------------------------------- atomic write
class _FailsMidWrite(bytes):
    """Bytes whose second chunk cannot be read: the write dies half way."""

    def __getitem__(self, key):
        if isinstance(key, slice) and key.start:
            raise OSError("disk unplugged")
        return super().__getitem__(key)


def test_atomic_write_failing_mid_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old model")
    with pytest.raises(OSError, match="disk unplugged"):
        lce.write_atomic(target, _FailsMidWrite(b"x" * 100), chunk_size=10)
    assert target.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_atomic_write_writes_everything(tmp_path):
    target = tmp_path / "model.tflite"
    data = RNG.bytes(1000)
    assert lce.write_atomic(target, data, chunk_size=64) == 1000
    assert target.read_bytes() == data
    assert os.listdir(tmp_path) == ["model.tflite"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # like open(), not 0600


def test_atomic_write_into_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(lce.DeploymentError, match="cannot write"):
        lce.write_atomic(tmp_path / "missing" / "model.tflite", b"x")
    with pytest.raises(lce.DeploymentError, match="not a directory"):
        lce.check_writable(tmp_path / "missing" / "model.tflite")


# ---------------------------------------------------------------- loading
def _small_model():
    inputs = tf.keras.Input((8, 8, 32))
    return tf.keras.Model(inputs, el_conv(inputs, 32, 3, name="a"))


def test_lambda_model_is_refused_before_its_code_runs(tmp_path):
    marker = tmp_path / "code-ran"

    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()  # proves that the stored code ran
        return x

    inputs = tf.keras.Input((8, 8, 32))
    x = tf.keras.layers.Lambda(side_effect, name="evil")(inputs)
    tf.keras.Model(inputs, el_conv(x, 32, 3, name="a")).save(tmp_path / "lambda.h5")
    marker.unlink()
    with pytest.raises(lce.DeploymentError, match=r"Lambda layer\(s\) evil.*--allow_unsafe"):
        lce.load_model(tmp_path / "lambda.h5")
    assert not marker.exists()
    assert isinstance(lce.load_model(tmp_path / "lambda.h5", allow_unsafe=True), tf.keras.Model)


def test_lambda_in_a_saved_model_is_refused(tmp_path):
    inputs = tf.keras.Input((8, 8, 32))
    x = tf.keras.layers.Lambda(lambda t: t * 2, name="doubler")(inputs)
    tf.keras.Model(inputs, x).save(tmp_path / "sm", save_format="tf")
    with pytest.raises(lce.DeploymentError, match="doubler"):
        lce.load_model(tmp_path / "sm")


def test_keras_archive_loads_and_its_lambda_is_refused(tmp_path):
    _small_model().save(tmp_path / "good.keras")
    assert lce.load_model(tmp_path / "good.keras").count_params() == _small_model().count_params()
    inputs = tf.keras.Input((8, 8, 32))
    x = tf.keras.layers.Lambda(lambda t: t * 2, name="doubler")(inputs)
    tf.keras.Model(inputs, x).save(tmp_path / "lambda.keras")
    with pytest.raises(lce.DeploymentError, match="Lambda layer\\(s\\) doubler"):
        lce.load_model(tmp_path / "lambda.keras")


class Unregistered(tf.keras.layers.Layer):
    def call(self, x):
        return x


def test_unknown_layer_class_lists_the_registered_ones(tmp_path):
    inputs = tf.keras.Input((8, 8, 32))
    tf.keras.Model(inputs, Unregistered()(inputs)).save(tmp_path / "custom.h5")
    with pytest.raises(lce.DeploymentError, match="unknown layer class 'Unregistered'") as error:
        lce.load_model(tmp_path / "custom.h5")
    assert "BinaryConv2D" in str(error.value) and "ElasticLink" in str(error.value)


def test_bad_model_files_give_one_line_reasons(tmp_path):
    _small_model().save(tmp_path / "good.h5")
    _small_model().save_weights(tmp_path / "weights.h5")
    data = (tmp_path / "good.h5").read_bytes()
    (tmp_path / "corrupt.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "empty_dir").mkdir()
    cases = {
        "missing.h5": "no such file",
        "corrupt.h5": "not a readable HDF5 file",
        "weights.h5": "no Keras model config",
        "notes.txt": "not a Keras model",
        "empty_dir": "not a SavedModel",
    }
    for name, reason in cases.items():
        with pytest.raises(lce.DeploymentError, match=reason) as error:
            lce.load_model(tmp_path / name)
        assert "\n" not in str(error.value)
    with h5py.File(tmp_path / "good.h5") as f:
        assert "model_config" in f.attrs
    assert lce.load_model(tmp_path / "good.h5").count_params() > 0
