"""ReActNet-A / -C and EL-ReActNet: structure, switches, step 1 -> step 2 weights, LCE."""

import functools
import inspect
import subprocess
import sys
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from el_larq.deploy.census import census
from el_larq.deploy.conversion import convert
from el_larq.deploy.kinds import layer_kind
from el_larq.deploy.profile import as_if_trained
from el_larq.deploy.verification import random_inputs, verify
from el_larq.layers import ElasticLink
from el_larq.reactnet import RPReLU, RSign
from el_larq.zoo import el_reactnet, reactnet_a, reactnet_c

SMALL = dict(input_shape=(32, 32, 3), num_classes=10, width=0.25)
BUILDERS = {"reactnet_a": reactnet_a, "reactnet_c": reactnet_c, "el_reactnet": el_reactnet}
REDUCTION_BLOCKS = [1, 2, 4, 6, 12]  # 32->64 (stride 1), then the four strided ones
RNG = np.random.default_rng(0)
TO_LCE = Path(__file__).resolve().parents[1] / "convert" / "to_lce.py"


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def _trainable(model, variable) -> bool:
    return any(weight is variable for weight in model.trainable_weights)


def _binary(model):
    return [layer for layer in model.layers if layer_kind(layer) == "binary"]


# ---------------------------------------------------------------- builders
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builders_take_keyword_only_arguments(name):
    parameters = inspect.signature(BUILDERS[name]).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    common = {"input_shape", "input_tensor", "include_top", "weights", "num_classes", "width"}
    assert common | {"stem", "binary_weights", "reduction_split"} <= set(parameters)
    if name == "el_reactnet":
        assert {"reduction_conv", "gamma_trainable", "el_normal"} <= set(parameters)
        assert parameters["reduction_conv"].default == "float"
    assert parameters["binary_weights"].default is True
    with pytest.raises(TypeError):
        BUILDERS[name]((32, 32, 3))


def test_reactnet_a_blocks_channels_strides_and_names():
    model = reactnet_a(**SMALL)
    # Small stem: 3x3/1 conv and BN, no activation; the last RPReLU feeds the pool.
    assert model.get_layer("stem_conv").strides == (1, 1)
    assert not _layers(model, tf.keras.layers.Activation)
    assert model.get_layer("head_pool").input is model.get_layer("block13_out").output
    shapes = [model.get_layer(f"block{i}_out").output_shape[1:] for i in range(1, 14)]
    assert shapes == [
        (32, 32, 16),
        (16, 16, 32),
        (16, 16, 32),
        (8, 8, 64),
        (8, 8, 64),
        *[(4, 4, 128)] * 6,
        (2, 2, 256),
        (2, 2, 256),
    ]
    assert all(isinstance(model.get_layer(f"block{i}_out"), RPReLU) for i in range(1, 14))
    assert len(_layers(model, RPReLU)) == 26
    # Every binary conv is RSign -> conv with sign(W) * mean |W| per output channel.
    binary = _binary(model)
    assert len(binary) == 26
    for layer in binary:
        assert isinstance(layer.input_quantizer, RSign)
        assert isinstance(layer.kernel_quantizer, lq.quantizers.MagnitudeAwareSign)
    # The strided 3x3 shortcuts are 2x2 average pools.
    pooled = [link for link in _layers(model, ElasticLink) if link.strides == 2]
    assert [link.name for link in pooled] == [f"block{i}_3x3_el" for i in (2, 4, 6, 12)]
    assert all(link.pool == "avg" for link in pooled)


def test_reactnet_c_keeps_the_reduction_1x1_convs_real_valued():
    model = reactnet_c(**SMALL)
    for block in REDUCTION_BLOCKS:
        conv = model.get_layer(f"block{block}_1x1_conv")
        assert layer_kind(conv) == "float" and conv.kernel.shape[-2:] == (
            conv.kernel.shape[-2],
            2 * conv.kernel.shape[-2],
        )
    assert len(_binary(model)) == 21


