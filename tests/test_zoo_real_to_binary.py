"""Real-to-Binary family of the zoo: build, train a step, round-trip, convert with the census."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_most_inputs_agree

from el_larq.deploy.census import census
from el_larq.deploy.conversion import convert
from el_larq.deploy.kinds import layer_kind
from el_larq.deploy.profile import as_if_trained
from el_larq.deploy.verification import calibrated_copy
from el_larq.layers import BinaryConv2D
from el_larq.real_to_binary import ChannelGating, LearnedRescale, TanhSign, scaling_ops
from el_larq.summary import model_summary
from el_larq.zoo import get_model, real_to_binary

SMALL = dict(input_shape=(32, 32, 3), num_classes=10, width=0.25)
BUILDERS = sorted(real_to_binary.__all__)
# Real-to-Binary models and the full-precision twins whose blocks attention matching
# maps them to.
TEACHERS = {
    "r2b_resnet18": "resnet18",
    "r2b_resnet26": "resnet26",
    "r2b_resnet50": "resnet50",
    "el_r2b_resnet18": "resnet18",
    "el_r2b_resnet26": "resnet26",
    "el_r2b_resnet34": "resnet34",
    "el_r2b_resnet50": "resnet50",
    "el_r2b_mobilenet": "mobilenet",
}


def _layers(model: tf.keras.Model, kind) -> list:
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize(
    "name, switches",
    [(name, {}) for name in BUILDERS] + [("r2b_resnet18", {"scaling": "static"})],
)
def test_builds_trains_round_trips_and_converts_with_every_bconv_accelerated(
    name, switches, tmp_path
):
    tf.keras.utils.set_random_seed(0)
    model = get_model(name, **SMALL, **switches)
    assert model.name == name and model.output_shape == (None, 10)
    binary = [layer for layer in model.layers if layer_kind(layer) == "binary"]
    scales = _layers(model, ChannelGating) + _layers(model, LearnedRescale)
    # One gating (or static scale) per binary conv, standard or depthwise.
    binarized = [
        layer for layer in model.layers if layer_kind(layer) in ("binary", "binary_depthwise")
    ]
    assert len(scales) == len(binarized) > 0
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(8, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=8)
    model.compile(
        tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True
    )
    assert np.isfinite(model.train_on_batch(x, y))
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())

    expected = model(x, training=False).numpy()
    model.save(tmp_path / "model.h5")
    loaded = tf.keras.models.load_model(tmp_path / "model.h5", compile=False)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected)

    # BatchNorms as after training: random scales and offsets (as_if_trained) and the
    # statistics of the data (calibrated_copy). With random statistics as well, a deep
    # net saturates its softmax, and one sign flip near zero moves a whole output.
    model = calibrated_copy(as_if_trained(model), x)
    flatbuffer, messages = convert(model)
    report = census(model, flatbuffer, messages)
    assert sorted(report.accelerated) == sorted(layer.name for layer in binary)
    assert not report.fallback
    if switches.get("scaling") != "static":  # the gating's float ops, one set per gate
        # Two dense layers per gate (+ the classifier), one sigmoid per gate.
        assert report.ops["FULLY_CONNECTED"] == 2 * len(scales) + 1
        assert report.ops["LOGISTIC"] == len(scales)
    # 16 images, 8 of them unseen by the calibration: most must agree (coin-toss sign
    # flips near zero move a few; see assert_most_inputs_agree).
    unseen = rng.uniform(-1, 1, size=x.shape).astype(np.float32)
    assert_most_inputs_agree(model, flatbuffer, np.concatenate([x, unseen]))

    if name in TEACHERS:  # attention matching maps its blocks to the float twin's
        teacher = get_model(TEACHERS[name], **SMALL)
        assert _block_outputs(model) == _block_outputs(teacher)
        blocks = 13 if "mobilenet" in name else 16 if name[-2:] in ("34", "50") else 8
        assert len(_block_outputs(model)) == blocks


def _block_outputs(model: tf.keras.Model) -> dict:
    return {
        layer.name: layer.output_shape
        for layer in model.layers
        if layer.name.startswith(("stage", "block")) and layer.name.endswith("_out")
    }


@pytest.mark.parametrize("name", ["el_r2b_resnet26", "r2b_resnet18", "el_r2b_mobilenet"])
def test_every_stage_has_the_same_weights_and_loads_the_previous_one(name, tmp_path):
    tf.keras.utils.set_random_seed(0)
    # Stage 2 (real weights, soft activations) and stage 3 (binary).
    soft = get_model(name, **SMALL, binary_weights=False, soft_activations=True)
    final = get_model(name, **SMALL)
    signature = [[(w.name, tuple(w.shape)) for w in model.weights] for model in (soft, final)]
    assert signature[0] == signature[1]
    assert not any(layer_kind(layer) in ("binary", "binary_depthwise") for layer in soft.layers)
    quantized = [layer for layer in soft.layers if hasattr(layer, "input_quantizer")]
    assert quantized and all(isinstance(q.input_quantizer, TanhSign) for q in quantized)
    soft.save_weights(tmp_path / "stage2.h5")
    final.load_weights(tmp_path / "stage2.h5")
    for a, b in zip(soft.get_weights(), final.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_el_dagger_is_the_el_net_plus_gating_and_r2b_differs_from_it_only_in_links():
    models = {name: get_model(name, **SMALL) for name in ("el_resnet26", "el_r2b_resnet26")}
    models["r2b_resnet26"] = get_model("r2b_resnet26", **SMALL)

    def layers(name):
        return {(layer.name, type(layer).__name__) for layer in models[name].layers[1:]}

    el, el_r2b, r2b = layers("el_resnet26"), layers("el_r2b_resnet26"), layers("r2b_resnet26")
    gates = {(n, t) for n, t in el_r2b if t == "ChannelGating"}
    assert len(gates) == 24 and el_r2b - gates == el
    links = {
        (f"stage{s}_block{b}_{position}_{suffix}", kind)
        for s, b in [(s, b) for s in range(1, 5) for b in (1, 2)]
        for position in ("reduce", "expand")
        for suffix, kind in (("el", "ElasticLink"), ("add", "Add"))
    }
    assert el_r2b - r2b == links

    # FLOPs (Bi-Real convention) count the gating's float work; binary MACs are the same.
    el_summary, r2b_summary = (model_summary(models[n]) for n in ("el_resnet26", "el_r2b_resnet26"))
    gating = [
        layer for layer in models["el_r2b_resnet26"].layers if isinstance(layer, ChannelGating)
    ]
    assert r2b_summary["scaling_ops"] == sum(scaling_ops(layer) for layer in gating) > 0
    assert el_summary["scaling_ops"] == 0
    assert r2b_summary["binary_macs"] == el_summary["binary_macs"]
    assert r2b_summary["flops"] - el_summary["flops"] == r2b_summary["scaling_ops"]


def test_gating_with_k():
    def k_convs(**switches):
        model = get_model("el_r2b_resnet26", **SMALL, **switches)
        return [layer.name for layer in _layers(model, BinaryConv2D) if layer.activation_scaling]

    both = k_convs()
    assert len(both) == 8 and all(name.endswith("_reduce_conv") for name in both)
    assert k_convs(gating_with_k="gating_only") == []
    with pytest.raises(ValueError, match="gating_with_k must be one of"):
        k_convs(gating_with_k="k_only")


def test_builders_take_keyword_arguments_only_and_check_scaling():
    with pytest.raises(TypeError):
        real_to_binary.el_r2b_resnet50((32, 32, 3))
    with pytest.raises(ValueError, match="scaling must be one of"):
        real_to_binary.r2b_resnet18(**SMALL, scaling="xnor")
