"""Elastic-Link layers against independent NumPy references, and through LCE."""

import math
import subprocess
import sys
import textwrap

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

from el_larq.deploy.flatbuffer import op_counts
from el_larq.layers import BinaryConv2D, BinaryDepthwiseConv2D, ElasticLink, el_conv

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- NumPy references
def np_pool_same(x: np.ndarray, s: int, reduce=np.max) -> np.ndarray:
    """s x s / stride s pooling, "same": border windows reduce over their valid cells only."""
    b, h, w, c = x.shape
    ho, wo = math.ceil(h / s), math.ceil(w / s)
    out = np.empty((b, ho, wo, c), x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, i, j] = reduce(x[:, i * s : i * s + s, j * s : j * s + s], axis=(1, 2))
    return out


def np_sei(x: np.ndarray, co: int, strides: int = 1, pool: str = "max") -> np.ndarray:
    """Squeeze / Expand / Identity of docs/design.md §2, divided by the initial gamma."""
    if strides > 1:
        x = np_pool_same(x, strides, np.max if pool == "max" else np.mean)
    ci = x.shape[-1]
    if ci == co:
        return x
    if ci > co:
        g = math.ceil(ci / co)
        padded = np.concatenate([x, np.zeros(x.shape[:-1] + (g * co - ci,), x.dtype)], -1)
        out = sum(padded[..., k * co : (k + 1) * co] for k in range(g))
    else:
        g = math.ceil(co / ci)
        out = np.concatenate([x] * g, axis=-1)[..., :co]
    return out / g


