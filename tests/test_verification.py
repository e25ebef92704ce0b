"""el_larq.deploy.verification: Keras against LCE's interpreter.

Random and labelled inputs, untrained BatchNorms, progress of long verifications.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from helpers import mixed_model

from el_larq.deploy.conversion import convert
from el_larq.deploy.profile import as_if_trained
from el_larq.deploy.verification import random_inputs, untrained_batchnorms, verify
from el_larq.layers import el_conv
from el_larq.safety import DeploymentError

RNG = np.random.default_rng(0)


def test_verification_passes_for_the_model_and_fails_for_another(mixed):
    model, flatbuffer, _ = mixed
    x = random_inputs(model, 8)
    check = verify(model, flatbuffer, x)
    assert check.passed, check.summary()
    assert check.samples == 8 and check.max_abs < 1e-3 * check.scale
    assert check.inputs_agreeing == 8 and "8 of 8 inputs within 0.001" in check.summary()
    uncounted = verify(model, flatbuffer, x, agree_rtol=None)
    assert uncounted.inputs_agreeing is None and "inputs within" not in uncounted.summary()
    looser = verify(model, flatbuffer, x, agree_rtol=0.5)
    assert looser.inputs_agreeing == 8 and "within 0.5 x max" in looser.summary()
    # Same architecture, other weights: the flatbuffer no longer matches the model.
    other = mixed_model()
    other.set_weights([w + RNG.normal(0, 0.5, w.shape) for w in other.get_weights()])
    mismatch = verify(other, flatbuffer, x)
    assert not mismatch.passed and mismatch.inputs_agreeing == 0
    assert "FAIL" in mismatch.summary()


def test_untrained_batchnorms_are_detected():
    inputs = tf.keras.Input((8, 8, 32))
    model = tf.keras.Model(inputs, el_conv(inputs, 32, 3, name="a"))
    assert untrained_batchnorms(model) == ["a_bn"]
    assert untrained_batchnorms(as_if_trained(model)) == []


def test_verification_with_labels_gates_the_labelled_top1():
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(8, 3)(inputs))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4, activation="softmax")(x))
    flatbuffer, _ = convert(model)
    x = random_inputs(model, 40)
    labels = model.predict(x, verbose=0).argmax(1)  # Keras is right on all of them
    check = verify(model, flatbuffer, x, labels=labels)
    assert check.keras_accuracy == check.lce_accuracy == 1.0 and check.passed
    assert "labelled top-1 Keras 100.00% vs LCE 100.00%" in check.summary()
    # A flatbuffer of another model: right by chance only, so the labelled gate fails.
    other = tf.keras.models.clone_model(model)
    wrong = verify(model, convert(other)[0], x, labels=labels, rtol=1e9, min_top1=0)
    assert wrong.lce_accuracy < 0.9 and not wrong.passed
    # The limit is never finer than one input: 1 of 40 images is 2.5 points.
    assert check.allowed_top1_drop == 1 / 40 and "(limit 2.50% lower)" in check.summary()
    one_flip = dataclasses.replace(check, lce_accuracy=39 / 40)
    assert one_flip.passed and not dataclasses.replace(check, lce_accuracy=38 / 40).passed
    with pytest.raises(DeploymentError, match="3 labels for 40 inputs"):
        verify(model, flatbuffer, x, labels=labels[:3])


def _model_and_flatbuffer():
    inputs = tf.keras.Input((8,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4, activation="softmax")(inputs))
    flatbuffer, _ = convert(model)
    return model, flatbuffer


def test_progress_lines_and_the_same_result(capsys):
    model, flatbuffer = _model_and_flatbuffer()
    x = np.random.default_rng(0).uniform(-1, 1, (150, 8)).astype(np.float32)
    labels = np.arange(150) % 4
    quiet = verify(model, flatbuffer, x, labels=labels)
    assert capsys.readouterr().err == ""
    shown = verify(model, flatbuffer, x, labels=labels, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert shown == quiet and shown.samples == 150
    assert lines[0].startswith("verify in LCE's interpreter: 64/150 inputs (42.7%), ")
    assert "inputs/s, ETA " in lines[0]
    assert lines[-1].startswith("verify in LCE's interpreter: 150 inputs in ")
    # a few inputs: no progress to show
    verify(model, flatbuffer, x[:16], progress=True)
    assert capsys.readouterr().err == ""
