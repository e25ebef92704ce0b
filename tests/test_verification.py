"""el_larq.deploy.verification: progress of long verifications."""

import numpy as np
import tensorflow as tf

from el_larq.deploy.conversion import convert
from el_larq.deploy.verification import verify


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
