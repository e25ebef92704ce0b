"""ReActNet's RSign and RPReLU against NumPy references, through .h5 and through LCE."""

import subprocess
import sys
import textwrap

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

from el_larq.deploy.census import census
from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import flatbuffer_ops
from el_larq.deploy.profile import as_if_trained
from el_larq.layers import BinaryConv2D
from el_larq.reactnet import RPReLU, RSign

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- NumPy references
def np_rsign(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return np.where(x - beta >= 0, 1.0, -1.0).astype(x.dtype)


def np_reactnet_polynomial(u: np.ndarray) -> np.ndarray:
    """ReActNet's differentiable stand-in for sign(u): -1, u^2 + 2u, -u^2 + 2u, 1."""
    return np.select([u < -1, u < 0, u < 1], [-1.0, u * u + 2 * u, -u * u + 2 * u], 1.0)


def np_rsign_grads(x, beta, dy):
    """The gradient of ReActNet's polynomial at u = x - beta, by central differences."""
    u, h = (x - beta).astype(np.float64), 1e-6
    slope = (np_reactnet_polynomial(u + h) - np_reactnet_polynomial(u - h)) / (2 * h)
    du = slope * dy
    return du, -du.reshape(-1, x.shape[-1]).sum(0)


def np_rprelu(x, shift_in, slope, shift_out):
    u = x - shift_in
    return np.where(u > 0, u, slope * u) + shift_out


def np_rprelu_grads(x, shift_in, slope, shift_out, dy):
    u = x - shift_in
    dx = np.where(u > 0, 1.0, slope) * dy
    per_channel = lambda t: t.reshape(-1, x.shape[-1]).sum(0)  # noqa: E731
    return dx, -per_channel(dx), per_channel(np.minimum(u, 0) * dy), per_channel(dy)


def _gradients(layer, x, dy):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * dy)
    return y.numpy(), tape.gradient(loss, [x, *layer.trainable_weights])


# ---------------------------------------------------------------- values and gradients
def test_rsign_forward_and_gradients_match_numpy():
    x = RNG.uniform(-2, 2, size=(3, 5, 5, 8)).astype(np.float32)
    beta = RNG.uniform(-0.5, 0.5, size=8).astype(np.float32)
    x[0, 0, 0] = beta  # on the threshold: +1, as larq's sign
    dy = RNG.normal(size=x.shape).astype(np.float32)
    layer = RSign()
    layer.build(x.shape)
    layer.beta.assign(beta)
    y, (dx, dbeta) = _gradients(layer, x, dy)
    np.testing.assert_array_equal(y, np_rsign(x, beta))
    assert y[0, 0, 0].tolist() == [1.0] * 8
    expected_dx, expected_dbeta = np_rsign_grads(x, beta, dy)
    np.testing.assert_allclose(dx.numpy(), expected_dx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dbeta.numpy(), expected_dbeta, rtol=1e-4, atol=1e-5)
    # Both sides of the clip are exercised: some gradients vanish, others do not.
    assert 0 < np.mean(expected_dx == 0) < 1


def test_rsign_starts_as_plain_sign_and_is_a_binary_quantizer():
    layer = RSign()
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(layer(x), np_rsign(x, np.zeros(3, np.float32)))
    assert layer.precision == 1
    conv = BinaryConv2D(8, 3, input_quantizer=RSign())
    assert lq.layers.QuantConv2D in type(conv).__mro__
    assert isinstance(conv.input_quantizer, RSign)


def test_rprelu_forward_and_gradients_match_numpy():
    x = RNG.uniform(-2, 2, size=(3, 4, 4, 6)).astype(np.float32)
    weights = [RNG.uniform(-0.5, 0.5, 6).astype(np.float32) for _ in range(3)]
    dy = RNG.normal(size=x.shape).astype(np.float32)
    layer = RPReLU()
    layer.build(x.shape)
    assert [w.name.split("/")[-1] for w in layer.weights] == [
        "shift_in:0",
        "slope:0",
        "shift_out:0",
    ]
    layer.set_weights(weights)
    y, grads = _gradients(layer, x, dy)
    np.testing.assert_allclose(y, np_rprelu(x, *weights), rtol=1e-6, atol=1e-6)
    for actual, expected in zip(grads, np_rprelu_grads(x, *weights, dy), strict=True):
        np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_rprelu_starts_with_reactnets_values():
    layer = RPReLU()
    layer.build((None, 4, 4, 5))
    shift_in, slope, shift_out = layer.get_weights()
    np.testing.assert_array_equal(shift_in, np.zeros(5))
    np.testing.assert_array_equal(slope, np.full(5, 0.25))
    np.testing.assert_array_equal(shift_out, np.zeros(5))
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]], np.float32)
    np.testing.assert_allclose(layer(x), [[-0.5, -0.125, 0.0, 0.5, 3.0]])


