"""el_larq.safety: hostile or broken model files, flatbuffers, output paths, device values.

Every hostile case is a real file (Keras saves it, or bytes are cut or flipped) and the
check must refuse it with one line before anything acts on it; the side effects that
must never happen (code from a file runs, the interpreter crashes) are observed, not
assumed.
"""

import json
import os
import random
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import pytest
import tensorflow as tf
from larq_compute_engine.mlir.python import tflite_schema

from el_larq import lce, safety
from el_larq.layers import el_conv
from el_larq.zoo import get_model

ROOT = Path(__file__).resolve().parents[1]


def _marker_lambda(marker: Path, name: str = "evil") -> tf.keras.layers.Lambda:
    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()  # proves that the stored code ran
        return x

    return tf.keras.layers.Lambda(side_effect, name=name)


def _nested_lambda_model(kind: str, marker: Path) -> tf.keras.Model:
    """A model whose Lambda is not a top-level layer."""
    if kind == "time_distributed":
        inputs = tf.keras.Input((2, 8, 8, 4))
        return tf.keras.Model(
            inputs, tf.keras.layers.TimeDistributed(_marker_lambda(marker), name="td")(inputs)
        )
    inputs = tf.keras.Input((8, 8, 4))
    if kind == "nested_sequential":
        inner = tf.keras.Sequential(
            [tf.keras.layers.Conv2D(4, 1), _marker_lambda(marker)], name="inner"
        )
    else:  # a Functional model inside a Functional model inside the file's model
        x = tf.keras.Input((8, 8, 4))
        deepest = tf.keras.Model(x, _marker_lambda(marker)(x), name="deepest")
        y = tf.keras.Input((8, 8, 4))
        inner = tf.keras.Model(y, deepest(y), name="inner")
    return tf.keras.Model(inputs, inner(inputs))


# ---------------------------------------------------------------- stored code
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("kind", ["time_distributed", "nested_sequential", "nested_functional"])
def test_nested_lambda_is_refused_and_its_code_never_runs(tmp_path, kind, suffix):
    marker = tmp_path / "code-ran"
    path = tmp_path / f"model{suffix}"
    _nested_lambda_model(kind, marker).save(path)
    marker.unlink()  # building the model ran it once; the file must not run it again
    with pytest.raises(lce.DeploymentError, match=r"Lambda layer\(s\) evil in .*--allow_unsafe"):
        lce.load_model(path)
    assert not marker.exists()


def test_nested_lambda_in_a_saved_model_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    _nested_lambda_model("time_distributed", marker).save(tmp_path / "sm", save_format="tf")
    marker.unlink()
    with pytest.raises(lce.DeploymentError, match=r"Lambda layer\(s\) evil"):
        lce.load_model(tmp_path / "sm")
    assert not marker.exists()


def _functional(*layers: dict) -> dict:
    return {"class_name": "Functional", "config": {"name": "model", "layers": list(layers)}}


LAMBDA = {
    "class_name": "Lambda",
    "config": {"name": "evil", "function": ["4wEAAAAA", None, None], "function_type": "lambda"},
}


