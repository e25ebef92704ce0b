"""el_larq.elasticize: any functional / Sequential Keras CNN -> binarized Elastic-Link network."""

import collections
import json
import subprocess
import sys
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import make_idx_dataset

from el_larq import training
from el_larq.deploy.census import census
from el_larq.deploy.conversion import convert
from el_larq.deploy.kinds import layer_kind
from el_larq.deploy.loading import load_model
from el_larq.deploy.pipeline import convert_model_file
from el_larq.deploy.profile import as_if_trained
from el_larq.elasticize import ElasticizeError, check_options, elasticize
from el_larq.layers import BinaryConv2D, BinaryDepthwiseConv2D, ElasticLink
from el_larq.summary import model_summary
from el_larq.zoo import el_resnet26, resnet26

ROOT = Path(__file__).resolve().parents[1]
L = tf.keras.layers
SHAPE = (32, 32, 3)


def user_cnn() -> tf.keras.Model:
    """A user-style Sequential CNN: convs with built-in ReLUs, a conv + BN + ReLU, Dense."""
    return tf.keras.Sequential(
        [
            tf.keras.Input(SHAPE),
            L.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            L.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            L.MaxPooling2D(name="pool"),
            L.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="conv3"),
            L.BatchNormalization(name="bn"),
            L.ReLU(name="relu"),
            L.Conv2D(64, 1, padding="same", name="conv4"),
            L.GlobalAveragePooling2D(name="pool_all"),
            L.Dense(10, activation="softmax", name="dense"),
        ],
        name="user_cnn",
    )


def mobilenet_v2() -> tf.keras.Model:
    return tf.keras.applications.MobileNetV2(
        weights=None, input_shape=SHAPE, alpha=0.35, classes=10
    )


def links(model: tf.keras.Model) -> list[ElasticLink]:
    return [layer for layer in model.layers if isinstance(layer, ElasticLink)]


def test_user_cnn_report_and_structure():
    float_model = user_cnn()
    binary, report = elasticize(float_model)
    actions = {row.name: row.action for row in report.rows}
    first, second, third, fourth = "conv1", "conv2", "conv3", "conv4"
    assert actions[first] == "kept float" and actions["dense"] == "kept float"
    assert report.binarized() == [second, third, fourth]
    assert actions["bn"] == "absorbed"  # reused after the strided conv
    by_name = {row.name: row for row in report.rows}
    assert (by_name[second].link, by_name[second].gamma) == ("expand", 2.0)  # 16 -> 32
    assert (by_name[third].link, by_name[third].gamma) == ("identity", None)
    assert (by_name[fourth].link, by_name[fourth].gamma) == ("expand", 2.0)  # 32 -> 64
    assert binary.get_layer(third).strides == (2, 2)
    assert binary.get_layer(f"{third}_el").strides == 2  # the max-pooled link
    assert [layer_kind(layer) for layer in binary.layers].count("binary") == 3
    table = str(report)
    assert table.splitlines()[0].split()[:3] == ["layer", "type", "action"]
    assert all(row.name in table for row in report.rows)
    assert binary.output_shape == float_model.output_shape


def test_after_a_relu_the_signs_are_not_all_plus_one():
    float_model = user_cnn()
    binary, _ = elasticize(float_model)
    conv = [layer for layer in binary.layers if isinstance(layer, BinaryConv2D)][0]
    before_sign = tf.keras.Model(binary.input, conv.input)
    relu_output = tf.keras.Model(binary.input, binary.get_layer("conv1").output)
    images = np.random.default_rng(0).normal(size=(8, *SHAPE)).astype("float32")
    # The float model's sign input would be the ReLU's output: every bit +1 (sign(0) = +1).
    assert (lq.quantizers.ste_sign(relu_output(images)).numpy() == 1).all()
    signs = lq.quantizers.ste_sign(before_sign(images, training=True)).numpy()
    assert 0.2 < (signs == 1).mean() < 0.8


@pytest.mark.parametrize("build", [user_cnn, mobilenet_v2], ids=["sequential", "MobileNetV2"])
def test_trains_round_trips_and_converts(build, tmp_path):
    binary, report = elasticize(build())
    # Eager: one step of a deep net is faster than tracing its training graph (graph-mode
    # training of an elasticized application: the train.py test below).
    binary.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, *SHAPE)).astype("float32")
    loss = binary.train_on_batch(images, rng.integers(0, 10, 4))
    assert np.isfinite(loss)
    binary.run_eagerly = False  # predict in graph mode, as `loaded` does: the same kernels
    path = tmp_path / "model.h5"
    binary.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), binary.predict(images, verbose=0))
    conversion = convert_model_file(path, tmp_path / "model.tflite", strict=True, samples=64)
    binary_convs = [layer.name for layer in binary.layers if layer_kind(layer) == "binary"]
    assert sorted(conversion.census.accelerated) == sorted(binary_convs)
    assert not conversion.census.fallback
    assert len(binary_convs) == sum(
        row.action == "binarized" and row.layer_type == "Conv2D" for row in report.rows
    )