def test_el_reduction_is_expand_over_gamma_initialised_to_two():
    el, c = el_reactnet(**SMALL), reactnet_c(**SMALL)
    for block in REDUCTION_BLOCKS:
        link = el.get_layer(f"block{block}_1x1_el")
        assert link.kind == "expand" and link.groups == 2
        assert float(link.gamma.numpy()) == 2.0 and _trainable(el, link.gamma)
        # ReActNet-C's duplicated shortcut: the same Expand without gamma.
        duplicate = c.get_layer(f"block{block}_1x1_el")
        assert duplicate.kind == "expand" and duplicate.gamma is None
    assert el.count_params() - c.count_params() == len(REDUCTION_BLOCKS)
    # With every gamma at 1, EL-ReActNet computes exactly ReActNet-C.
    as_if_trained(c)
    gammas = {id(link.gamma) for link in _layers(el, ElasticLink) if link.gamma is not None}
    values = iter(c.get_weights())
    el.set_weights([1.0 if id(w) in gammas else next(values) for w in el.weights])
    x = random_inputs(c, 4)
    np.testing.assert_allclose(el.predict(x, verbose=0), c.predict(x, verbose=0), atol=1e-6)


def test_el_reactnet_switches():
    frozen = el_reactnet(**SMALL, gamma_trainable=False)
    links = [link for link in _layers(frozen, ElasticLink) if link.gamma is not None]
    assert len(links) == 5 and not any(_trainable(frozen, link.gamma) for link in links)
    normal = el_reactnet(**SMALL, el_normal=True)
    identity = [normal.get_layer(f"block{i}_1x1_el") for i in (3, 5, 7, 8, 9, 10, 11, 13)]
    assert all(link.kind == "identity" and float(link.gamma.numpy()) == 1.0 for link in identity)
    binary = el_reactnet(**SMALL, reduction_conv="binary")
    assert len(_binary(binary)) == 26
    split = el_reactnet(**SMALL, reduction_split=True)
    block = [layer.name for layer in split.layers if layer.name.startswith("block2_1x1")]
    assert block == [
        "block2_1x1_1_conv",
        "block2_1x1_2_conv",
        "block2_1x1_1_bn",
        "block2_1x1_2_bn",
        "block2_1x1_concat",
        "block2_1x1_el",
        "block2_1x1_add",
    ]
    with pytest.raises(ValueError, match="reduction_conv must be one of"):
        el_reactnet(**SMALL, reduction_conv="grouped")


def _split_weights(joint: tf.keras.Model, split: tf.keras.Model) -> None:
    """Give `split` (two C -> C convs per reduction block) the weights of `joint` (one C -> 2C)."""
    for layer in split.layers:
        name = layer.name
        if not layer.weights:
            continue
        for half in (1, 2):
            token = f"_1x1_{half}_"
            if token in name:
                source = joint.get_layer(name.replace(token, "_1x1_")).get_weights()
                channels = layer.get_weights()[0].shape[-1]
                part = slice((half - 1) * channels, half * channels)
                # Kernels and BN vectors are cut on their output axis; RSign's beta (the
                # input's thresholds, the same binarization for both halves) is shared.
                layer.set_weights(
                    [w[..., part] if w.shape[-1] == 2 * channels else w for w in source]
                )
                break
        else:
            layer.set_weights(joint.get_layer(name).get_weights())


def test_one_joint_reduction_conv_computes_reactnets_two_convs():
    # ReActNet-A: binary halves, each with its own RSign given the one threshold set.
    joint = as_if_trained(reactnet_a(**SMALL))
    split = reactnet_a(**SMALL, reduction_split=True)
    _split_weights(joint, split)
    x = random_inputs(joint, 4)
    np.testing.assert_allclose(split.predict(x, verbose=0), joint.predict(x, verbose=0), atol=1e-5)