@pytest.mark.parametrize(
    "config, found",
    [
        # Wrappers and RNN cells keep their layers under other keys than "layers".
        (
            _functional(
                {
                    "class_name": "Bidirectional",
                    "config": {
                        "name": "bi",
                        "layer": {"class_name": "LSTM", "config": {"name": "fw"}},
                        "backward_layer": LAMBDA,
                    },
                }
            ),
            "Lambda layer(s) evil in bi",
        ),
        (
            _functional(
                {
                    "class_name": "RNN",
                    "config": {
                        "name": "rnn",
                        "cell": {
                            "class_name": "StackedRNNCells",
                            "config": {"name": "cells", "cells": [LAMBDA]},
                        },
                    },
                }
            ),
            "Lambda layer(s) evil in rnn/cells",
        ),
        # Any key at any depth, including ones Keras does not use for layers today.
        (_functional({"class_name": "Dense", "config": {"name": "d", "x": [[LAMBDA]]}}), "evil"),
        # An op layer naming a TensorFlow function that writes files.
        (
            _functional(
                {"class_name": "TFOpLambda", "config": {"name": "w", "function": "io.write_file"}}
            ),
            "TFOpLambda layer(s) w (calls tf.io.write_file)",
        ),
        # Another class carrying bytecode under Lambda's keys.
        (
            _functional({"class_name": "Dense", "config": {"name": "d", "function": ["AAAA"]}}),
            "Dense layer(s) d (stores code under 'function')",
        ),
        (_functional({"class_name": "TensorFlowOpLayer", "config": {"name": "op"}}), "op"),
        (_functional({"class_name": "__lambda__", "config": {"code": "AAAA"}}), "lambda"),
    ],
)
def test_code_anywhere_in_a_config_is_refused_unless_allowed(config, found):
    with pytest.raises(lce.DeploymentError, match="run code stored in the file") as error:
        safety.check_model_config(config, source="m.h5")
    assert found in str(error.value)
    safety.check_model_config(config, source="m.h5", allow_unsafe=True)


@pytest.mark.parametrize(
    "obj, reason",
    [
        ({"class_name": "Evil", "config": {"name": "e"}}, "unknown layer class 'Evil' (at e in d)"),
        (
            {"class_name": "Dense", "module": "os", "config": {"name": "d"}},
            "names the Python module 'os'",
        ),
        (
            {"class_name": "function", "module": "builtins", "config": "eval"},
            "function 'eval' at d is neither a Keras activation",
        ),
    ],
)
def test_unknown_classes_and_foreign_modules_are_refused_even_when_allowed(obj, reason):
    config = _functional({"class_name": "Dense", "config": {"name": "d", "bias": obj}})
    with pytest.raises(lce.DeploymentError, match="m.keras") as error:
        safety.check_model_config(config, source="m.keras", allow_unsafe=True)
    assert reason in str(error.value)


def test_op_layers_doing_tensor_maths_still_load(tmp_path):
    inputs = tf.keras.Input((8, 8, 4))
    outputs = tf.reshape(tf.math.multiply(inputs, 2.0), (-1, 256))  # op layers
    tf.keras.Model(inputs, outputs).save(tmp_path / "ops.h5")
    classes = json.dumps(safety.read_model_config(tmp_path / "ops.h5"))
    assert "TFOpLambda" in classes
    assert lce.load_model(tmp_path / "ops.h5").output_shape == (None, 256)


@pytest.mark.parametrize("name", ["el_resnet18", "el_mobilenet", "bireal_resnet18"])
def test_zoo_models_pass_the_config_check_in_every_format(tmp_path, name):
    model = get_model(name, input_shape=(16, 16, 3), num_classes=10, width=0.25)
    model.save(tmp_path / "m.h5")
    model.save(tmp_path / "m.keras")
    for path in (tmp_path / "m.h5", tmp_path / "m.keras"):
        safety.check_model_file(path)
    assert lce.load_model(tmp_path / "m.keras").count_params() == model.count_params()


def test_saved_model_of_a_zoo_model_passes_the_config_check(tmp_path):
    model = get_model("el_resnet18", input_shape=(16, 16, 3), num_classes=10, width=0.25)
    model.save(tmp_path / "sm", save_format="tf")
    safety.check_model_file(tmp_path / "sm")


