"""convert/to_lce.py as a user runs it: real subprocesses, real converter and interpreter."""

import concurrent.futures
import fcntl
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.profile import as_if_trained
from el_larq.layers import BinaryConv2D, el_conv
from el_larq.zoo import get_model

SCRIPT = Path(__file__).resolve().parents[1] / "convert" / "to_lce.py"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def run(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def _model(input_shape=(16, 16, 3), *, grouped=False, binary=True) -> tf.keras.Model:
    # Fixed initial weights: int8 weights of an untrained float model move its top-1 on
    # random inputs by chance, about one initialisation in eight below the 85 % gate.
    tf.keras.utils.set_random_seed(1)
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = el_conv(x, 16, 1, binary=binary, name="reduce")
    x = el_conv(x, 16, 3, strides=2, binary=binary, name="spatial")
    if grouped:  # 8 input channels per group: LCE keeps it a float CONV_2D
        x = BinaryConv2D(16, 3, groups=2, name="grouped")(x)
    x = el_conv(x, 64, 1, binary=binary, name="expand")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, name="classifier")(x)
    return as_if_trained(tf.keras.Model(inputs, outputs))


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def _inputs(root: Path) -> dict[str, Path]:
    paths = {
        "el": root / "el.h5",
        "grouped": root / "grouped.h5",
        "float": root / "float.h5",
        "fashion": root / "fashion_saved_model",
    }
    _model().save(paths["el"])
    _model(grouped=True).save(paths["grouped"])
    _model(binary=False).save(paths["float"])
    _model((28, 28, 1)).save(paths["fashion"], save_format="tf")
    return paths