def test_copy_weights_latent_kernels_and_bias_absorbed():
    float_model = user_cnn()
    for layer in float_model.layers:  # as if trained: non-trivial statistics and biases
        rng = np.random.default_rng(1)
        layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
    bn = float_model.get_layer("bn")
    bn.moving_variance.assign(np.full(32, 2.0))
    binary, _ = elasticize(float_model)
    second, third, fourth = (float_model.get_layer(f"conv{i}") for i in (2, 3, 4))
    for layer in (second, third, fourth):
        latent = binary.get_layer(layer.name).kernel.numpy()
        np.testing.assert_array_equal(latent, layer.kernel.numpy())
    # A conv bias goes into the inserted BatchNorm's beta ...
    inserted = binary.get_layer(f"{second.name}_bn")
    np.testing.assert_allclose(inserted.beta.numpy(), second.bias.numpy())
    # ... the reused BatchNorm keeps its statistics (the strided conv has no bias) ...
    np.testing.assert_allclose(
        binary.get_layer(bn.name).moving_mean.numpy(), bn.moving_mean.numpy()
    )
    # ... and a float layer keeps its weights.
    dense = float_model.get_layer("dense")
    np.testing.assert_array_equal(binary.get_layer("dense").kernel.numpy(), dense.kernel.numpy())
    fresh, _ = elasticize(float_model, copy_weights=False)
    assert not np.array_equal(fresh.get_layer(second.name).kernel.numpy(), second.kernel.numpy())


def test_bias_into_a_reused_batchnorm_keeps_the_inference_output():
    inputs = tf.keras.Input((8, 8, 16))
    x = L.Conv2D(16, 3, padding="same", name="stem")(inputs)
    x = L.Conv2D(16, 3, padding="same", use_bias=True, name="conv")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Conv2D(4, 1, name="head")(x)
    float_model = tf.keras.Model(inputs, x)
    rng = np.random.default_rng(2)
    float_model.get_layer("conv").bias.assign(rng.normal(size=16))
    float_model.get_layer("bn").moving_mean.assign(rng.normal(size=16))
    binary, _ = elasticize(float_model)
    conv, bn = binary.get_layer("conv"), binary.get_layer("bn")
    x = rng.normal(size=(2, 8, 8, 16)).astype("float32")
    pre_bias = conv(x) + float_model.get_layer("conv").bias
    expected = float_model.get_layer("bn")(pre_bias, training=False)
    np.testing.assert_allclose(bn(conv(x), training=False), expected, rtol=1e-5, atol=1e-5)


def cases_model() -> tf.keras.Model:
    """One conv of every special kind, each after a float stem."""
    inputs = tf.keras.Input((16, 16, 32))
    x = L.Conv2D(32, 3, padding="same", name="stem")(inputs)
    x = L.SeparableConv2D(64, 3, padding="same", name="separable")(x)
    x = L.Conv2D(64, 3, padding="same", dilation_rate=2, name="dilated")(x)
    x = L.Conv2D(64, 3, padding="same", groups=2, name="grouped")(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = L.Conv2D(64, 3, strides=2, padding="valid", name="padded_valid")(x)
    x = L.Conv2D(32, 1, padding="valid", name="pointwise_valid")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise")(x)
    x = L.Conv2D(64, 3, padding="valid", name="valid")(x)
    x = L.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, L.Dense(10, name="classifier")(x))


