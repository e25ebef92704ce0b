"""el_larq.deploy.census and .flatbuffer against the real converter.

Which layer became which op, sizes, and the summary's FLOPs of the same model.
"""

import pytest
import tensorflow as tf

from el_larq.deploy.census import census, format_census
from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import size_report
from el_larq.deploy.kinds import layer_kind, walk_layers
from el_larq.deploy.profile import as_if_trained
from el_larq.deploy.verification import random_inputs, verify
from el_larq.layers import el_conv
from el_larq.summary import model_summary
from el_larq.zoo import get_model


def test_census_names_the_grouped_binary_conv_that_fell_back_to_float(mixed):
    model, flatbuffer, messages = mixed
    report = census(model, flatbuffer, messages)
    assert report.fallback == [("grouped", "CONV_2D")]
    assert sorted(report.accelerated) == ["expand_conv", "reduce_conv", "spatial_conv"]
    assert report.ops["LceBconv2d"] == 3
    # LCE says why on stderr while still emitting the float conv; we keep its words.
    assert any("grouped convolution" in message for message in report.converter_messages)
    assert "NOT accelerated: grouped became CONV_2D" in format_census(report)


def test_census_reports_float_and_binary_depthwise_layers_separately(mixed):
    model, flatbuffer, _ = mixed
    report = census(model, flatbuffer)
    assert report.float_kept == [("stem", "CONV_2D"), ("classifier", "FULLY_CONNECTED")]
    assert report.binary_not_accelerated == [("dw_conv", "DEPTHWISE_CONV_2D")]
    assert report.has_binary


def test_census_of_a_float_model_finds_nothing_binary():
    inputs = tf.keras.Input((8, 8, 3))
    x = el_conv(inputs, 16, 3, binary=False, name="a")
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4, name="classifier")(x))
    flatbuffer, _ = convert(model)
    report = census(model, flatbuffer)
    assert not report.has_binary and not report.fallback and not report.accelerated
    assert report.float_kept == [
        ("a_conv", "CONV_2D"),
        ("dw", "DEPTHWISE_CONV_2D"),
        ("classifier", "FULLY_CONNECTED"),
    ]


@pytest.mark.smoke
@pytest.mark.parametrize("name", ["el_resnet26", "el_mobilenet"])
def test_zoo_model_converts_with_census_and_verification_passing(name):
    model = as_if_trained(get_model(name, input_shape=(16, 16, 3), num_classes=10, width=0.25))
    flatbuffer, messages = convert(model)
    report = census(model, flatbuffer, messages)
    binary = [layer for layer in walk_layers(model) if layer_kind(layer) == "binary"]
    assert not report.fallback
    assert sorted(report.accelerated) == sorted(layer.name for layer in binary)
    assert report.ops["LceBconv2d"] == len(binary) > 0
    assert "?" not in dict(report.float_kept + report.binary_not_accelerated).values()
    check = verify(model, flatbuffer, random_inputs(model, 8))
    assert check.passed, check.summary()
    assert check.top1_agreement == 1.0


def test_size_report_compares_with_float32_weights(mixed):
    model, flatbuffer, _ = mixed
    size = size_report(model, flatbuffer)
    assert size["flatbuffer_bytes"] == len(flatbuffer)
    assert size["float32_bytes"] == 4 * model.count_params()
    assert size["ratio"] == pytest.approx(size["float32_bytes"] / len(flatbuffer))


def test_model_flops_counts_binary_macs_at_one_64th(mixed):
    model, _, _ = mixed
    flops = model_summary(model)
    assert flops["binary_macs"] > 0 and flops["float_macs"] > 0
    expected = flops["float_macs"] + flops["binary_macs"] / 64 + flops["el_ops"]
    assert flops["flops"] == pytest.approx(expected)
    # reduce (Squeeze, 16x16x16) and expand (8x8x64): 1/gamma MUL + ADD; spatial
    # (Identity, 8x8x16): ADD only; dw (Identity, 8x8x64): ADD only.
    assert flops["el_ops"] == 2 * 16 * 16 * 16 + 2 * 8 * 8 * 64 + 8 * 8 * 16 + 8 * 8 * 64
