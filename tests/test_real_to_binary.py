"""Real-to-Binary layers against NumPy references (values and gradients), and through LCE."""

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

from el_larq.deploy.census import census
from el_larq.deploy.flatbuffer import op_counts
from el_larq.deploy.profile import as_if_trained
from el_larq.layers import BinaryConv2D, BinaryDepthwiseConv2D, el_conv
from el_larq.real_to_binary import (
    ChannelGating,
    LearnedRescale,
    TanhSign,
    scaling_ops,
    stage_conv_kwargs,
)

RNG = np.random.default_rng(0)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def np_gating(x, y, w1, w2, upstream):
    """Forward `y * sigmoid(relu(mean_hw(x) w1) w2)` and the gradients of `sum(out * upstream)`."""
    hw = x.shape[1] * x.shape[2]
    pooled = x.mean(axis=(1, 2))
    pre_hidden = pooled @ w1
    hidden = np.maximum(pre_hidden, 0)
    scales = sigmoid(hidden @ w2)
    out = y * scales[:, None, None, :]
    d_scales = (upstream * y).sum(axis=(1, 2))
    d_logits = d_scales * scales * (1 - scales)
    d_w2 = hidden.T @ d_logits
    d_pre_hidden = (d_logits @ w2.T) * (pre_hidden > 0)
    d_w1 = pooled.T @ d_pre_hidden
    d_x = np.broadcast_to((d_pre_hidden @ w1.T)[:, None, None, :] / hw, x.shape)
    d_y = upstream * scales[:, None, None, :]
    return out, {"x": d_x, "y": d_y, "w1": d_w1, "w2": d_w2}


# ---------------------------------------------------------------- ChannelGating
@pytest.mark.parametrize(
    "ci, co, reduction, hidden", [(64, 32, 8, 8), (16, 48, 8, 2), (4, 8, 8, 1)]
)
def test_gating_matches_numpy_with_gradients(ci, co, reduction, hidden):
    x = RNG.normal(size=(3, 6, 5, ci)).astype(np.float32)
    y = RNG.normal(size=(3, 3, 3, co)).astype(np.float32)  # a strided conv's output
    upstream = RNG.normal(size=y.shape).astype(np.float32)
    layer = ChannelGating(reduction)
    layer([x, y])
    assert layer.reduce_kernel.shape == (ci, hidden)
    assert layer.expand_kernel.shape == (hidden, co)
    # Kernels with both ReLU branches active and sigmoids away from saturation.
    w1 = RNG.normal(size=(ci, hidden)).astype(np.float32)
    w2 = RNG.normal(size=(hidden, co)).astype(np.float32)
    layer.set_weights([w1, w2])
    xt, yt = tf.constant(x), tf.constant(y)
    with tf.GradientTape() as tape:
        tape.watch([xt, yt])
        out = layer([xt, yt])
        loss = tf.reduce_sum(out * upstream)
    grads = tape.gradient(loss, [xt, yt, layer.reduce_kernel, layer.expand_kernel])
    expected, expected_grads = np_gating(x, y, w1, w2, upstream)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    for grad, key in zip(grads, ("x", "y", "w1", "w2"), strict=True):
        np.testing.assert_allclose(grad.numpy(), expected_grads[key], rtol=1e-4, atol=1e-4)


def test_gating_scales_each_sample_and_channel_in_zero_one():
    # Seeded: with C/r = 2 hidden ReLU units, some random kernels leave both dead for all
    # four samples (every scale 0.5), which says nothing about the layer.
    tf.keras.utils.set_random_seed(1)
    x = np.random.default_rng(1).normal(size=(4, 5, 5, 16)).astype(np.float32)
    y = np.ones((4, 5, 5, 24), np.float32)
    out = ChannelGating()([x, y]).numpy()
    # Constant over space, different per sample, in (0, 1).
    assert np.all((out > 0) & (out < 1))
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1, :1, :], out.shape))
    assert not np.allclose(out[0], out[1])