# ---------------------------------------------------------------- corrupt configs
def _with_config(tmp_path: Path, text: str) -> Path:
    inputs = tf.keras.Input((8, 8, 32))
    tf.keras.Model(inputs, el_conv(inputs, 32, 3, name="a")).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "a") as f:
        f.attrs["model_config"] = text
    return tmp_path / "m.h5"


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"class_name": "Functional", "config": ', "is not valid JSON"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"a": ' * 150 + "1" + "}" * 150, "nested more than 100 levels deep"),
    ],
)
def test_corrupt_or_absurdly_nested_configs_are_one_line_errors(tmp_path, text, reason):
    path = _with_config(tmp_path, text)
    with pytest.raises(lce.DeploymentError, match=reason) as error:
        lce.load_model(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_a_zip_not_named_keras_is_not_read_as_a_keras_archive(tmp_path):
    # Keras decides the format by the name; reading another config than it builds
    # would check the wrong one.
    with zipfile.ZipFile(tmp_path / "m.h5", "w") as archive:
        archive.writestr("config.json", json.dumps(_functional()))
    with pytest.raises(lce.DeploymentError, match="must be named \\*.keras"):
        safety.read_model_config(tmp_path / "m.h5")


# ---------------------------------------------------------------- flatbuffers
@pytest.fixture(scope="module")
def flatbuffer() -> bytes:
    inputs = tf.keras.Input((8, 8, 32))
    x = el_conv(inputs, 32, 3, name="a")
    x = tf.keras.layers.MaxPool2D()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(4)(x)
    return lce.convert(tf.keras.Model(inputs, outputs))[0]


def test_a_valid_flatbuffer_passes_and_lists_its_ops(flatbuffer):
    assert safety.validate_flatbuffer(flatbuffer) == lce.flatbuffer_ops(flatbuffer)
    assert "LceBconv2d" in lce.flatbuffer_ops(flatbuffer)


def test_every_truncation_is_refused(flatbuffer):
    cuts = sorted(set(range(0, len(flatbuffer), 37)) | {len(flatbuffer) - 1})
    for cut in cuts:
        with pytest.raises(lce.DeploymentError, match="not a valid TFLite flatbuffer"):
            safety.validate_flatbuffer(flatbuffer[:cut], "m.tflite")


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "it is empty"),
        (bytes(random.Random(0).randrange(256) for _ in range(5000)), "no 'TFL3' identifier"),
        (b"\x10\0\0\0TFL3" + bytes(random.Random(1).randrange(256) for _ in range(5000)), ""),
        (b"\xff\xff\xff\x7fTFL3" + b"\0" * 64, "outside the file"),
    ],
)
def test_empty_random_and_garbage_flatbuffers_are_refused(data, reason):
    with pytest.raises(lce.DeploymentError, match="m.tflite is not a valid") as error:
        safety.validate_flatbuffer(data, "m.tflite")
    assert reason in str(error.value)


def _patched(flatbuffer: bytes, what: str) -> bytes:
    """`flatbuffer` with one field set out of range, found through the schema bindings."""
    data = bytearray(flatbuffer)
    model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)
    if what == "custom op":
        at = bytes(data).index(b"LceBconv2d")
        data[at : at + 10] = b"LceXconv2d"
    elif what == "buffer index":
        tab = graph.Tensors(0)._tab
        struct.pack_into("<I", data, tab.Pos + tab.Offset(8), 9999)
    elif what == "tensor index":
        tab = graph.Operators(0)._tab
        vector = tab.Vector(tab.Offset(6))
        struct.pack_into("<i", data, vector, 9999)
    elif what == "opcode index":
        tab = graph.Operators(1)._tab
        struct.pack_into("<I", data, tab.Pos + tab.Offset(4), 9999)
    return bytes(data)


@pytest.mark.parametrize(
    "what, reason",
    [
        ("custom op", "ops this interpreter does not know: custom op 'LceXconv2d'"),
        ("buffer index", "refers to buffer 9999"),
        ("tensor index", "refers to tensor 9999"),
        ("opcode index", "op code index 9999"),
    ],
)
def test_out_of_range_indices_and_unknown_ops_are_refused(flatbuffer, what, reason):
    with pytest.raises(lce.DeploymentError, match="m.tflite is not a valid") as error:
        lce.make_interpreter(_patched(flatbuffer, what), source="m.tflite")
    assert reason in str(error.value)


FUZZ = """
import random, sys
import el_larq
from el_larq import lce
data = open(sys.argv[1], "rb").read()
rng = random.Random(0)
outcomes = {"ran": 0, "refused": 0}
for _ in range(int(sys.argv[2])):
    mutated = bytearray(data)
    for _ in range(rng.choice([1, 2, 4])):
        # Half the flips land in the first 2 KB: tables and offsets, not weights.
        limit = len(mutated) if rng.random() < 0.5 else min(len(mutated), 2048)
        mutated[rng.randrange(limit)] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    try:
        lce.make_interpreter(bytes(mutated))  # builds and runs the model once
        outcomes["ran"] += 1
    except lce.DeploymentError:
        outcomes["refused"] += 1
print(outcomes)
"""