def test_each_special_conv_has_its_defined_rewrite():
    float_model = cases_model()
    binary, report = elasticize(float_model)
    rows = {row.name: row for row in report.rows}
    # SeparableConv2D: binary depthwise (identity link) + binary pointwise (expand 32 -> 64).
    assert rows["separable"].link == "identity+expand"
    assert isinstance(binary.get_layer("separable_depthwise"), BinaryDepthwiseConv2D)
    assert isinstance(binary.get_layer("separable"), BinaryConv2D)
    assert binary.get_layer("separable").kernel_size == (1, 1)
    # Dilated: binarized with an identity link.
    assert rows["dilated"].action == "binarized" and rows["dilated"].link == "identity"
    assert binary.get_layer("dilated").dilation_rate == (2, 2)
    # Grouped: kept float.
    assert rows["grouped"].action == "kept float" and "grouped" in rows["grouped"].reason
    # ZeroPadding2D + "valid" = "same": folded, strided max-pooled link from the unpadded input.
    assert rows["padded_valid"].action == "binarized" and rows["pad"].action == "absorbed"
    assert binary.get_layer("padded_valid").padding == "same"
    assert binary.get_layer("padded_valid_el").strides == 2
    assert "pad" not in [layer.name for layer in binary.layers]
    # A 1x1 "valid" conv is a "same" one; a k x k "valid" conv shrinks: kept float.
    assert (
        rows["pointwise_valid"].action == "binarized" and rows["pointwise_valid"].link == "squeeze"
    )
    assert rows["valid"].action == "kept float" and "'valid' padding" in rows["valid"].reason
    # Depthwise with a depth multiplier: an expand link.
    assert rows["depthwise"].link == "expand"
    assert rows["classifier"].action == "kept float"
    assert binary.output_shape == float_model.output_shape
    flatbuffer, messages = convert(as_if_trained(binary))
    result = census(binary, flatbuffer, messages)
    assert sorted(result.accelerated) == ["dilated", "padded_valid", "pointwise_valid", "separable"]
    assert not result.fallback


def test_keep_float_elastic_link_and_activation_scaling_options():
    float_model = cases_model()
    binary, report = elasticize(
        float_model,
        keep_float=["dilated"],
        elastic_link=False,
        activation_scaling=["pointwise_valid"],
        gamma_trainable=False,
    )
    assert {row.name: row.reason for row in report.rows}["dilated"] == "named in keep_float"
    assert not links(binary)
    assert all(row.link in ("", "none") for row in report.rows)
    assert binary.get_layer("pointwise_valid").activation_scaling
    assert not binary.get_layer("padded_valid").activation_scaling
    frozen, _ = elasticize(float_model, gamma_trainable=False)
    assert all(link.gamma is None or not link.gamma.trainable for link in links(frozen))


def test_resnet26_elasticized_has_el_resnet26_structure():
    kwargs = dict(input_shape=SHAPE, num_classes=10, width=0.25)
    # The two choices of the zoo's EL-ResNet26 that elasticize cannot infer: the
    # Bi-Real downsample shortcut stays float, K sits on the reduce convs only.
    binary, _ = elasticize(
        resnet26(**kwargs),
        keep_float=lambda layer: layer.name.endswith("_down_conv"),
        activation_scaling=lambda layer: layer.name.endswith("_reduce_conv"),
    )
    zoo = el_resnet26(**kwargs)
    fields = ("binary_convs", "binary_depthwise_convs", "float_convs", "el_modules", "gammas")
    assert {k: model_summary(binary)[k] for k in fields} == {
        k: model_summary(zoo)[k] for k in fields
    }

    def signature(model):
        return collections.Counter(
            (link.kind, link.strides, link.groups, link.gamma is not None) for link in links(model)
        ), sum(getattr(layer, "activation_scaling", False) for layer in model.layers)

    assert signature(binary) == signature(zoo)