def test_gating_rejects_anything_but_two_4d_inputs():
    with pytest.raises(ValueError, match=r"\[conv_input, conv_output\]"):
        ChannelGating()(tf.zeros((1, 4, 4, 8)))
    with pytest.raises(ValueError, match="4D input"):
        ChannelGating()([tf.zeros((1, 8)), tf.zeros((1, 4, 4, 8))])
    with pytest.raises(ValueError, match="reduction"):
        ChannelGating(reduction=0)


# ---------------------------------------------------------------- LearnedRescale
@pytest.mark.parametrize("spatial", [False, True])
def test_learned_rescale_matches_numpy_with_gradients(spatial):
    x = RNG.normal(size=(2, 4, 3, 5)).astype(np.float32)
    upstream = RNG.normal(size=x.shape).astype(np.float32)
    layer = LearnedRescale(spatial=spatial)
    layer(x)
    c = RNG.uniform(0.5, 1.5, (5,)).astype(np.float32)
    h = RNG.uniform(0.5, 1.5, (4, 1, 1)).astype(np.float32)
    w = RNG.uniform(0.5, 1.5, (1, 3, 1)).astype(np.float32)
    values = [c, h, w] if spatial else [c]
    assert [tuple(v.shape) for v in layer.get_weights()] == [v.shape for v in values]
    layer.set_weights(values)
    if not spatial:
        h, w = np.ones_like(h), np.ones_like(w)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * upstream)
    grads = tape.gradient(loss, [xt, *layer.scales])
    np.testing.assert_allclose(layer(x).numpy(), x * c * h * w, rtol=1e-6)
    np.testing.assert_allclose(grads[0].numpy(), upstream * c * h * w, rtol=1e-5)
    d_c = (upstream * x * h * w).sum(axis=(0, 1, 2)).reshape(c.shape)
    np.testing.assert_allclose(grads[1].numpy(), d_c, rtol=1e-4, atol=1e-5)
    if spatial:
        d_h = (upstream * x * c * w).sum(axis=(0, 2, 3)).reshape(h.shape)
        d_w = (upstream * x * c * h).sum(axis=(0, 1, 3)).reshape(w.shape)
        np.testing.assert_allclose(grads[2].numpy(), d_h, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grads[3].numpy(), d_w, rtol=1e-4, atol=1e-5)