def np_activation_scale(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """XNOR-Net K with "same" padding, averaging over valid positions only."""
    a = np.abs(x).mean(axis=-1)
    b, h, w = a.shape
    ho, wo = math.ceil(h / s), math.ceil(w / s)
    pad_h = max((ho - 1) * s + k - h, 0) // 2
    pad_w = max((wo - 1) * s + k - w, 0) // 2
    out = np.empty((b, ho, wo, 1), x.dtype)
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * s - pad_h, j * s - pad_w
            win = a[:, max(r0, 0) : r0 + k, max(c0, 0) : c0 + k]
            out[:, i, j, 0] = win.mean(axis=(1, 2))
    return out


# ---------------------------------------------------------------- Squeeze / Expand / Identity
@pytest.mark.smoke
@pytest.mark.parametrize(
    "ci, co, kind, g",
    [
        (64, 16, "squeeze", 4),  # Ci divisible by Co
        (40, 16, "squeeze", 3),  # not divisible: zero-pad 40 -> 48
        (16, 64, "expand", 4),  # Co divisible by Ci
        (16, 40, "expand", 3),  # not divisible: crop 48 -> 40
        (24, 24, "identity", 1),
    ],
)
@pytest.mark.parametrize("hw, strides", [(8, 1), (8, 2), (7, 2)])
def test_sei_matches_numpy(ci, co, kind, g, hw, strides):
    x = RNG.normal(size=(2, hw, hw, ci)).astype(np.float32)
    layer = ElasticLink(co, strides=strides)
    out = layer(x).numpy()
    assert layer.kind == kind and layer.groups == g
    np.testing.assert_allclose(out, np_sei(x, co, strides), rtol=1e-6, atol=1e-6)
    assert out.shape == tuple(layer.compute_output_shape(x.shape))


@pytest.mark.parametrize("hw", [7, 8])
def test_bireal_average_pooled_link_matches_numpy(hw):
    x = RNG.normal(size=(2, hw, hw, 16)).astype(np.float32)
    out = ElasticLink(32, strides=2, pool="avg")(x).numpy()
    np.testing.assert_allclose(out, np_sei(x, 32, 2, pool="avg"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("hw", [7, 8, 9])
def test_downsampled_link_matches_strided_same_conv(hw):
    x = tf.keras.Input((hw, hw, 32))
    conv = BinaryConv2D(64, 3, strides=2)(x)
    link = ElasticLink(64, strides=2)(x)
    assert conv.shape == link.shape  # 7x7 -> 4x4 for both
    out = el_conv(x, 64, 3, strides=2)
    assert out.shape[1:] == (math.ceil(hw / 2), math.ceil(hw / 2), 64)


def test_squeeze_is_transpose_of_expand():
    """<Squeeze(x), y> == <x, Expand(y)> (before gamma): chunk-sum is Expand's adjoint."""
    x = RNG.normal(size=(1, 3, 3, 48)).astype(np.float32)
    y = RNG.normal(size=(1, 3, 3, 16)).astype(np.float32)
    squeeze, expand = ElasticLink(16), ElasticLink(48)
    lhs = np.sum(squeeze(x).numpy() * 3 * y)
    rhs = np.sum(x * expand(y).numpy() * 3)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


# ---------------------------------------------------------------- gamma
def test_gamma_initial_values_and_identity_has_none():
    for ci, co, expected in [(64, 16, 4.0), (40, 16, 3.0), (16, 40, 3.0), (16, 64, 4.0)]:
        layer = ElasticLink(co)
        layer.build((None, 4, 4, ci))
        assert float(layer.gamma.numpy()) == expected
    identity = ElasticLink(8)
    identity.build((None, 4, 4, 8))
    assert identity.gamma is None and not identity.weights


def test_identity_gamma_on_request_starts_at_one_and_divides():
    x = RNG.normal(size=(2, 4, 4, 8)).astype(np.float32)
    layer = ElasticLink(8, strides=2, gamma_on="all")
    np.testing.assert_array_equal(layer(x), np_sei(x, 8, strides=2))  # gamma = 1
    assert layer.kind == "identity" and layer.trainable_weights == [layer.gamma]
    layer.gamma.assign(4.0)
    np.testing.assert_allclose(layer(x), np_sei(x, 8, strides=2) / 4, rtol=1e-6)


@pytest.mark.parametrize("ci, co", [(16, 40), (64, 16)])
def test_links_without_gamma_are_plain_expand_and_squeeze(ci, co):
    x = RNG.normal(size=(2, 4, 4, ci)).astype(np.float32)
    layer = ElasticLink(co, gamma_on="none")
    g = math.ceil(max(ci, co) / min(ci, co))
    np.testing.assert_allclose(layer(x), np_sei(x, co) * g, rtol=1e-6)
    assert layer.gamma is None and not layer.weights
    with pytest.raises(ValueError, match="gamma_on"):
        ElasticLink(co, gamma_on="identity")


def test_gamma_trainable_or_frozen():
    learned, frozen = ElasticLink(8), ElasticLink(8, gamma_trainable=False)
    learned.build((None, 4, 4, 32))
    frozen.build((None, 4, 4, 32))
    assert learned.trainable_weights == [learned.gamma]
    assert frozen.trainable_weights == [] and frozen.non_trainable_weights == [frozen.gamma]


@pytest.mark.smoke
def test_gradients_reach_gamma_and_input():
    x = tf.constant(RNG.normal(size=(2, 4, 4, 32)).astype(np.float32))
    layer = ElasticLink(8)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) ** 2)
    d_gamma = tape.gradient(loss, layer.gamma)
    d_x = tape.gradient(loss, x)
    # loss = sum(S^2) / gamma^2  =>  dL/dgamma = -2 loss / gamma
    np.testing.assert_allclose(d_gamma.numpy(), -2 * loss.numpy() / 4.0, rtol=1e-5)
    assert np.all(np.isfinite(d_x.numpy())) and np.any(d_x.numpy() != 0)


def test_gamma_is_learned_by_an_optimizer_step():
    inputs = tf.keras.Input((4, 4, 32))
    model = tf.keras.Model(inputs, el_conv(inputs, 8, 1))
    model.compile(tf.keras.optimizers.Adam(0.1), "mse")
    link = [layer for layer in model.layers if isinstance(layer, ElasticLink)][0]
    before = float(link.gamma.numpy())
    x = RNG.normal(size=(8, 4, 4, 32)).astype(np.float32)
    model.fit(x, np.zeros((8, 4, 4, 8), np.float32), epochs=1, verbose=0)
    assert float(link.gamma.numpy()) != before


# ---------------------------------------------------------------- BinaryConv2D
@pytest.mark.parametrize("k, s", [(1, 1), (1, 2), (3, 1), (3, 2)])
@pytest.mark.parametrize("hw", [6, 7])
def test_activation_scaling_matches_numpy(k, s, hw):
    x = RNG.normal(size=(2, hw, hw, 8)).astype(np.float32)
    plain = BinaryConv2D(4, k, strides=s)
    scaled = BinaryConv2D(4, k, strides=s, activation_scaling=True)
    y_plain = plain(x)
    scaled(x)
    scaled.set_weights(plain.get_weights())
    expected = y_plain.numpy() * np_activation_scale(x, k, s)
    np.testing.assert_allclose(scaled(x).numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k, s", [(1, 1), (3, 2)])
def test_activation_scaling_equals_the_abs_formulation_in_keras_and_lce(k, s):
    """K is `2 mean relu(x) - mean x` (no slow TFLite ABS): `mean |x|` up to rounding."""
    x = RNG.normal(size=(1, 9, 9, 64)).astype(np.float32) * 3 + 0.5
    layer = BinaryConv2D(32, k, strides=s, activation_scaling=True)
    inputs = tf.keras.Input((9, 9, 64))
    model = tf.keras.Model(inputs, layer(inputs))
    abs_form = tf.nn.avg_pool2d(
        tf.reduce_mean(tf.abs(x), axis=-1, keepdims=True), k, s, padding="SAME"
    )
    expected = lq.layers.QuantConv2D.call(layer, x).numpy() * abs_form.numpy()
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    flatbuffer = lce.convert_keras_model(model)
    assert "ABS" not in op_counts(flatbuffer) and op_counts(flatbuffer)["LceBconv2d"] == 1
    actual = lce.testing.Interpreter(flatbuffer, num_threads=1).predict(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


def test_activation_scaling_forms_of_training_and_inference_agree_with_their_gradients():
    """Training uses `mean |x|`, inference (what is converted) `2 mean relu - mean`."""
    x = tf.constant(RNG.normal(size=(2, 7, 7, 32)).astype(np.float32))
    layer = BinaryConv2D(16, 3, strides=2, activation_scaling=True)
    weights = tf.constant(RNG.normal(size=(2, 4, 4, 16)).astype(np.float32))
    results = {}
    for training in (True, False, tf.constant(True), tf.constant(False)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=training) * weights)
        results[str(training)] = (loss.numpy(), tape.gradient(loss, x).numpy())
    reference_loss, reference_grad = results["True"]
    for loss, grad in results.values():
        np.testing.assert_allclose(loss, reference_loss, rtol=1e-5)
        np.testing.assert_allclose(grad, reference_grad, rtol=1e-4, atol=1e-5)


def test_binary_conv_matches_sign_conv_with_one_padding():
    x = RNG.normal(size=(1, 5, 5, 3)).astype(np.float32)
    layer = BinaryConv2D(2, 3)
    out = layer(x).numpy()
    w = np.sign(layer.kernel.latent_variable.numpy())
    xs = np.pad(np.where(x >= 0, 1.0, -1.0), [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=1)
    ref = np.zeros((1, 5, 5, 2), np.float32)
    for i in range(5):
        for j in range(5):
            ref[0, i, j] = np.tensordot(xs[0, i : i + 3, j : j + 3], w, axes=3)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_weight_scaling_scales_by_mean_abs_per_output_channel():
    x = RNG.normal(size=(1, 4, 4, 8)).astype(np.float32)
    plain, scaled = BinaryConv2D(6, 1), BinaryConv2D(6, 1, weight_scaling=True)
    plain(x)
    scaled(x)
    scaled.set_weights(plain.get_weights())
    alpha = np.abs(plain.kernel.latent_variable.numpy()).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(scaled(x).numpy(), plain(x).numpy() * alpha, rtol=1e-5, atol=1e-6)


def test_ste_gradient_is_zero_outside_unit_interval():
    x = tf.constant(RNG.uniform(-3, 3, size=(2, 6, 6, 4)).astype(np.float32))
    layer = BinaryConv2D(8, 3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * RNG.normal(size=(2, 6, 6, 8)).astype(np.float32))
    grad = tape.gradient(loss, x).numpy()
    outside = np.abs(x.numpy()) > 1
    assert np.all(grad[outside] == 0)
    assert np.count_nonzero(grad[~outside]) > 0.9 * np.count_nonzero(~outside)


def test_binary_conv_defaults_are_what_lce_wants():
    layer = BinaryConv2D(8, 3)
    config = layer.get_config()
    assert config["input_quantizer"]["class_name"] == "SteSign"
    assert config["kernel_quantizer"]["class_name"] == "SteSign"
    assert isinstance(layer.kernel_constraint, lq.constraints.WeightClip)
    assert config["use_bias"] is False and config["pad_values"] == 1.0
    assert config["padding"] == "same"


# ---------------------------------------------------------------- serialization
@pytest.mark.parametrize(
    "layer",
    [
        ElasticLink(16, strides=2, gamma_trainable=False, pool="avg", name="el"),
        ElasticLink(16, gamma_on="all", name="el_identity"),
        BinaryConv2D(8, 3, strides=2, activation_scaling=True, weight_scaling=True),
        BinaryDepthwiseConv2D(3, strides=2),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    registered = tf.keras.utils.get_custom_objects()[type(layer).__name__]
    assert registered is type(layer)


def _every_layer_model(input_shape=(8, 8, 3)) -> tf.keras.Model:
    """A small EL network with Squeeze, Identity and Expand units, K, alpha and frozen gamma."""
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(64, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = el_conv(x, 16, 1, activation_scaling=True, name="reduce")  # Squeeze 64 -> 16, K
    x = el_conv(x, 16, 3, strides=2, name="spatial")  # Identity, max-pooled
    x = el_conv(x, 64, 1, weight_scaling=True, gamma_trainable=False, name="expand")  # Expand
    x = el_conv(x, 40, 1, name="squeeze_pad")  # Squeeze with zero-padding 64 -> 80 -> 40
    x = el_conv(x, 96, 1, name="expand_crop")  # Expand with crop 40 -> 120 -> 96
    x = el_conv(x, None, 3, depthwise=True, activation="relu", name="dw")  # MobileNet unit
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, name="classifier")(x)
    return tf.keras.Model(inputs, outputs)


@pytest.mark.smoke
def test_save_and_load_with_plain_keras_in_a_fresh_process(tmp_path):
    model = _every_layer_model()
    x = RNG.uniform(-1, 1, size=(4, 8, 8, 3)).astype(np.float32)
    # Non-trivial BN statistics and gamma, so a loader that drops weights is caught.
    model.compile("adam", "mse")
    model.fit(x, RNG.normal(size=(4, 10)), epochs=2, verbose=0)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "model.h5")
    model.save(tmp_path / "saved_model", save_format="tf")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", expected)
    script = textwrap.dedent(
        f"""
        import numpy as np
        import el_larq
        import tensorflow as tf
        x = np.load(r"{tmp_path}/x.npy")
        expected = np.load(r"{tmp_path}/expected.npy")
        for path in (r"{tmp_path}/model.h5", r"{tmp_path}/saved_model"):
            model = tf.keras.models.load_model(path)
            np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
        print("LOADED-OK")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED-OK" in result.stdout


# ---------------------------------------------------------------- Larq Compute Engine
def _conv_kinds(model):
    binary = [layer for layer in model.layers if isinstance(layer, BinaryConv2D)]
    float_convs = [
        layer
        for layer in model.layers
        if type(layer) is tf.keras.layers.Conv2D  # the stem: kept float on purpose
    ]
    links = [layer for layer in model.layers if isinstance(layer, ElasticLink)]
    return binary, float_convs, links


def test_el_network_converts_to_binary_lce_ops():
    model = _every_layer_model()
    binary, float_convs, links = _conv_kinds(model)
    counts = op_counts(lce.convert_keras_model(model))
    assert counts["LceBconv2d"] == len(binary) == 5
    assert counts["CONV_2D"] == len(float_convs) == 1
    # Binary depthwise convs are not accelerated by LCE: one float DEPTHWISE_CONV_2D.
    assert counts["DEPTHWISE_CONV_2D"] == 1
    with_gamma = [link for link in links if link.kind != "identity"]
    scaled = [layer for layer in binary if layer.activation_scaling]
    # BN folded into the bconv: the only MULs left are 1/gamma of each Squeeze/Expand
    # link, plus, per K-scaled conv, K's factor 2 (on the 1-channel map), K itself and
    # the (unfoldable) BN scale.
    assert counts["MUL"] == len(with_gamma) + 3 * len(scaled)
    assert "ABS" not in counts  # TFLite's slow ABS kernel (see _activation_scale)
    # No BN survives as a standalone op; the only ADDs are the EL sums (+1 for the BN
    # of the depthwise conv, which LCE does not fold).
    assert counts["ADD"] <= len(links) + 1
    # Expand with Co a multiple of Ci needs no slice; 40 -> 96 slices the 40-channel input.
    assert counts.get("TILE", 0) == 0


def test_el_network_without_k_has_bn_fully_folded():
    inputs = tf.keras.Input((8, 8, 32))
    x = el_conv(inputs, 16, 1, name="a")
    x = el_conv(x, 16, 3, name="b")
    x = el_conv(x, 32, 1, name="c")
    model = tf.keras.Model(inputs, x)
    counts = op_counts(lce.convert_keras_model(model))
    assert counts["LceBconv2d"] == 3
    assert counts["MUL"] == 2  # 1/gamma of the Squeeze and the Expand link
    assert counts["ADD"] == 3  # the three EL sums; BN is inside LceBconv2d
    assert "CONV_2D" not in counts


@pytest.mark.smoke
def test_lce_interpreter_agrees_with_keras():
    tf.keras.utils.set_random_seed(0)  # same weights and inputs on any xdist worker
    rng = np.random.default_rng(0)
    model = _every_layer_model()
    x = rng.uniform(-1, 1, size=(4, 8, 8, 3)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, rng.normal(size=(4, 10)), epochs=2, verbose=0)
    interpreter = lce.testing.Interpreter(lce.convert_keras_model(model), num_threads=1)
    actual = np.asarray(interpreter.predict(x))
    expected = model.predict(x, verbose=0)
    # Tolerance: float32 summation order differs; a sign can flip for an input
    # within ~1e-6 of zero. 1e-3 relative to the output scale covers both.
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-3 * scale)


def test_input_norm_normalizes_what_is_binarized_and_the_link_carries_x():
    inputs = tf.keras.Input((6, 6, 8))
    x = tf.keras.layers.ReLU()(inputs)  # non-negative: every sign would be +1
    out = el_conv(x, 16, 1, input_norm=True, name="u")  # Expand 8 -> 16
    model = tf.keras.Model(inputs, out)
    assert model.get_layer("u_conv").input is model.get_layer("u_input_bn").output
    assert model.get_layer("u_input_bn").input is x
    assert model.get_layer("u_el").input is x  # the real-valued, un-normalized input
    sign_inputs = tf.keras.Model(inputs, model.get_layer("u_conv").input)
    values = sign_inputs(RNG.normal(size=(16, 6, 6, 8)).astype(np.float32), training=True)
    assert 0.2 < np.mean(values.numpy() > 0) < 0.8  # batch statistics re-centre it
    # A binary conv after a ReLU without input_norm sees only +1 signs.
    plain = el_conv(x, 16, 1, name="plain")
    assert tf.keras.Model(inputs, plain).get_layer("plain_conv").input is x


# ---------------------------------------------------------------- bad input
def test_non_4d_input_is_rejected_with_its_shape():
    with pytest.raises(ValueError, match=r"4D input.*\(None, 16\)"):
        el_conv(tf.keras.Input((16,)), 8, 1)
    with pytest.raises(ValueError, match="4D"):
        ElasticLink(8)(tf.zeros((2, 16)))
    with pytest.raises(ValueError, match=r"ndim=4.*\(2, 4, 16\)"):  # Keras' own check
        BinaryConv2D(8, 1)(tf.zeros((2, 4, 16)))


@pytest.mark.parametrize("filters", [0, -3, 2.5, None])
def test_bad_filters_are_rejected(filters):
    with pytest.raises(ValueError, match="filters"):
        ElasticLink(filters)
    with pytest.raises(ValueError, match="filters"):
        el_conv(tf.keras.Input((4, 4, 8)), filters, 1)


@pytest.mark.parametrize("strides", [0, -1, 1.5])
def test_bad_strides_are_rejected(strides):
    with pytest.raises(ValueError, match="strides"):
        ElasticLink(8, strides=strides)


def test_link_that_cannot_match_the_conv_output_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(None, 7, 7, 8\).*\(None, 5, 5, 8\)"):
        el_conv(tf.keras.Input((7, 7, 8)), 8, 3, padding="valid")


def test_input_norm_needs_a_binary_conv():
    with pytest.raises(ValueError, match="input_norm"):
        el_conv(tf.keras.Input((4, 4, 8)), 8, 1, binary=False, input_norm=True)
    with pytest.raises(ValueError, match="input_norm"):
        el_conv(tf.keras.Input((4, 4, 8)), 4, 1, conv=False, input_norm=True)


def test_el_minus_needs_the_link():
    with pytest.raises(ValueError, match="EL-minus"):
        el_conv(tf.keras.Input((4, 4, 8)), 4, 1, conv=False, elastic_link=False)
    out = el_conv(tf.keras.Input((4, 4, 8)), 4, 1, conv=False)
    assert out.shape == (None, 4, 4, 4)