@pytest.mark.parametrize("application", ["ResNetV2", "MobileNet", "DenseNet", "EfficientNet"])
def test_keras_applications_elasticize_train_round_trip_and_deploy(application, tmp_path):
    tf.keras.utils.set_random_seed(0)  # the same weights every run
    kwargs = dict(weights=None, input_shape=SHAPE, classes=10)
    # keras-applications' own builders (tf-keras exposes them only in these modules) at
    # a smaller depth: the same patterns in fewer blocks, since conversion time grows with
    # the layer count. The full ResNet50V2, DenseNet121 and EfficientNetB0 are trained and
    # deployed by study/elasticize_deploy_check.sh.
    if application == "ResNetV2":
        # ResNet50V2 with 2 blocks per stage instead of 3/4/6/3: a projection block and a
        # strided block (max-pooled identity shortcut) per stage, 8 blocks instead of 16.
        from tf_keras.src.applications import resnet

        def stack_fn(x):
            for filters, name in ((64, "conv2"), (128, "conv3"), (256, "conv4")):
                x = resnet.stack2(x, filters, 2, name=name)
            return resnet.stack2(x, 512, 2, stride1=1, name="conv5")

        float_model = resnet.ResNet(stack_fn, True, True, "resnet50v2", **kwargs)
    elif application == "MobileNet":
        float_model = tf.keras.applications.MobileNet(alpha=0.25, **kwargs)
    elif application == "DenseNet":
        # DenseNet121 with 2 layers per dense block instead of 6/12/24/16: the same
        # patterns (BN-ReLU-conv, concatenating blocks, transitions) in 20 convs, not 120.
        from tf_keras.src.applications.densenet import DenseNet

        float_model = DenseNet([2, 2, 2, 2], **kwargs)
    else:
        # EfficientNetB0 at half its depth: 10 MBConv blocks instead of 16, three of
        # them with the identity residual (a repeated block), squeeze-excitation in all.
        from tf_keras.src.applications.efficientnet import EfficientNet

        float_model = EfficientNet(1.0, 0.5, 224, model_name="efficientnetb0", **kwargs)
    binary, report = elasticize(float_model)
    kept = [row.name for row in report.rows if row.action == "kept float"]
    assert len(kept) == 2  # the stem conv and the classifier
    assert binary.output_shape == float_model.output_shape
    binary.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)  # as above
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, *SHAPE)).astype("float32")
    assert np.isfinite(binary.train_on_batch(images, rng.integers(0, 10, 4)))
    binary.run_eagerly = False  # as above
    # BatchNorm statistics as training gives them (one step barely moves them).
    as_if_trained(binary)
    path = tmp_path / "model.h5"
    binary.save(path)
    np.testing.assert_allclose(
        load_model(path).predict(images, verbose=0), binary.predict(images, verbose=0), atol=1e-5
    )
    # Verified against Keras, except EfficientNet: with random weights a swish output
    # that rounds to ~0 takes different signs in Keras and LCE in a squeeze-excitation
    # channel and the flip cascades (a trained one is verified by
    # study/elasticize_deploy_check.sh). ResNetV2 and DenseNet failed here too until
    # conversion worked around LCE's padding fusion (tests/test_rewrites.py).
    conversion = convert_model_file(
        path, tmp_path / "model.tflite", strict=True,
        verify_model=application != "EfficientNet", samples=64,
    )  # fmt: skip
    binary_convs = [layer.name for layer in binary.layers if isinstance(layer, BinaryConv2D)]
    assert len(binary_convs) > 10
    assert sorted(conversion.census.accelerated) == sorted(binary_convs)
    assert not conversion.census.fallback


class Subclassed(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = L.Conv2D(8, 3)

    def call(self, inputs):
        return self.conv(inputs)


def test_bad_inputs_are_one_line_errors():
    model = Subclassed()
    model(np.zeros((1, *SHAPE), "float32"))
    with pytest.raises(ElasticizeError, match="subclassed model") as error:
        elasticize(model)
    assert "\n" not in str(error.value)
    with pytest.raises(ElasticizeError, match="Sequential model without an Input"):
        elasticize(tf.keras.Sequential([L.Conv2D(8, 3), L.Conv2D(8, 3)]))
    with pytest.raises(ElasticizeError, match=r"keep_float names \['nope'\]"):
        elasticize(user_cnn(), keep_float=["nope"])
    inner = tf.keras.Sequential([tf.keras.Input((8, 8, 8)), L.Conv2D(8, 3)], name="inner")
    inputs = tf.keras.Input((8, 8, 8))
    with pytest.raises(ElasticizeError, match="'inner' is a nested model"):
        elasticize(tf.keras.Model(inputs, inner(inputs)))
    with pytest.raises(ElasticizeError, match="expects a tf.keras.Model"):
        elasticize(L.Conv2D(8, 3))
    assert issubclass(ElasticizeError, ValueError)


def test_train_cli_elasticizes_a_keras_application_with_its_options(tmp_path):
    # train.py as a real subprocess: --elasticize and its options reach elasticize().
    data_dir = make_idx_dataset(tmp_path / "data", train=16, test=8, size=32)
    out = tmp_path / "run"
    args = ["--model", "keras:MobileNet", "--elasticize", "--noelastic_link"]
    args += ["--keep_float", "conv_pw_13", "--activation_scaling", "all", "--nogamma_trainable"]
    args += ["--width", "0.25", "--batch_size", "8", "--epochs", "1", "--steps_per_epoch", "1"]
    args += ["--validation_steps", "1", "--data_dir", data_dir, "--nodownload"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "train" / "train.py"), *args, "--output_dir", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    options = json.loads((out / "config.json").read_text())["elasticize_options"]
    assert options == {
        "elastic_link": False,
        "keep_float": ["conv_pw_13"],
        "gamma_trainable": False,
        "activation_scaling": True,
    }
    trained = load_model(out / "model.h5")
    binary = [layer for layer in trained.layers if isinstance(layer, BinaryConv2D)]
    assert len(binary) == 12 and all(layer.activation_scaling for layer in binary)
    assert "conv_pw_13" not in {layer.name for layer in binary}
    assert not links(trained)


@pytest.mark.parametrize(
    ("model", "elasticize_", "message"),
    [
        ("keras:NoSuchNet", False, "tf.keras.applications has no builder 'NoSuchNet'"),
        ("el_resnet26", True, "--elasticize binarizes a keras: model"),
        ("keras:MobileNet", False, r"elasticize options \(gamma_on\) need --elasticize"),
        ("keras:MobileNet", True, "elasticize option gamma_on must be one of squeeze_expand, "),
    ],
)
def test_training_config_errors(tmp_path, model, elasticize_, message):
    overrides = {"output_dir": str(tmp_path), "elasticize": elasticize_}
    overrides["elasticize_options"] = {"gamma_on": "some"}
    with pytest.raises(training.ConfigError, match=message):
        training.resolve_config(overrides, model=model)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"elastic_links": False},
            "unknown elasticize option 'elastic_links'; valid: elastic_link,",
        ),
        ({"keep_float": "conv1"}, "keep_float must be a list of layer names, got 'conv1'"),
        ({"activation_scaling": [1]}, "activation_scaling must be true, false or a list of layer"),
        ({"elastic_link": "no"}, "elastic_link must be true or false"),
        ([], "options must be a mapping"),
    ],
)
def test_options_given_as_data_are_checked(options, message):
    with pytest.raises(ElasticizeError, match=message):
        check_options(options)
    assert check_options({"elastic_link": False, "keep_float": ["a"]}) == {
        "elastic_link": False,
        "keep_float": ["a"],
    }


