"""el_larq.deploy.validation: truncated, random and hostile `.tflite` flatbuffers.

Every case is refused with one line before an interpreter sees it; that the
interpreter never crashes on a mutated file is observed in a subprocess, not assumed.
"""

import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import flatbuffer_ops
from el_larq.deploy.host import make_interpreter
from el_larq.deploy.validation import validate_flatbuffer
from el_larq.layers import el_conv
from el_larq.safety import DeploymentError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def flatbuffer() -> bytes:
    inputs = tf.keras.Input((8, 8, 32))
    x = el_conv(inputs, 32, 3, name="a")
    x = tf.keras.layers.MaxPool2D()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(4)(x)
    return convert(tf.keras.Model(inputs, outputs))[0]


def test_a_valid_flatbuffer_passes_and_lists_its_ops(flatbuffer):
    assert validate_flatbuffer(flatbuffer) == flatbuffer_ops(flatbuffer)
    assert "LceBconv2d" in flatbuffer_ops(flatbuffer)


def test_every_truncation_is_refused(flatbuffer):
    cuts = sorted(set(range(0, len(flatbuffer), 37)) | {len(flatbuffer) - 1})
    for cut in cuts:
        with pytest.raises(DeploymentError, match="not a valid TFLite flatbuffer"):
            validate_flatbuffer(flatbuffer[:cut], "m.tflite")


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
    with pytest.raises(DeploymentError, match="m.tflite is not a valid") as error:
        validate_flatbuffer(data, "m.tflite")
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
    with pytest.raises(DeploymentError, match="m.tflite is not a valid") as error:
        make_interpreter(_patched(flatbuffer, what), source="m.tflite")
    assert reason in str(error.value)


FUZZ = """
import random, sys
import el_larq
from el_larq.deploy.host import make_interpreter
from el_larq.safety import DeploymentError
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
        make_interpreter(bytes(mutated))  # builds and runs the model once
        outcomes["ran"] += 1
    except DeploymentError:
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
