"""Per-op profiles: one-op graphs cut from real flatbuffers, and the device profiler's table.

Host profiles run LCE's real interpreter. No ARM device (nor its `lce_benchmark_model`)
exists here: the device parser is tested on output in TensorFlow Lite benchmark_model's
profiler format, and those tests say so in their names.
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from el_larq.deploy import profile
from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import flatbuffer_ops, op_type
from el_larq.deploy.host import make_interpreter
from el_larq.deploy.int8 import quantize_weights
from el_larq.layers import el_conv
from el_larq.safety import DeploymentError

SCRIPT = Path(__file__).resolve().parents[1] / "convert" / "benchmark.py"


def _model() -> tf.keras.Model:
    inputs = tf.keras.Input((12, 12, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = el_conv(x, 16, 1, activation_scaling=True, name="reduce")  # Squeeze + K
    x = el_conv(x, 16, 3, strides=2, name="spatial")  # Identity, max-pooled
    x = el_conv(x, 64, 1, name="expand")  # Expand
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return profile.as_if_trained(tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x)))


@pytest.fixture(scope="module")
def flatbuffer() -> bytes:
    tf.keras.utils.set_random_seed(0)
    return convert(_model())[0]


def test_every_op_of_the_graph_is_timed_once_in_order(flatbuffer):
    result = profile.profile_host(flatbuffer, name="tiny", num_runs=4, warmup_runs=1, rounds=2)
    assert [op.op for op in result.ops] == flatbuffer_ops(flatbuffer)
    assert [op.index for op in result.ops] == list(range(len(result.ops)))
    assert all(np.isfinite(op.ms) for op in result.ops) and result.graph_ms > 0
    bconvs = [op for op in result.ops if op.op == "LceBconv2d"]
    assert len(bconvs) == 3
    # Bitpacked int32 inputs: 32 channels per word.
    assert bconvs[0].input_shapes == [[1, 12, 12, 1]] and bconvs[0].output_shapes == [
        [1, 12, 12, 16]
    ]
    assert any("expand" in op.name for op in result.ops)
    by_type = {row["op"]: row for row in result.by_type()}
    assert by_type["LceBconv2d"]["count"] == 3
    assert sum(row["count"] for row in by_type.values()) == len(result.ops)
    assert sum(row["ms"] for row in by_type.values()) == pytest.approx(result.sum_ms)
    text = profile.format_profile(result)
    assert f"{len(result.ops)} ops" in text and "| LceBconv2d | 3 |" in text


def test_ops_are_attributed_to_their_role_in_the_el_network(flatbuffer):
    result = profile.profile_host(flatbuffer, name="tiny", num_runs=2, warmup_runs=0, rounds=1)
    roles = {op.index: profile.op_role(op) for op in result.ops}
    assert set(roles.values()) <= set(profile.ROLES)
    count = {row["role"]: row["count"] for row in result.by_role()}
    assert count["binary conv"] == 3 and count["sign (LceQuantize)"] == 3
    assert count["float conv / dense"] == 2  # the stem (its BatchNorm folded), the classifier
    for op in result.ops:
        if op.op in ("RELU", "SUB"):  # only K's mean |x| has these here
            assert roles[op.index] == "K (activation scaling)", op.name
        if op.op in ("SUM", "MAX_POOL_2D", "RESHAPE"):  # Squeeze; Identity's pool; Expand
            assert roles[op.index] == "Elastic-Link", op.name
    # Every link add (Squeeze, Identity, Expand) is the link's.
    adds = [op for op in result.ops if op.op == "ADD" and "_add/" in op.name]
    assert len(adds) == 3 and {roles[op.index] for op in adds} == {"Elastic-Link"}
    assert sum(row["ms"] for row in result.by_role()) == pytest.approx(result.sum_ms)
    # The model's own name is not a layer: `elasticize` names its models `<name>_el`.
    op = dataclasses.replace(result.ops[0], op="ADD", name="resnet50_el/conv1_relu/Relu")
    assert profile.op_role(op) == "other"
    # Names the converter gives (EL-MobileNet): the link's add with the ReLU fused into
    # it is named after the activation; a binary depthwise conv's padding is the conv's.
    for kind, name, role in [
        ("ADD", "m/block1_pointwise_act/Relu;m/block1_pointwise_add", "Elastic-Link"),
        ("RELU", "m/block1_pointwise_act/Relu", "other"),
        ("PADV2", "m/block1_depthwise_conv/PadV2", "float conv / dense"),
        ("LceDequantize", "m/block1_depthwise_conv/ste_sign/Si1", "sign (LceQuantize)"),
    ]:
        op = dataclasses.replace(result.ops[0], op=kind, name=name)
        assert profile.op_role(op) == role, name
    assert "| role | count | ms | share |" in profile.format_profile(result)


def test_one_op_graphs_reproduce_the_whole_graphs_values(flatbuffer):
    """Each cut-out op, fed the captured inputs, computes what it computes in the model."""
    model = profile._load(flatbuffer)
    graph = model.subgraphs[0]
    capture, produced = profile._all_tensors_graph(model)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 12, 12, 3)).astype(np.float32)
    values = dict(zip(produced, make_interpreter(capture).interpreter.predict([x]), strict=True))
    values[graph.inputs[0]] = x
    whole = make_interpreter(flatbuffer).predict(x)
    np.testing.assert_array_equal(values[graph.outputs[0]], whole)
    for op in graph.operators:
        inputs = [values[i] for i in profile._run_inputs(model, op)]
        for copies in (False, True):
            for xnnpack in (False, True):
                cut = profile._one_op_graph(model, op, 3, copies)
                out = make_interpreter(cut, xnnpack=xnnpack).interpreter.predict(inputs)
                assert len(out) == 3 * len(op.outputs)
                for value in out:
                    np.testing.assert_allclose(value, values[op.outputs[0]], rtol=1e-6, atol=1e-6)


def test_int8_weights_are_profiled_as_the_float_ops_with_constant_weights(flatbuffer):
    """DEQUANTIZE of a constant runs once, at load: the profile times the float ops only."""
    small, weights = quantize_weights(flatbuffer, min_elements=0, keep_input_layers=False)
    assert sum(w.int8 for w in weights) == 2 and "DEQUANTIZE" in flatbuffer_ops(small)
    result = profile.profile_host(small, num_runs=2, warmup_runs=0, rounds=1)
    assert [op.op for op in result.ops] == flatbuffer_ops(flatbuffer)
    model = profile._load(small)
    ops = model.subgraphs[0].operators
    dense = [op for op in ops if op_type(model, op) in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(dense) == 2 and all(profile._run_inputs(model, op) == [op.inputs[0]] for op in dense)
    # The folded constants are the dequantized weights: the same outputs as the int8 file.
    capture, produced = profile._all_tensors_graph(model)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 12, 12, 3)).astype(np.float32)
    out = make_interpreter(capture).interpreter.predict([x])
    final = out[produced.index(model.subgraphs[0].outputs[0])]
    np.testing.assert_allclose(final, make_interpreter(small).predict(x), rtol=1e-6, atol=1e-6)


def test_the_slowest_op_is_the_one_with_the_work():
    """A 3x3 conv with ~1000x the multiply-adds of everything else dominates the profile."""
    inputs = tf.keras.Input((32, 32, 64))
    x = tf.keras.layers.Conv2D(256, 3, padding="same", name="heavy")(inputs)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    flatbuffer, _ = convert(tf.keras.Model(inputs, x))
    result = profile.profile_host(flatbuffer, num_runs=6, warmup_runs=1, rounds=2)
    assert max(result.ops, key=lambda op: op.ms).op == "CONV_2D"
    assert result.by_type()[0]["op"] == "CONV_2D"


def test_bad_settings_are_refused(flatbuffer):
    with pytest.raises(DeploymentError, match="repeats"):
        profile.profile_host(flatbuffer, repeats=1)


# Output of `lce_benchmark_model --graph=el.tflite --num_threads=1 --num_runs=20
# --enable_op_profiling=true`, in the format of TensorFlow Lite's benchmark_model profiler
# (ProfileSummarizer / StatSummarizer tables): constructed here, no device exists.
DEVICE_OUTPUT = """\
Inference timings in us: Init: 2950, First inference: 1210, Warmup (avg): 1150.2, \
Inference (avg): 1102.5
Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  \
[mem KB]\t[times called]\t[Name]
\t         AllocateTensors\t            0.000\t    0.147\t    0.147\t100.000%\t100.000%\t     \
0.000\t        1\tAllocateTensors/0

Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  \
[mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            0.000\t    0.210\t    0.200\t 18.182%\t 18.182%\t     \
0.000\t        1\t[model/stem/BiasAdd]:0
\t             LceQuantize\t            0.201\t    0.050\t    0.040\t  3.636%\t 21.818%\t     \
0.000\t        1\t[model/reduce_conv/ste_sign/Sign]:1
\t              LceBconv2d\t            0.242\t    0.700\t    0.650\t 59.091%\t 80.909%\t     \
0.000\t        1\t[model/reduce_conv/BinaryConv2D]:2
\t                     ADD\t            0.893\t    0.220\t    0.210\t 19.091%\t100.000%\t     \
0.000\t        1\t[model/reduce_add/add]:3

============================== Top by Computation Time ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  \
[mem KB]\t[times called]\t[Name]
\t              LceBconv2d\t            0.242\t    0.700\t    0.650\t 59.091%\t 59.091%\t     \
0.000\t        1\t[model/reduce_conv/BinaryConv2D]:2

Number of nodes executed: 4
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t\
[times called]
\t              LceBconv2d\t        1\t     0.650\t    59.091%\t    59.091%\t     0.000\t        1

Timings (microseconds): count=20 first=1180 curr=1095 min=1090 max=1180 avg=1100.5 std=20
Memory (bytes): count=0
4 nodes observed
"""


def test_device_op_profile_parser_reads_the_profiler_format_without_arm_device():
    result = profile.parse_op_profile(DEVICE_OUTPUT, name="el", where="device (adb)")
    assert [op.op for op in result.ops] == ["CONV_2D", "LceQuantize", "LceBconv2d", "ADD"]
    assert [op.index for op in result.ops] == [0, 1, 2, 3]
    assert result.ops[2].ms == pytest.approx(0.65) and result.ops[2].name == (
        "model/reduce_conv/BinaryConv2D"
    )
    assert result.graph_ms == pytest.approx(1.1005) and result.runs == 20
    assert result.by_type()[0]["op"] == "LceBconv2d"
    assert "AllocateTensors" not in {op.op for op in result.ops}


@pytest.mark.parametrize("int8", [False, True])
def test_device_op_profile_parser_takes_shapes_from_the_flatbuffer_without_arm_device(
    flatbuffer, int8
):
    if int8:  # the file's DEQUANTIZE ops keep their node indices; weights stay constants
        flatbuffer, _ = quantize_weights(flatbuffer, min_elements=0, keep_input_layers=False)
    ops = flatbuffer_ops(flatbuffer)
    rows = "".join(
        f"\t{op:>24}\t{0.1 * k:>17.3f}\t{0.1:>9.3f}\t{0.1:>9.3f}\t  1.000%\t  1.000%\t     "
        f"0.000\t        1\t[op{k}]:{k}\n"
        for k, op in enumerate(ops)
    )
    text = (
        "Operator-wise Profiling Info for Regular Benchmark Runs:\n"
        "============================== Run Order ==============================\n"
        "\t[node type]\t[start]\t[first]\t[avg ms]\t[%]\t[cdf%]\t[mem KB]\t[times called]\t[Name]\n"
        + rows
    )
    result = profile.parse_op_profile(text, flatbuffer=flatbuffer)
    host = profile.profile_host(flatbuffer, num_runs=1, warmup_runs=0, rounds=1)
    assert [op.op for op in result.ops] == ops
    computed = [op for op in result.ops if op.op != "DEQUANTIZE"]
    assert len(computed) == len(ops) - 2 * int8 == len(host.ops)
    assert [op.input_shapes for op in computed] == [op.input_shapes for op in host.ops]
    assert result.graph_ms == pytest.approx(0.1 * len(ops))  # no Timings line: the sum


def test_device_op_profile_parser_needs_the_profiling_section_without_arm_device():
    with pytest.raises(DeploymentError, match="enable_op_profiling"):
        profile.parse_op_profile("Inference timings in us: Init: 1, First inference: 2")


def test_benchmark_cli_profile_prints_and_writes_json(flatbuffer, tmp_path):
    path = tmp_path / "tiny.tflite"
    path.write_bytes(flatbuffer)
    out = tmp_path / "profile.json"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(path),
            "--num_runs=2",
            "--warmup_runs=0",
            "--profile",
            f"--profile_json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "per-op profile of tiny" in result.stdout and "| op type | count | ms | share |" in (
        result.stdout
    )
    saved = json.loads(out.read_text())
    assert saved[0]["model"] == "tiny"
    assert [op["op"] for op in saved[0]["ops"]] == flatbuffer_ops(flatbuffer)
    assert {row["op"] for row in saved[0]["by_type"]} == set(flatbuffer_ops(flatbuffer))
    assert {row["role"] for row in saved[0]["by_role"]} <= set(profile.ROLES)