def test_benchmark_script_times_calls_and_refuses_an_unknown_application(tmp_path):
    # The speed goal is measured by this script (DenseNet121, 224 px); here a small run.
    out = tmp_path / "bench.json"
    script = [sys.executable, "train/benchmark_elasticize.py", "--image_size", "32"]
    args = ["--application", "MobileNet", "--num_classes", "10", "--rounds", "2"]
    result = subprocess.run(
        [*script, *args, "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["application"] == "MobileNet" and len(record["rounds"]) == 2
    assert all(r["wall_s"] > 0 and r["cpu_s"] > 0 for r in record["rounds"])
    assert "first call" in result.stdout and "'binarized': 26" in result.stdout  # dw + pw
    bad = subprocess.run(
        [*script, "--application", "NoSuchNet"], capture_output=True, text=True, cwd=ROOT
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert (
        bad.stderr.strip()
        .splitlines()[-1]
        .startswith("benchmark_elasticize.py: error: Unknown model 'keras:NoSuchNet'")
    )


def test_padding_that_is_not_same_stays_in_front_of_a_valid_binary_conv():
    # ResNetV2's strided 3x3: 1 + 1 padding on an even input, where "same" pads 0 + 1.
    # Folding it into "same" would move every window of the binary conv by one pixel.
    inputs = tf.keras.Input((16, 16, 32))
    x = L.Conv2D(32, 3, padding="same", name="stem")(inputs)
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.Conv2D(64, 3, strides=2, padding="valid", name="strided")(x)
    x = L.GlobalAveragePooling2D()(x)
    float_model = tf.keras.Model(inputs, L.Dense(10, name="classifier")(x))
    binary, report = elasticize(float_model)
    rows = {row.name: row for row in report.rows}
    assert rows["strided"].action == "binarized" and rows["pad"].action == "absorbed"
    assert "kept before the 'valid' binary conv" in rows["strided"].reason
    conv = binary.get_layer("strided")
    assert conv.padding == "valid" and binary.get_layer("strided_el").strides == 2
    padding = conv._inbound_nodes[0].inbound_layers
    assert isinstance(padding, L.ZeroPadding2D) and padding.padding == ((1, 1), (1, 1))
    # The binary conv sees the float conv's windows: sign(pad(x)) with zeros as +1.
    stem_out = tf.keras.Model(binary.inputs, binary.get_layer("stem").output)
    images = np.random.default_rng(0).normal(size=(2, 16, 16, 32)).astype("float32")
    signs = tf.sign(tf.pad(stem_out(images), [[0, 0], [1, 1], [1, 1], [0, 0]]) + 1e-30)
    kernel = tf.sign(conv.kernel + 1e-30)
    expected = tf.nn.conv2d(signs, kernel, strides=2, padding="VALID")
    np.testing.assert_allclose(conv(padding(stem_out(images))), expected, atol=1e-4)
    flatbuffer, messages = convert(as_if_trained(binary))
    assert census(binary, flatbuffer, messages).accelerated == ["strided"]
