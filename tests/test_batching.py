"""el_larq.deploy.batching: batched LCE interpreter calls give the one-by-one results."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_idx_dataset

from el_larq import zoo
from el_larq.deploy import batching
from el_larq.deploy.conversion import convert
from el_larq.deploy.int8 import quantize_weights
from el_larq.deploy.profile import as_if_trained
from el_larq.safety import DeploymentError
from el_larq.training import evaluate_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """EL-ResNet26 at 28 px (Squeeze links: RESHAPEs with a batch) as .h5 and .tflite."""
    directory = tmp_path_factory.mktemp("batching")
    model = zoo.get_model("el_resnet26", input_shape=(28, 28, 1), num_classes=10, width=0.125)
    as_if_trained(model)
    model.save(directory / "m.h5")
    flatbuffer, _ = convert(model)
    (directory / "m.tflite").write_bytes(flatbuffer)
    return directory, flatbuffer


def test_batched_outputs_equal_one_by_one(trained):
    _, flatbuffer = trained
    x = np.random.default_rng(0).uniform(-1, 1, (21, 28, 28, 1)).astype(np.float32)
    one = batching.BatchPredictor(flatbuffer, batch_size=1)
    batched = batching.BatchPredictor(flatbuffer, batch_size=8)
    expected = one.predict(x)
    actual = batched.predict(x)  # 8 + 8 + a padded 5
    assert batched.batched, batched.reason
    assert not one.batched and one.reason == "batch size 1"
    short = batching.BatchPredictor(flatbuffer, batch_size=8)
    np.testing.assert_array_equal(short.predict(x[:3]), expected[:3])  # checked, padded
    assert short.batched
    assert actual.shape == expected.shape == (21, 10)
    np.testing.assert_array_equal(actual, expected)


def test_int8_weights_run_batched_as_one_by_one():
    """Int8 weights (DEQUANTIZE of constants, a depthwise kernel among them) batch too."""
    model = zoo.get_model("el_mobilenet", input_shape=(32, 32, 3), num_classes=10, width=0.25)
    flatbuffer, _ = convert(as_if_trained(model))
    small, weights = quantize_weights(flatbuffer, min_elements=0, keep_input_layers=False)
    assert any(w.op == "DEPTHWISE_CONV_2D" and w.int8 for w in weights)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 32, 32, 3)).astype(np.float32)
    batched = batching.BatchPredictor(small, batch_size=4)
    np.testing.assert_array_equal(
        batched.predict(x), batching.BatchPredictor(small, batch_size=1).predict(x)
    )
    assert batched.batched, batched.reason


def test_with_batch_size_sets_the_interpreter_batch(trained):
    _, flatbuffer = trained
    from el_larq.deploy.host import make_interpreter

    interpreter = make_interpreter(batching.with_batch_size(flatbuffer, 4))
    assert interpreter.input_shapes[0][0] == 4 and interpreter.output_shapes[0] == (4, 10)
    assert batching.with_batch_size(flatbuffer, 1) is flatbuffer
    with pytest.raises(DeploymentError, match="batch_size must be >= 1"):
        batching.with_batch_size(flatbuffer, 0)
    with pytest.raises(DeploymentError, match="no batch of 1"):
        batching.with_batch_size(batching.with_batch_size(flatbuffer, 4), 8)


def test_default_batch_size():
    assert batching.default_batch_size((28, 28, 1)) == 32
    assert batching.default_batch_size((224, 224, 3)) == 6


def test_evaluate_batched_equals_one_by_one(trained, tmp_path):
    directory, _ = trained
    idx = make_idx_dataset(tmp_path / "idx", train=8, test=20)
    common = dict(data_dir=idx, batch_size=16)
    one = evaluate_model(str(directory / "m.tflite"), "fashion_mnist", **common)
    batched = evaluate_model(
        str(directory / "m.tflite"), "fashion_mnist", interpreter_batch=8, **common
    )
    assert one["interpreter_batch"] == 1 and batched["interpreter_batch"] == 8
    assert {k: v for k, v in one.items() if k != "interpreter_batch"} == {
        k: v for k, v in batched.items() if k != "interpreter_batch"
    }
    assert batched["examples"] == 20


def test_evaluate_cli_shows_progress_with_rate_and_eta(trained, tmp_path):
    directory, _ = trained
    idx = make_idx_dataset(tmp_path / "idx", train=8, test=20)
    result = subprocess.run(
        [sys.executable, "train/evaluate.py", "--model", str(directory / "m.tflite")]
        + ["--data_dir", idx, "--batch_size", "8", "--interpreter_batch", "4"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    label = f"evaluate {directory / 'm.tflite'}: "
    assert any(
        line.startswith(label + "8/20 images (40.0%), ") and "images/s, ETA " in line
        for line in lines
    ), result.stderr
    assert lines[-1].startswith(label + "20 images in ") and lines[-1].endswith("images/s")
    assert not [line for line in lines if "cuda" in line.lower()]  # no start-up noise either


def test_a_model_with_a_fixed_batch_falls_back_to_one_by_one():
    import tensorflow as tf

    inputs = tf.keras.Input((6,))
    # a graph that hard-codes batch 1 (SLICE's size): a batch of N gives 1 row
    first = tf.keras.layers.Lambda(lambda x: tf.slice(x, [0, 0], [1, 3]))(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(first))
    flatbuffer, _ = convert(model)
    x = np.random.default_rng(1).uniform(-1, 1, (10, 6)).astype(np.float32)
    predictor = batching.BatchPredictor(flatbuffer, batch_size=4)
    first = predictor.predict(x[:1])  # a short first call is checked too (padded)
    assert not predictor.batched  # its rows 2-4 were not the images'
    assert predictor.reason.startswith("batched outputs differ from one-by-one (")
    actual = np.concatenate([first, predictor.predict(x[1:])])
    one_by_one = batching.BatchPredictor(flatbuffer, batch_size=1).predict(x)
    np.testing.assert_array_equal(actual, one_by_one)


def test_benchmark_script_runs_and_writes_json(tmp_path):
    # The script's measuring loop on a handful of images (its real run: docs/results/).
    out = tmp_path / "batching.json"
    args = ["--image_size", "16", "--width", "0.125", "--batch_sizes", "4", "--images", "8"]
    result = subprocess.run(
        [sys.executable, "convert/benchmark_batching.py", *args, "--rounds", "1"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [row["batch_size"] for row in report["rows"]] == [1, 4]
    assert all(row["identical"] for row in report["rows"]) and report["rows"][1]["batched"]
    assert report["rows"][0]["speedup"] == 1.0 and "| 4 | True |" in result.stdout
    bad = subprocess.run(
        [sys.executable, "convert/benchmark_batching.py", "--batch_sizes", "4,x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == (
        "benchmark_batching.py: error: --batch_sizes must be integers >= 1, got ['4', 'x']"
    )