def test_mutated_flatbuffers_never_crash_the_interpreter(flatbuffer, tmp_path):
    """Random byte flips: each one is refused or runs; none kills the process (the
    interpreter alone segfaults on many of them)."""
    (tmp_path / "m.tflite").write_bytes(flatbuffer)
    result = subprocess.run(
        [sys.executable, "-c", FUZZ, str(tmp_path / "m.tflite"), "300"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = eval(result.stdout.strip().splitlines()[-1])  # noqa: S307  (our own dict)
    assert outcomes["ran"] + outcomes["refused"] == 300 and outcomes["refused"] > 50


def test_evaluate_cli_reports_a_truncated_flatbuffer_in_one_line(flatbuffer, tmp_path):
    (tmp_path / "m.tflite").write_bytes(flatbuffer[: len(flatbuffer) // 3])
    result = subprocess.run(
        [sys.executable, str(ROOT / "train" / "evaluate.py"), "--model", tmp_path / "m.tflite"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]  # not 139 (SIGSEGV)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("evaluate.py: error: ") and "not a valid TFLite flatbuffer" in last
    assert str(tmp_path / "m.tflite") in last  # names the file
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- output paths
def test_outputs_that_are_inputs_or_each_other_are_refused(tmp_path):
    model = tmp_path / "m.h5"
    model.write_bytes(b"model")
    os.symlink(model, tmp_path / "link.h5")
    os.link(model, tmp_path / "hard.h5")
    (tmp_path / "sm").mkdir()
    cases = {
        "m.h5": "would overwrite the input",
        "link.h5": "would overwrite the input",
        "hard.h5": "would overwrite the input",
        "sub/../m.h5": "would overwrite the input",
    }
    for output, reason in cases.items():
        with pytest.raises(lce.DeploymentError, match=reason):
            safety.check_outputs([model], {"-o": tmp_path / output})
    with pytest.raises(lce.DeploymentError, match="would overwrite the input"):
        safety.check_outputs([tmp_path / "sm"], {"-o": tmp_path / "sm" / "saved_model.pb"})
    with pytest.raises(lce.DeploymentError, match="--json .* is the same file as -o"):
        safety.check_outputs([model], {"-o": tmp_path / "x", "--json": Path(f"{tmp_path}/./x")})
    safety.check_outputs([model], {"-o": tmp_path / "m.tflite", "--json": None})
    assert model.read_bytes() == b"model"


# ---------------------------------------------------------------- device values
@pytest.mark.parametrize(
    "host",
    ["-oProxyCommand=touch pwned", "pi@host;touch pwned", "pi@host name", "host:/tmp", "a/b", ""],
)
def test_hosts_that_could_be_options_or_paths_are_refused(host):
    with pytest.raises(lce.DeploymentError, match="--host"):
        safety.check_ssh_host(host)


@pytest.mark.parametrize(
    "remote_dir, reason",
    [
        ("tmp/lce", "absolute"),
        ("/tmp/$(touch pwned)", "may only contain"),
        ("/tmp/a b", "may only contain"),
        ("/tmp/x\n/y", "may only contain"),
        ("/tmp/'x'", "may only contain"),
    ],
)
def test_remote_dirs_that_need_quoting_or_are_relative_are_refused(remote_dir, reason):
    with pytest.raises(lce.DeploymentError, match=reason):
        safety.check_remote_dir(remote_dir)


def test_remote_names_are_plain_and_never_options():
    assert safety.remote_name("out/my model;$(x).tflite") == "my_model___x_.tflite"
    assert safety.remote_name("-rf.tflite") == "_rf.tflite"
    assert safety.check_ssh_host("pi@raspberrypi.local") == "pi@raspberrypi.local"
    assert safety.check_remote_dir("/data/local/tmp/") == "/data/local/tmp"
