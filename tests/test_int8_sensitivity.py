"""convert/int8_sensitivity.py: each float layer alone as int8, scored on labelled images."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from helpers import make_idx_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "convert" / "int8_sensitivity.py"


def test_every_float_layer_is_scored_alone_next_to_keras_and_the_defaults(tmp_path):
    data_dir = make_idx_dataset(tmp_path / "data", train=8, test=24)
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(16, 3, strides=2, name="stem")(inputs)
    x = tf.keras.layers.Conv2D(32, 1, activation="relu", name="middle")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax", name="classifier")(x)
    tf.keras.Model(inputs, outputs).save(tmp_path / "m.h5")
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(tmp_path / "m.h5"),
            f"--data_dir={data_dir}",
            "--split=train",  # choosing layers without the test set
            f"--json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {row["variant"]: row for row in json.loads(out.read_text())}
    assert list(rows)[:4] == [
        "Keras",
        "float32 flatbuffer",
        "all float layers int8",
        "default (0 tensors int8)",  # every tensor is small, the stem reads the input
    ]
    only = [name for name in rows if name.startswith("only ")]
    assert len(only) == 3 and all(rows[name]["int8_tensors"] == 1 for name in only)
    assert rows["all float layers int8"]["int8_tensors"] == 3
    assert rows["all float layers int8"]["bytes"] < rows["float32 flatbuffer"]["bytes"]
    assert all(row["examples"] == 8 and 0 <= row["top1"] <= 1 for row in rows.values())
    # A float model in LCE's interpreter scores what Keras scores.
    assert abs(rows["float32 flatbuffer"]["top1"] - rows["Keras"]["top1"]) <= 1 / 8
    # Predictions changed, image by image, against the float32 flatbuffer.
    assert rows["float32 flatbuffer"]["changed"] == 0
    assert all(0 <= row["changed"] <= 1 and row["changed"] * 8 % 1 == 0 for row in rows.values())
    assert [rows[name]["binary_after"] for name in only] == [0, 0, 0]  # no binary convs
    assert rows["Keras"]["binary_after"] is None
    assert "| Keras | 0 | - | - |" in result.stdout
    assert "(8 images of fashion_mnist train; predictions changed" in result.stdout


@pytest.mark.parametrize(
    ("command", "prog"),
    [
        ([str(SCRIPT)], "int8_sensitivity"),
        (["-m", "el_larq", "int8-sensitivity"], "el-larq int8-sensitivity"),  # the package's
    ],
)
def test_a_missing_model_is_one_line(command, prog, tmp_path):
    result = subprocess.run(
        [sys.executable, *command, str(tmp_path / "none.h5")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"{prog}: error: ")
    assert "Traceback" not in result.stderr