def test_learned_rescale_starts_as_identity_and_spatial_needs_static_size():
    x = RNG.normal(size=(2, 4, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(LearnedRescale()(x).numpy(), x)
    with pytest.raises(ValueError, match="static height and width"):
        LearnedRescale(spatial=True).build((None, None, None, 8))


# ---------------------------------------------------------------- stage switches
def test_tanh_sign_is_tanh_and_not_binary():
    x = np.linspace(-3, 3, 13, dtype=np.float32)
    np.testing.assert_allclose(TanhSign()(x).numpy(), np.tanh(x), rtol=1e-6)
    assert lq.quantizers.get("tanh_sign").__class__ is TanhSign
    assert TanhSign.precision is None


def test_stage_conv_kwargs():
    assert stage_conv_kwargs() == {}
    real = stage_conv_kwargs(binary_weights=False)
    assert real == {"kernel_quantizer": None, "kernel_constraint": None}
    depthwise = stage_conv_kwargs(binary_weights=False, depthwise=True)
    assert depthwise == {"depthwise_quantizer": None, "depthwise_constraint": None}
    assert isinstance(stage_conv_kwargs(soft_activations=True)["input_quantizer"], TanhSign)


def _stage_unit(binary_weights=True, soft_activations=False) -> tf.keras.Model:
    """Binary standard and depthwise convs, K, alpha, gating and Bi-Real quantizers."""
    switches = dict(binary_weights=binary_weights, soft_activations=soft_activations)
    inputs = tf.keras.Input((8, 8, 16))
    bireal = {"input_quantizer": "approx_sign", "kernel_quantizer": "magnitude_aware_sign"}
    x = el_conv(inputs, 32, 1, activation_scaling=True, gating=True, name="a", **switches)
    x = el_conv(x, 32, 3, weight_scaling=True, conv_kwargs=bireal, name="b", **switches)
    x = el_conv(x, None, 3, depthwise=True, gating=True, name="c", **switches)
    return tf.keras.Model(inputs, x)


@pytest.mark.parametrize("binary_weights, soft_activations", [(False, True), (False, False)])
def test_stage_switches_keep_weights_and_change_only_quantizers(
    binary_weights, soft_activations, tmp_path
):
    tf.keras.utils.set_random_seed(0)
    stage = _stage_unit(binary_weights, soft_activations)
    final = _stage_unit()
    assert [(w.name, w.shape) for w in stage.weights] == [(w.name, w.shape) for w in final.weights]
    stage.save_weights(tmp_path / "stage.h5")
    final.load_weights(tmp_path / "stage.h5")
    for a, b in zip(stage.get_weights(), final.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    for name in ("a_conv", "b_conv", "c_conv"):
        layer = stage.get_layer(name)
        kernel = layer.depthwise_quantizer if name == "c_conv" else layer.kernel_quantizer
        assert (kernel is None) == (not binary_weights)
        assert isinstance(layer.input_quantizer, TanhSign) == soft_activations
    # Real weights are used as they are: the conv is a float conv of the (soft) input.
    x = RNG.uniform(-2, 2, size=(2, 8, 8, 32)).astype(np.float32)
    conv = stage.get_layer("b_conv")
    activation = np.tanh(x) if soft_activations else np.asarray(lq.quantizers.approx_sign(x))
    padded = np.pad(activation, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=1.0)
    expected = tf.nn.conv2d(padded, conv.kernel, 1, "VALID").numpy()  # pad_values=1
    np.testing.assert_allclose(conv(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_gating_in_el_conv_sits_after_the_batchnorm_and_reads_the_conv_input():
    inputs = tf.keras.Input((8, 8, 16))
    out = el_conv(inputs, 32, 1, gating=True, input_norm=True, gating_reduction=4, name="u")
    model = tf.keras.Model(inputs, out)
    gating = model.get_layer("u_gating")
    assert gating.reduction == 4 and gating.reduce_kernel.shape == (16, 4)
    sources = [node.layer.name for node in gating._inbound_nodes[0].parent_nodes]
    assert sources == ["u_input_bn", "u_bn"]
    assert model.get_layer("u_add").input[0] is gating.output
    with pytest.raises(ValueError, match="`gating` rescales the output of a binary conv"):
        el_conv(inputs, 32, 1, binary=False, gating=True)


# ---------------------------------------------------------------- serialization
@pytest.mark.parametrize(
    "layer",
    [
        ChannelGating(4, kernel_regularizer="l2", name="gate"),
        LearnedRescale(spatial=True, regularizer=tf.keras.regularizers.l2(1e-5)),
        TanhSign(),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert tf.keras.utils.get_custom_objects()[type(layer).__name__] is type(layer)


def test_soft_stage_model_round_trips_through_h5(tmp_path):
    model = _stage_unit(binary_weights=False, soft_activations=True)
    x = RNG.uniform(-1, 1, size=(2, 8, 8, 16)).astype(np.float32)
    model.save(tmp_path / "model.h5")
    loaded = tf.keras.models.load_model(tmp_path / "model.h5")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert isinstance(loaded.get_layer("a_conv").input_quantizer, TanhSign)


# ---------------------------------------------------------------- Larq Compute Engine
def _scaled_unit(scaling: str) -> tf.keras.Model:
    """Real-to-Binary's half block: BN -> binary 3x3 -> scaling -> PReLU -> + x."""
    inputs = tf.keras.Input((8, 8, 64))
    x = tf.keras.layers.BatchNormalization()(inputs)
    y = BinaryConv2D(64, 3)(x)
    if scaling == "gating":
        y = ChannelGating()([x, y])
    elif scaling == "rescale":
        y = LearnedRescale()(y)
    y = tf.keras.layers.PReLU(shared_axes=[1, 2])(y)
    return tf.keras.Model(inputs, tf.keras.layers.Add()([y, inputs]))


def _randomize(model: tf.keras.Model) -> tf.keras.Model:
    """Non-trivial scaling factors and BN statistics, as after training."""
    for layer in model.layers:
        if isinstance(layer, LearnedRescale | tf.keras.layers.PReLU):
            layer.set_weights([RNG.uniform(0.5, 1.5, w.shape) for w in layer.weights])
    return as_if_trained(model)


def test_scaling_leaves_the_bconv_and_adds_the_listed_float_ops():
    counts = {
        scaling: op_counts(lce.convert_keras_model(_randomize(_scaled_unit(scaling))))
        for scaling in ("none", "gating", "rescale")
    }
    for scaling, ops in counts.items():
        assert ops["LceBconv2d"] == 1 and "CONV_2D" not in ops, scaling
    added = counts["gating"] - counts["none"]
    # The module docstring's list (the RESHAPE of the scales is folded by the converter).
    assert dict(added) == {"MEAN": 1, "FULLY_CONNECTED": 2, "LOGISTIC": 1, "MUL": 1}
    # The per-channel factor folds into the LceBconv2d.
    assert counts["rescale"] == counts["none"]


@pytest.mark.parametrize("scaling", ["gating", "rescale"])
def test_lce_interpreter_agrees_with_keras(scaling):
    tf.keras.utils.set_random_seed(0)
    model = _randomize(_scaled_unit(scaling))
    flatbuffer = lce.convert_keras_model(model)
    x = RNG.uniform(-1, 1, size=(3, 8, 8, 64)).astype(np.float32)
    actual = np.asarray(lce.testing.Interpreter(flatbuffer, num_threads=1).predict(x))
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-3 * np.abs(expected).max())


def test_spatial_rescale_is_folded_wrongly_by_lce():
    """Why `LearnedRescale(spatial=True)` is documented as training-only: LCE 0.16 folds
    the (H, W, C) factor into the bconv's per-channel multiplier and the flatbuffer does
    not load. If this test fails, LCE has fixed it and the docstring should say so."""
    inputs = tf.keras.Input((8, 8, 64))
    y = LearnedRescale(spatial=True)(BinaryConv2D(64, 3)(inputs))
    model = _randomize(tf.keras.Model(inputs, tf.keras.layers.Add()([y, inputs])))
    flatbuffer = lce.convert_keras_model(model)
    with pytest.raises(RuntimeError):
        lce.testing.Interpreter(flatbuffer, num_threads=1)


def test_census_counts_the_gating_ops_and_every_bconv_accelerated():
    inputs = tf.keras.Input((8, 8, 32))
    x = el_conv(inputs, 64, 1, gating=True, name="a")
    model = as_if_trained(tf.keras.Model(inputs, el_conv(x, 64, 3, gating=True, name="b")))
    report = census(model, lce.convert_keras_model(model))
    assert sorted(report.accelerated) == ["a_conv", "b_conv"] and not report.fallback
    assert report.ops["FULLY_CONNECTED"] == 4 and report.ops["LOGISTIC"] == 2


def test_scaling_ops_counts():
    inputs = tf.keras.Input((8, 8, 16))
    y = BinaryConv2D(32, 3, strides=2)(inputs)
    gating = ChannelGating(8)
    rescale, spatial = LearnedRescale(), LearnedRescale(spatial=True)
    tf.keras.Model(inputs, [gating([inputs, y]), rescale(y), spatial(y)])
    # pool 8*8*16 adds, dense 16*2 + 2*32 MACs, 32 sigmoids, 4*4*32 multiplies.
    assert scaling_ops(gating) == 1024 + 96 + 32 + 512
    assert scaling_ops(rescale) == 0 and scaling_ops(spatial) == 512
    assert scaling_ops(BinaryDepthwiseConv2D(3)) == 0