def test_step_one_real_weights_load_into_step_two(tmp_path):
    step1 = el_reactnet(**SMALL, binary_weights=False)
    step2 = el_reactnet(**SMALL)
    convs = [layer for layer in step1.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert len(convs) == 21
    for layer in convs:  # binary activations, real weights
        assert isinstance(layer.input_quantizer, RSign) and layer.kernel_quantizer is None
    assert [(w.name, w.shape) for w in step1.weights] == [(w.name, w.shape) for w in step2.weights]
    x = RNG.uniform(-1, 1, size=(4, 32, 32, 3)).astype(np.float32)
    # Eager: one step of a deep net is faster than tracing its training graph.
    step1.compile(
        tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", run_eagerly=True
    )
    step1.train_on_batch(x, np.arange(4))
    step1.save_weights(tmp_path / "step1.h5")
    loaded = el_reactnet(**SMALL, weights=str(tmp_path / "step1.h5"))
    for a, b in zip(step1.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(_binary(loaded)) == 21  # and now deployable: binary weights


# ---------------------------------------------------------------- training and deployment
# test_zoo trains, round-trips and converts every builder with its defaults; here the
# switches' code paths: A-style binary reduction convs, two convs each, EL on normal blocks.
VARIANT = dict(reduction_conv="binary", reduction_split=True, el_normal=True, gamma_trainable=False)


def test_variant_trains_one_step_and_round_trips_through_h5(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = el_reactnet(**SMALL, **VARIANT)
    x = RNG.uniform(-1, 1, size=(8, 32, 32, 3)).astype(np.float32)
    model.compile(
        tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True
    )
    assert np.isfinite(model.train_on_batch(x, RNG.integers(0, 10, 8)))
    model.save(tmp_path / "model.h5")
    loaded = tf.keras.models.load_model(tmp_path / "model.h5", compile=False)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))


@functools.cache
def converted(name: str, variant: bool = False):
    """A model "as if trained" (BN statistics, RSign thresholds, RPReLU shifts), converted."""
    model = as_if_trained(BUILDERS[name](**SMALL, **(VARIANT if variant else {})))
    flatbuffer, messages = convert(model)
    return model, flatbuffer, census(model, flatbuffer, messages)


@pytest.mark.parametrize(
    "name, variant, binary_convs",
    [
        ("reactnet_a", False, 26),
        ("reactnet_c", False, 21),
        ("el_reactnet", False, 21),
        ("el_reactnet", True, 31),
    ],
)
def test_every_binary_conv_is_an_lce_bconv2d_and_the_interpreter_agrees(
    name, variant, binary_convs
):
    model, flatbuffer, report = converted(name, variant)
    assert not report.fallback
    assert sorted(report.accelerated) == sorted(layer.name for layer in _binary(model))
    assert report.ops["LceBconv2d"] == len(_binary(model)) == binary_convs
    check = verify(model, flatbuffer, random_inputs(model, 8))
    assert check.passed, check.summary()


def test_to_lce_strict_loads_converts_and_verifies_a_saved_el_reactnet(tmp_path):
    model = converted("el_reactnet")[0]
    model.save(tmp_path / "el_reactnet.h5")
    result = subprocess.run(
        [sys.executable, str(TO_LCE), tmp_path / "el_reactnet.h5", "--strict"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "binarized standard convs accelerated (LceBconv2d): 21/21" in result.stdout
    assert ": PASS" in result.stdout and (tmp_path / "el_reactnet.tflite").is_file()


def test_float_ops_of_rsign_rprelu_and_the_el_reduction():
    """What docs/deployment.md lists: the float ops each part adds beside the LceBconv2d."""
    c, el = converted("reactnet_c")[2].ops, converted("el_reactnet")[2].ops
    # RSign: one SUB per binary conv (its threshold), then LceQuantize. RPReLU: SUB,
    # PRELU, ADD. The shortcut sums: one ADD per unit. The duplicated shortcut, an Expand
    # link: added through a broadcasting ADD between RESHAPEs (3 per reduction block, no
    # CONCATENATION; el_larq.deploy.rewrites); the 2x2 average pools of the strided blocks.
    assert c["LceBconv2d"] == c["LceQuantize"] == 21
    assert c["PRELU"] == 26 and c["SUB"] == 21 + 26 and c["ADD"] == 26 + 26
    assert c["RESHAPE"] == 3 * 5 and "CONCATENATION" not in c and c["AVERAGE_POOL_2D"] == 4
    assert c["CONV_2D"] == 1 + 5  # the stem and the real-valued reduction 1x1 convs
    # EL adds exactly one MUL (1/gamma on out1, before the copies) per reduction block.
    assert el - c == {"MUL": 5} and not c - el