def _cases(models: dict[str, Path], out: Path) -> dict[str, list]:
    names = ["grouped", "fashion", "strict", "float", "int8", "int8-default", "mismatch", "bad"]
    names.append("unwritable")
    for name in [*names, "lambda", "same", "zoo"]:
        (out / name).mkdir(exist_ok=True)
    # A Lambda inside TimeDistributed whose stored code would leave a marker file.
    marker = out / "lambda" / "code-ran"

    def side_effect(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    inputs = tf.keras.Input((2, 8, 8, 3))
    x = tf.keras.layers.TimeDistributed(tf.keras.layers.Lambda(side_effect, name="evil"))(inputs)
    tf.keras.Model(inputs, x).save(out / "lambda" / "td.h5")
    marker.unlink()
    same = out / "same" / "m.h5"
    same.write_bytes(models["el"].read_bytes())
    zoo = get_model("el_resnet18", input_shape=(16, 16, 3), num_classes=10, width=0.25)
    zoo.save(out / "zoo" / "fresh.h5")  # untrained: BatchNorms at their initial statistics
    (out / "unwritable" / "a_file").write_text("")
    bad = out / "bad" / "model.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # an HDF5 signature and no body
    return {
        "grouped": [models["grouped"], "-o", out / "grouped" / "g.tflite"]
        + ["--json", out / "grouped" / "r.json", "--samples", 8],
        "fashion": [models["fashion"], "-o", out / "fashion" / "f.tflite"]
        + ["--target", "xcore", "--dataset", "fashion_mnist"],
        "strict": [models["grouped"], "-o", out / "strict" / "g.tflite", "--strict"],
        "float": [models["float"], "-o", out / "float" / "f.tflite", "--no-verify"],
        "int8": [models["float"], "-o", out / "int8" / "f.tflite", "--int8_weights"]
        + [
            "--int8_min_elements=0",
            "--noint8_keep_input_layers",
            "--int8_max_binary_after=-1",
            "--int8_mode=hybrid",
            "--json",
            out / "int8" / "r.json",
        ],
        "int8-default": [models["float"], "-o", out / "int8-default" / "f.tflite"]
        + ["--int8_weights", "--no-verify"],
        # A zero tolerance: float32 summation order alone makes Keras and LCE differ.
        "mismatch": [models["el"], "-o", out / "mismatch" / "el.tflite"]
        + ["--rtol=0", "--min_top1=1"],
        "missing": [out / "bad" / "missing.h5"],
        "corrupt-h5": [bad],
        "unwritable": [models["el"], "-o", out / "unwritable" / "a_file" / "out.tflite"],
        "lambda": [out / "lambda" / "td.h5", "-o", out / "lambda" / "td.tflite"],
        "same-output": [same, "-o", out / "same" / "." / "m.h5"],
        "json-is-output": [
            same,
            "-o",
            out / "same" / "x.tflite",
            "--json",
            out / "same" / "x.tflite",
        ],
        "zoo": [out / "zoo" / "fresh.h5", "--json", out / "zoo" / "r.json"],
    }


def _run_all(root: Path) -> None:
    models = _inputs(root / "models")
    out = root / "out"
    cases = _cases(models, out)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run, *args) for name, args in cases.items()}
        results = {name: future.result() for name, future in futures.items()}
    saved = {name: [r.returncode, r.stdout, r.stderr] for name, r in results.items()}
    (root / "results.json").write_text(json.dumps(saved))


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Every CLI run of this file, two at a time (each spends seconds importing TensorFlow).

    Run once per test session, also when pytest-xdist spreads this file's tests over
    several workers: the first worker runs them under a lock in the directory the
    workers share, the others read its results. Loading errors that need no conversion
    (not a model, unknown layer class, Lambda, weights-only file, ...) take the same CLI
    path and are tested in-process in test_lce.py.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by all workers of this session
    root = base / "convert_cli"
    with open(base / "convert_cli.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "results.json").exists():
            (root / "models").mkdir(parents=True, exist_ok=True)
            (root / "out").mkdir(exist_ok=True)
            _run_all(root)
    saved = json.loads((root / "results.json").read_text())
    results = {
        name: subprocess.CompletedProcess([name], code, stdout, stderr)
        for name, (code, stdout, stderr) in saved.items()
    }
    return results, root / "out"


# ---------------------------------------------------------------- success
def test_h5_converts_with_census_fallback_warning_verification_size_and_json(cli):
    results, out = cli
    result, tflite = results["grouped"], out / "grouped" / "g.tflite"
    assert result.returncode == 0, result.stderr[-2000:]
    assert "binarized standard convs accelerated (LceBconv2d): 3/4" in result.stdout
    # A fallback is a warning by default (an error with --strict, below).
    assert "NOT accelerated: grouped became CONV_2D (float)" in result.stdout
    assert "warning: binarized conv(s) not accelerated by LCE" in result.stderr
    assert "float layers kept on purpose: stem (CONV_2D), classifier (FULLY_CONNECTED)" in (
        result.stdout
    )
    assert "verification on 8 inputs" in result.stdout and ": PASS" in result.stdout
    assert "of 8 inputs within 0.001 x max |output|" in result.stdout
    assert f"wrote {tflite} ({tflite.stat().st_size} bytes" in result.stdout
    assert "size: flatbuffer" in result.stdout and "float32 weights" in result.stdout
    data = json.loads((out / "grouped" / "r.json").read_text())
    assert data["verification"]["passed"] and data["verification"]["top1_agreement"] == 1.0
    assert data["census"]["ops"]["LceBconv2d"] == 3
    assert data["census"]["fallback"] == [["grouped", "CONV_2D"]]
    assert data["size"]["flatbuffer_bytes"] == tflite.stat().st_size
    assert files(out / "grouped") == ["g.tflite", "r.json"]


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist missing")
def test_saved_model_verified_on_real_dataset_images(cli):
    results, out = cli
    result = results["fashion"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "verification on 16 inputs" in result.stdout
    assert "(dataset fashion_mnist)" in result.stdout
    assert re.search(
        r"labelled top-1 Keras [\d.]+% vs LCE [\d.]+% \(limit 6\.25% lower\)", result.stdout
    )
    assert "binarized standard convs accelerated (LceBconv2d): 3/3" in result.stdout
    assert "warning" not in result.stderr
    assert files(out / "fashion") == ["f.tflite"]


# ---------------------------------------------------------------- census
def test_strict_fails_when_a_binary_layer_fell_back_to_float(cli):
    results, out = cli
    result = results["strict"]
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "to_lce: error: binarized conv(s) not accelerated by LCE: grouped (CONV_2D)"
    )
    assert files(out / "strict") == []


def test_model_without_binarized_layers_warns_nothing_to_accelerate(cli):
    results, out = cli
    result = results["float"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no binarized layer: nothing for LCE to accelerate" in result.stderr
    assert files(out / "float") == ["f.tflite"]


def test_int8_weights_are_written_listed_and_verified(cli):
    results, out = cli
    result, tflite = results["int8"], out / "int8" / "f.tflite"
    assert result.returncode == 0, result.stderr[-2000:]
    # stem, reduce, spatial, expand (float here) and the classifier
    assert "int8 weights: 5 tensors (CONV_2D x4, FULLY_CONNECTED x1)" in result.stdout
    assert "limit 0.05 x max |output|" in result.stdout and ": PASS" in result.stdout
    # int8 rounding moves every output: no count of inputs that agree to 1e-3.
    assert "inputs within" not in result.stdout
    data = json.loads((out / "int8" / "r.json").read_text())
    assert data["verification"]["inputs_agreeing"] is None
    assert len(data["int8_weights"]) == 5
    assert all(w["int8_bytes"] * 4 == w["float32_bytes"] for w in data["int8_weights"])
    assert data["size"]["flatbuffer_bytes"] == tflite.stat().st_size
    assert all(w["int8"] for w in data["int8_weights"])
    model = tflite_schema.Model.GetRootAsModel(tflite.read_bytes(), 0)
    graph = model.Subgraphs(0)
    int8 = {
        graph.Tensors(i).Name().decode()
        for i in range(graph.TensorsLength())
        if graph.Tensors(i).Type() == tflite_schema.TensorType.INT8
    }
    assert int8 == {w["tensor"] for w in data["int8_weights"]}  # hybrid: in place
    assert files(out / "int8") == ["f.tflite", "r.json"]


def test_int8_weights_by_default_keep_the_stem_and_small_tensors_float(cli):
    results, out = cli
    result = results["int8-default"]
    assert result.returncode == 0, result.stderr[-2000:]
    # Every weight tensor of this 16 px model is small, and the first conv is the stem.
    assert "int8 weights: no float32 conv or dense weights quantized" in result.stdout
    assert "kept float32: 5 tensors" in result.stdout
    assert "reads the model input" in result.stdout and "< 16384 weights" in result.stdout


# ---------------------------------------------------------------- bad input
def test_verification_failure_exits_non_zero_and_writes_nothing(cli):
    results, out = cli
    result = results["mismatch"]
    assert result.returncode == 1
    assert last_line(result.stderr).startswith("to_lce: error: Keras and LCE disagree:")
    assert files(out / "mismatch") == []


@pytest.mark.parametrize(
    "case, reason",
    [
        ("missing", "missing.h5: no such file or directory"),
        ("corrupt-h5", "model.h5 is not a readable HDF5 file (corrupt or truncated?)"),
        ("unwritable", "a_file is not a directory"),
    ],
)
def test_bad_input_is_one_clear_line_non_zero_exit_and_leaves_nothing(cli, case, reason):
    results, out = cli
    result = results[case]
    assert result.returncode == 1
    assert last_line(result.stderr).startswith("to_lce: error: ")
    assert reason in last_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert files(out / "bad") == ["model.h5"]
    assert files(out / "unwritable") == ["a_file"]


# ---------------------------------------------------------------- hostile input
def test_lambda_inside_a_wrapper_never_runs_and_the_cli_exits_with_one_line(cli):
    results, out = cli
    result = results["lambda"]
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        f"to_lce: error: {out / 'lambda' / 'td.h5'} contains Lambda layer(s) evil in "
        "time_distributed, which run code stored in the file; refusing to load it. Pass "
        "--allow_unsafe only if you trust the file"
    )
    assert files(out / "lambda") == ["td.h5"]  # no marker: its code never ran; no output


@pytest.mark.parametrize(
    "case, reason",
    [
        ("same-output", "would overwrite the input"),
        ("json-is-output", "--json {out}/same/x.tflite is the same file as -o"),
    ],
)
def test_outputs_never_replace_the_input_or_each_other(cli, case, reason):
    results, out = cli
    result = results[case]
    assert result.returncode == 1
    assert last_line(result.stderr).startswith("to_lce: error: ")
    assert reason.format(out=out) in last_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert files(out / "same") == ["m.h5"]
    assert (out / "same" / "m.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_fresh_untrained_zoo_model_converts_with_a_warning(cli):
    results, out = cli
    result = results["zoo"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "BatchNorm layer(s) still have their initial statistics" in result.stderr
    assert "PASS (on a copy with calibrated BatchNorm statistics)" in result.stdout
    report = json.loads((out / "zoo" / "r.json").read_text())
    assert report["verification"]["calibrated_copy"] and report["verification"]["passed"]
    assert files(out / "zoo") == ["fresh.h5", "fresh.tflite", "r.json"]
