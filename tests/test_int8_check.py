"""study/int8_check.py: predictions changed and top-1 of int8 variants, as a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import tensorflow as tf
from helpers import make_idx_dataset

from el_larq.layers import el_conv

SCRIPT = Path(__file__).resolve().parents[1] / "study" / "int8_check.py"


def test_int8_check_scores_every_variant_against_keras(tmp_path):
    data_dir = make_idx_dataset(tmp_path / "data", train=8, test=40)
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(16, 3, strides=2, name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = el_conv(x, 32, 3, name="binary")
    x = tf.keras.layers.Conv2D(512, 1, name="wide")(x)  # 16,384 weights, 0 binary convs after
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax", name="classifier")(x)
    tf.keras.Model(inputs, outputs).save(tmp_path / "m.h5")
    out = tmp_path / "check.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "m.h5"), f"--data_dir={data_dir}"]
        + ["--examples=40", "--stochastic_seeds=2", f"--json={out}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    assert row["examples"] == 40 and 0 <= row["keras_top1"] <= 1
    variants = ["float32", "default dequantize", "default hybrid", "default float16"]
    variants += ["default int8 stochastic 0", "default int8 stochastic 1"]
    for name in variants:
        assert 0 <= row[name]["changed"] <= 1 and row[name]["changed"] * 40 % 1 == 0
    # the default stores the wide conv as int8: a smaller file than float32
    assert row["default dequantize"]["bytes"] < row["float32"]["bytes"] - 2 * 16384
    assert row["float32"]["changed"] <= 1 / 40  # float32 rounding alone
    assert len(row["stochastic_mean_sd"]) == 2