@pytest.mark.parametrize("layer", [RSign(), RPReLU()], ids=lambda layer: type(layer).__name__)
def test_unknown_channels_are_a_clear_error(layer):
    with pytest.raises(ValueError, match="known number of channels"):
        layer.build(tf.TensorShape([None, 4, 4, None]))


# ---------------------------------------------------------------- serialization
@pytest.mark.parametrize(
    "layer",
    [
        RSign(beta_initializer=tf.keras.initializers.Constant(0.1), name="rsign"),
        RPReLU(slope_initializer=0.1, name="rprelu"),
        BinaryConv2D(8, 3, input_quantizer=RSign(), weight_scaling=True),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert tf.keras.utils.get_custom_objects()[type(layer).__name__] is type(layer)


def _reactnet_unit_model() -> tf.keras.Model:
    """RSign -> binary 3x3 -> BN -> + x -> RPReLU, twice (BinaryConv2D and plain larq)."""
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    conv = BinaryConv2D(32, 3, input_quantizer=RSign(), weight_scaling=True, name="bconv")
    larq_conv = lq.layers.QuantConv2D(
        32,
        1,
        input_quantizer=RSign(),
        kernel_quantizer="magnitude_aware_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="larq_conv",
    )
    for index, layer in enumerate((conv, larq_conv)):
        y = tf.keras.layers.BatchNormalization(name=f"bn{index}")(layer(x))
        y = tf.keras.layers.Add(name=f"add{index}")([y, x])
        x = RPReLU(name=f"act{index}")(y)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4, name="classifier")(x))


def _trained_thresholds(model: tf.keras.Model) -> tf.keras.Model:
    """Non-zero thresholds, slopes and shifts, as training leaves them."""
    for layer in model.layers:
        if isinstance(getattr(layer, "input_quantizer", None), RSign):
            beta = layer.input_quantizer.beta
            beta.assign(RNG.uniform(-0.3, 0.3, beta.shape))
        if isinstance(layer, RPReLU):
            layer.set_weights([RNG.uniform(-0.3, 0.3, w.shape) for w in layer.get_weights()])
    return model


def test_h5_round_trip_with_plain_keras_in_a_fresh_process(tmp_path):
    model = _trained_thresholds(_reactnet_unit_model())
    for conv in ("bconv", "larq_conv"):  # the thresholds are the conv's own weights
        assert model.get_layer(conv).input_quantizer.beta.name.startswith(f"{conv}/")
        assert model.get_layer(conv).input_quantizer.beta.name.endswith("/beta:0")
    x = RNG.uniform(-1, 1, size=(4, 8, 8, 3)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, RNG.normal(size=(4, 4)), epochs=2, verbose=0)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "model.h5")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", expected)
    np.save(tmp_path / "beta.npy", model.get_layer("bconv").input_quantizer.beta.numpy())
    script = textwrap.dedent(
        f"""
        import numpy as np
        import el_larq
        import tensorflow as tf
        model = tf.keras.models.load_model(r"{tmp_path}/model.h5")
        np.testing.assert_array_equal(
            model.get_layer("bconv").input_quantizer.beta.numpy(),
            np.load(r"{tmp_path}/beta.npy"),
        )
        expected = np.load(r"{tmp_path}/expected.npy")
        x = np.load(r"{tmp_path}/x.npy")
        np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
        print("LOADED-OK")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED-OK" in result.stdout


# ---------------------------------------------------------------- Larq Compute Engine
def test_convs_behind_rsign_convert_to_lce_bconv2d_with_the_threshold_as_a_sub():
    model = as_if_trained(_trained_thresholds(_reactnet_unit_model()))
    flatbuffer, messages = convert(model)
    report = census(model, flatbuffer, messages)
    assert sorted(report.accelerated) == ["bconv", "larq_conv"]
    assert not report.fallback and report.ops["LceBconv2d"] == 2
    ops = flatbuffer_ops(flatbuffer)
    # RSign's threshold: a SUB right before each LceQuantize; RPReLU: SUB, PRELU, ADD.
    assert [ops[i - 1] for i, op in enumerate(ops) if op == "LceQuantize"] == ["SUB", "SUB"]
    assert report.ops["PRELU"] == 2
    assert [ops[i - 1 : i + 2] for i, op in enumerate(ops) if op == "PRELU"] == [
        ["SUB", "PRELU", "ADD"]
    ] * 2
    x = RNG.uniform(-1, 1, size=(8, 8, 8, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    actual = np.asarray(lce.testing.Interpreter(flatbuffer, num_threads=1).predict(x))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
