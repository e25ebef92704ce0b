"""el_larq.deploy.loading: models load with el_larq's layers.

Stored code and unknown classes are refused before anything runs; bad files are
one-line errors.
"""

import h5py
import pytest
import tensorflow as tf

from el_larq.deploy.loading import load_model
from el_larq.layers import el_conv
from el_larq.safety import DeploymentError


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
    with pytest.raises(DeploymentError, match=r"Lambda layer\(s\) evil.*--allow_unsafe"):
        load_model(tmp_path / "lambda.h5")
    assert not marker.exists()
    assert isinstance(load_model(tmp_path / "lambda.h5", allow_unsafe=True), tf.keras.Model)


def test_lambda_in_a_saved_model_is_refused(tmp_path):
    inputs = tf.keras.Input((8, 8, 32))
    x = tf.keras.layers.Lambda(lambda t: t * 2, name="doubler")(inputs)
    tf.keras.Model(inputs, x).save(tmp_path / "sm", save_format="tf")
    with pytest.raises(DeploymentError, match="doubler"):
        load_model(tmp_path / "sm")


def test_keras_archive_loads_and_its_lambda_is_refused(tmp_path):
    _small_model().save(tmp_path / "good.keras")
    assert load_model(tmp_path / "good.keras").count_params() == _small_model().count_params()
    inputs = tf.keras.Input((8, 8, 32))
    x = tf.keras.layers.Lambda(lambda t: t * 2, name="doubler")(inputs)
    tf.keras.Model(inputs, x).save(tmp_path / "lambda.keras")
    with pytest.raises(DeploymentError, match="Lambda layer\\(s\\) doubler"):
        load_model(tmp_path / "lambda.keras")


class Unregistered(tf.keras.layers.Layer):
    def call(self, x):
        return x


def test_unknown_layer_class_lists_the_registered_ones(tmp_path):
    inputs = tf.keras.Input((8, 8, 32))
    tf.keras.Model(inputs, Unregistered()(inputs)).save(tmp_path / "custom.h5")
    with pytest.raises(DeploymentError, match="unknown layer class 'Unregistered'") as error:
        load_model(tmp_path / "custom.h5")
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
        with pytest.raises(DeploymentError, match=reason) as error:
            load_model(tmp_path / name)
        assert "\n" not in str(error.value)
    with h5py.File(tmp_path / "good.h5") as f:
        assert "model_config" in f.attrs
    assert load_model(tmp_path / "good.h5").count_params() > 0
