"""Per-op latency profile of a `.tflite` model: on this host, or from a device's output.

LCE's Python interpreter has no op profiler, so `profile_host` measures every operator
of a flatbuffer on its own, with the real tensor shapes, the real constant weights,
the real input values (captured from one run of the whole model) and the same
interpreter settings as the whole-graph benchmark:

* one graph holds `repeats` copies of the op side by side (same inputs, each its own
  output), another holds the op once with its output listed `repeats` times; both copy
  the same bytes in and out, and the op's time is `(t_copies - t_once) / (repeats - 1)`.
  The difference cancels what is not the op: the Python call, `Invoke`'s fixed cost,
  and copying inputs in and outputs out, which for a one-op graph would be as large as
  many element-wise ops;
* the graphs of all ops are timed in interleaved rounds, and the whole model with them,
  so that a busy moment of the machine hits all of them alike.

What it cannot see: effects between neighbouring ops in the real graph (an op's input
still in cache because its producer just wrote it, XNNPACK partitions merging several
ops). `Profile.sum_ms` against `Profile.graph_ms` says how much that matters for a
model: 1.02-1.08 for EL-ResNet50 and 1.16-1.18 for EL-MobileNet at 224 px (many small
ops, whose fixed costs the real graph shares), 0.94-0.97 for MobileNet.

On an ARM device, `lce_benchmark_model --enable_op_profiling=true` prints TFLite's own
per-op table; `parse_op_profile` reads it into the same `Profile`.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import platform
import re
import statistics
import time
from typing import Any

import numpy as np
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.flatbuffer import decoded_name, is_constant, op_type, pack
from el_larq.deploy.host import DEFAULT_KERNEL, DEFAULT_XNNPACK, make_interpreter
from el_larq.deploy.int8 import fold_dequantized_constants
from el_larq.deploy.kinds import walk_layers
from el_larq.safety import DeploymentError

__all__ = [
    "ROLES",
    "OpTime",
    "Profile",
    "as_if_trained",
    "format_profile",
    "op_role",
    "parse_op_profile",
    "profile_host",
]


@dataclasses.dataclass
class OpTime:
    """One operator of a profile."""

    index: int  # position in the graph's execution order
    op: str  # builtin or LCE custom op name
    name: str  # its first output tensor's name (carries the Keras layer name)
    input_shapes: list[list[int]]  # inputs computed at run time (constants left out)
    output_shapes: list[list[int]]
    ms: float  # host: median per-op time; device: TFLite profiler's average


@dataclasses.dataclass
class Profile:
    """Per-op times of one model, with the whole-graph time measured beside them."""

    model: str
    where: str
    num_threads: int
    kernel: str
    xnnpack: bool
    runs: int
    graph_ms: float  # median (host) or average (device) of the whole model
    ops: list[OpTime]

    @property
    def sum_ms(self) -> float:
        """Sum of the per-op times; compare with `graph_ms`."""
        return sum(op.ms for op in self.ops)

    def _grouped(self, key: str, group) -> list[dict[str, Any]]:
        totals: dict[str, list[float]] = collections.defaultdict(list)
        for op in self.ops:
            totals[group(op)].append(op.ms)
        total = self.sum_ms or 1.0
        rows = [
            {key: name, "count": len(times), "ms": sum(times), "share": sum(times) / total}
            for name, times in totals.items()
        ]
        return sorted(rows, key=lambda row: -row["ms"])

    def by_type(self) -> list[dict[str, Any]]:
        """`[{"op", "count", "ms", "share"}]`, slowest op type first (share of `sum_ms`)."""
        return self._grouped("op", lambda op: op.op)

    def by_role(self) -> list[dict[str, Any]]:
        """`[{"role", "count", "ms", "share"}]` by `op_role`, slowest role first."""
        return self._grouped("role", op_role)

    def to_json(self) -> dict[str, Any]:
        """Everything, plus the by-type and by-role tables and the sums, as JSON values."""
        return {
            **dataclasses.asdict(self),
            "sum_ms": self.sum_ms,
            "by_type": self.by_type(),
            "by_role": self.by_role(),
        }


# Roles of the ops a converted el_larq model holds, found from the Keras layer names
# in the op's output tensor name (`el_larq.layers.el_conv` names its layers
# `{name}_conv`, `{name}_bn`, `{name}_el`, ...); the first suffix found from the right
# wins, so `stage1_block1_reduce_conv/Relu` is K's.
ROLES = {
    "binary conv": "LceBconv2d",
    "sign (LceQuantize)": "LceQuantize, LceDequantize",
    "float conv / dense": "CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and the PAD / PADV2 "
    "before a conv (stem, downsample shortcuts, binary depthwise convs that LCE runs in "
    "float, classifier)",
    "K (activation scaling)": "the float ops of a `*_conv` layer: mean |x|, its pooling, the "
    "multiply by K",
    "BatchNorm not folded": "ops of a `*_bn` layer (e.g. the bias after K)",
    "BatchNorm before a sign": "ops of an `*_input_bn` layer (thresholds)",
    "Elastic-Link": "ops of `*_el` and `*_add` layers (Squeeze, Expand, the links' pools, "
    "1/gamma, the adds), and an add or reshape named after the `*_act` fused into it",
    "gating": "ops of a `*_gating` layer (Real-to-Binary)",
    "other": "everything else: stem pool, block residuals, activations, head",
}
_ROLE_OPS = {
    "LceBconv2d": "binary conv",
    "LceQuantize": "sign (LceQuantize)",
    "LceDequantize": "sign (LceQuantize)",
    "CONV_2D": "float conv / dense",
    "DEPTHWISE_CONV_2D": "float conv / dense",
    "FULLY_CONNECTED": "float conv / dense",
    "PAD": "float conv / dense",
    "PADV2": "float conv / dense",
}
# What K's `mean_c |x|`, its average pool and the multiply by K lower to (any form).
_K_OPS = {"RELU", "MEAN", "SUB", "MUL", "AVERAGE_POOL_2D", "ABS", "NEG", "MAXIMUM", "SUM"}
_ROLE_SUFFIXES = (
    ("_input_bn", "BatchNorm before a sign"),
    ("_conv", "K (activation scaling)"),
    ("_bn", "BatchNorm not folded"),
    ("_el", "Elastic-Link"),
    ("_add", "Elastic-Link"),
    ("_gating", "gating"),
    ("_act", "activation"),
)


def op_role(op: OpTime) -> str:
    """What an op of a converted el_larq model is for: one of `ROLES`.

    By op type for convs and signs, otherwise by the Keras layer its output tensor is
    named after (`el_larq.layers.el_conv`'s names). Ops of models built without
    `el_conv` fall under `"other"` unless they are convs or signs.

    # Arguments
        op: One op of a `Profile`.

    # Returns
        The role's name, a key of `ROLES`.

    # Example
        ```python
        shares = {row["role"]: row["share"] for row in profile.by_role()}
        ```
    """
    if op.op in _ROLE_OPS:
        return _ROLE_OPS[op.op]
    # `model/layer[/...]/op`: neither the model's name (an elasticized model's ends in
    # `_el`) nor the op's own name is a layer.
    layers = op.name.split(";")[0].split("/")[1:-1]
    for layer in reversed(layers):
        for suffix, role in _ROLE_SUFFIXES:
            if not layer.endswith(suffix):
                continue
            if role == "K (activation scaling)" and op.op not in _K_OPS:
                return "other"
            if role == "activation":
                # The converter names the add an activation is fused into after the
                # activation: in `el_conv` that is the link's add.
                return "Elastic-Link" if op.op in ("ADD", "ADD_N", "RESHAPE") else "other"
            return role
    return "other"


# ---------------------------------------------------------------- host
def _run_inputs(model: Any, op: Any) -> list[int]:
    """The op's inputs computed at run time (not constants), each once."""
    graph = model.subgraphs[0]
    return [
        i for i in dict.fromkeys(op.inputs) if i >= 0 and not is_constant(model, graph.tensors[i])
    ]


def _shapes(model: Any, indices: list[int]) -> list[list[int]]:
    return [[int(d) for d in model.subgraphs[0].tensors[i].shape] for i in indices]


def _load(flatbuffer: bytes, *, fold: bool = True) -> Any:
    """The object-API model; `fold`: with each DEQUANTIZE of a constant folded (int8
    weights of float ops, which the interpreter dequantizes once, at load), as the host
    profiler times it. Without, op indices are the file's, as a device profile has them."""
    model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(flatbuffer, 0))
    if len(model.subgraphs) != 1:
        raise DeploymentError(
            f"the profiler handles single-subgraph models; this one has {len(model.subgraphs)}"
        )
    # Signatures and metadata name tensors of the whole graph; the extracts drop them.
    model.signatureDefs, model.metadata, model.metadataBuffer = [], [], []
    if fold:
        fold_dequantized_constants(model)
    return model


def _all_tensors_graph(model: Any) -> tuple[bytes, list[int]]:
    """The model with every computed tensor as an output, to capture real values."""
    graph = model.subgraphs[0]
    produced = [t for op in graph.operators for t in op.outputs if t >= 0]
    capture = copy.copy(model)
    capture.subgraphs = [copy.copy(graph)]
    capture.subgraphs[0].outputs = produced
    return pack(capture), produced


def _one_op_graph(model: Any, op: Any, repeats: int, copies: bool) -> bytes:
    """A model running `op` on fresh input tensors, with `repeats` outputs to copy out.

    `copies=True`: `repeats` copies of the op side by side, each output a graph output.
    `copies=False`: the op once, its output listed `repeats` times as a graph output.
    Both copy the same bytes out per run, so their time difference is `repeats - 1` runs
    of the op. (Unexported copies would be cheaper to copy out, but XNNPACK prunes nodes
    whose outputs nobody reads.)
    """
    graph = model.subgraphs[0]
    extract = tflite_schema.ModelT()
    extract.version, extract.description = model.version, model.description
    extract.operatorCodes = [model.operatorCodes[op.opcodeIndex]]
    extract.buffers = [tflite_schema.BufferT()]  # buffer 0: the empty sentinel
    sub = tflite_schema.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = [], [], [], []
    remap: dict[int, int] = {}

    def add_tensor(index: int) -> int:
        tensor = copy.copy(graph.tensors[index])
        constant = is_constant(model, tensor)
        extract.buffers.append(
            model.buffers[tensor.buffer] if constant else tflite_schema.BufferT()
        )
        tensor.buffer = len(extract.buffers) - 1
        sub.tensors.append(tensor)
        return len(sub.tensors) - 1

    for index in op.inputs:
        if index >= 0 and index not in remap:
            remap[index] = add_tensor(index)
            if not is_constant(model, graph.tensors[index]):
                sub.inputs.append(remap[index])
    for _ in range(repeats if copies else 1):
        clone = copy.copy(op)
        clone.opcodeIndex = 0
        clone.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
        clone.outputs = [add_tensor(i) for i in op.outputs]
        if op.intermediates is not None and len(op.intermediates):
            clone.intermediates = [add_tensor(i) for i in op.intermediates]
        sub.operators.append(clone)
        sub.outputs += clone.outputs
    if not copies:
        sub.outputs *= repeats
    sub.name = graph.name
    extract.subgraphs = [sub]
    return pack(extract)


def _timed(interpreter: Any, inputs: list[np.ndarray], runs: int) -> list[float]:
    # The wrapper's own predict: no per-call list/expand_dims work of the Python class.
    raw = interpreter.interpreter
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        raw.predict(inputs)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def profile_host(
    flatbuffer: bytes,
    *,
    name: str = "model",
    num_runs: int = 20,
    warmup_runs: int = 3,
    rounds: int = 5,
    repeats: int = 3,
    num_threads: int = 1,
    kernel: str = DEFAULT_KERNEL,
    xnnpack: bool | None = None,
    seed: int = 0,
) -> Profile:
    """Time every operator of a flatbuffer on this host (LCE's interpreter).

    See the module docstring for the method. The model's input is uniform in [-1, 1]
    (as in `el_larq.deploy.host.host_latency`); every op then sees the values it would see in
    the whole model.

    # Arguments
        flatbuffer: The `.tflite` bytes (one subgraph).
        name: Name of the model in the profile.
        num_runs: Timed runs of every op graph (and of the whole model).
        warmup_runs: Untimed runs of each first.
        rounds: Interleaved rounds the runs are split into.
        repeats: Copies of the op in the second graph (>= 2).
        num_threads: Interpreter threads.
        kernel: Binary conv kernel, one of `el_larq.deploy.host.KERNELS`.
        xnnpack: Run float ops through TFLite's XNNPACK delegate (None:
            `el_larq.deploy.host.DEFAULT_XNNPACK`).
        seed: Seed of the input values.

    # Returns
        A `Profile`; `ms` of each op is the median over rounds of the per-round
        difference, so a very cheap op can come out slightly negative (noise).

    # Example
        ```python
        profile = profile_host(open("el_resnet50.tflite", "rb").read(), num_runs=10)
        print(format_profile(profile))
        ```
    """
    if num_runs < 1 or warmup_runs < 0 or rounds < 1 or repeats < 2:
        raise DeploymentError("num_runs and rounds must be >= 1, warmup_runs >= 0, repeats >= 2")
    xnnpack = DEFAULT_XNNPACK if xnnpack is None else xnnpack  # the profile records it
    settings = dict(num_threads=num_threads, kernel=kernel, xnnpack=xnnpack)
    model = _load(flatbuffer)
    graph = model.subgraphs[0]
    whole = make_interpreter(flatbuffer, **settings)
    rng = np.random.default_rng(seed)
    x = [rng.uniform(-1, 1, size=shape).astype(np.float32) for shape in whole.input_shapes]
    values = {index: value for index, value in zip(graph.inputs, x, strict=True)}
    capture_bytes, produced = _all_tensors_graph(model)
    captured = make_interpreter(capture_bytes, **settings).interpreter.predict(x)
    values.update(zip(produced, captured, strict=True))

    ops, pairs = [], []
    for position, op in enumerate(graph.operators):
        inputs = [values[i] for i in _run_inputs(model, op)]
        pair = [
            make_interpreter(_one_op_graph(model, op, repeats, copies), **settings)
            for copies in (False, True)
        ]
        for interpreter in pair:
            _timed(interpreter, inputs, warmup_runs)
        pairs.append((pair, inputs))
        ops.append(
            OpTime(
                index=position,
                op=op_type(model, op),
                name=decoded_name(graph.tensors[op.outputs[0]].name) if len(op.outputs) else "",
                input_shapes=_shapes(model, _run_inputs(model, op)),
                output_shapes=_shapes(model, op.outputs),
                ms=0.0,
            )
        )
    _timed(whole, x, warmup_runs)

    rounds = max(1, min(rounds, num_runs))
    per_op: list[list[float]] = [[] for _ in ops]
    whole_times: list[float] = []
    for r in range(rounds):
        runs = num_runs // rounds + (1 if r < num_runs % rounds else 0)
        whole_times += _timed(whole, x, runs)
        for k, ((once, many), inputs) in enumerate(pairs):
            t_once = statistics.median(_timed(once, inputs, runs))
            t_many = statistics.median(_timed(many, inputs, runs))
            per_op[k].append((t_many - t_once) / (repeats - 1))
    for op, times in zip(ops, per_op, strict=True):
        op.ms = statistics.median(times)
    return Profile(
        model=name,
        where=f"host {platform.machine()} (LCE Python interpreter)",
        num_threads=num_threads,
        kernel=kernel,
        xnnpack=xnnpack,
        runs=num_runs,
        graph_ms=statistics.median(whole_times),
        ops=ops,
    )


# ---------------------------------------------------------------- device
_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs"
_ROW = re.compile(
    r"^\s*(?P<op>\S+)\s+(?P<start>[\d.]+)\s+(?P<first>[\d.]+)\s+(?P<avg>[\d.]+)\s+"
    r"[\d.]+%\s+[\d.]+%\s+[\d.]+\s+(?P<called>\d+)\s+(?P<name>.*?)\s*$"
)
_NODE_INDEX = re.compile(r"^\[?(?P<name>.*?)\]?:(?P<index>\d+)$")
_AVG = re.compile(r"Timings \(microseconds\): count=(?P<count>\d+).*?avg=(?P<avg>[\d.e+]+)")


def parse_op_profile(
    text: str,
    *,
    name: str = "model",
    flatbuffer: bytes | None = None,
    where: str = "device",
    num_threads: int = 1,
) -> Profile:
    """Read `lce_benchmark_model --enable_op_profiling=true` output into a `Profile`.

    It takes the "Run Order" table of the section "Operator-wise Profiling Info for
    Regular Benchmark Runs" (one row per node, average ms) and that section's
    `Timings (microseconds): ... avg=...` line (the whole graph). With the model's
    `flatbuffer`, rows whose name ends in the node index (`[name]:12`) get the op's
    tensor shapes.

    # Arguments
        text: The tool's combined stdout and stderr.
        name: Name of the model in the profile.
        flatbuffer: The `.tflite` that was benchmarked (optional, for shapes).
        where: Where it ran, e.g. `"device (ssh pi@raspberrypi.local)"`.
        num_threads: The benchmark's `--num_threads`.

    # Raises
        DeploymentError: no per-op section in `text` (was profiling enabled?).

    # Example
        ```python
        profile = parse_op_profile(open("pi_profile.txt").read(), name="el_resnet50")
        ```
    """
    start = text.find(_SECTION)
    if start < 0:
        raise DeploymentError(
            f"no '{_SECTION}' section in the benchmark output; run lce_benchmark_model with "
            "--enable_op_profiling=true"
        )
    section = text[start:]
    order = section.find("Run Order")
    rows = []
    for line in section[order:].splitlines()[2:] if order >= 0 else []:
        if not line.strip():
            break
        row = _ROW.match(line)
        if row:
            rows.append(row)
    if not rows:
        raise DeploymentError("the benchmark output's per-op section has no 'Run Order' rows")
    shapes: dict[int, tuple[list, list]] = {}
    if flatbuffer is not None:
        model = _load(flatbuffer, fold=False)
        file_ops = list(model.subgraphs[0].operators)  # the device's node indices
        fold_dequantized_constants(model)  # int8 weights: constants, as the host sees them
        for k, op in enumerate(file_ops):
            shapes[k] = (_shapes(model, _run_inputs(model, op)), _shapes(model, op.outputs))
    ops = []
    for k, row in enumerate(rows):
        node = _NODE_INDEX.match(row["name"])
        index = int(node["index"]) if node else k
        ins, outs = shapes.get(index, ([], []))
        ops.append(
            OpTime(
                index=index,
                op=row["op"],
                name=node["name"] if node else row["name"].strip("[]"),
                input_shapes=ins,
                output_shapes=outs,
                ms=float(row["avg"]),
            )
        )
    timing = _AVG.search(section)
    return Profile(
        model=name,
        where=where,
        num_threads=num_threads,
        kernel="lce_benchmark_model",
        xnnpack=False,
        runs=int(timing["count"]) if timing else 0,
        graph_ms=float(timing["avg"]) / 1e3 if timing else sum(op.ms for op in ops),
        ops=ops,
    )


# ---------------------------------------------------------------- report
def _shape(shapes: list[list[int]]) -> str:
    return ", ".join("x".join(str(d) for d in shape) for shape in shapes) or "-"


def format_profile(profile: Profile, top: int = 15) -> str:
    """The profile as Markdown: summary line, time by op type and by role (`op_role`),
    the `top` slowest ops."""
    settings = f"{profile.num_threads} thread(s), {profile.kernel}"
    if profile.xnnpack:
        settings += ", XNNPACK"
    lines = [
        f"per-op profile of {profile.model} ({profile.where}, {settings}, {profile.runs} runs): "
        f"{len(profile.ops)} ops, sum of per-op times {profile.sum_ms:.3f} ms, whole graph "
        f"{profile.graph_ms:.3f} ms (sum / graph = {profile.sum_ms / profile.graph_ms:.2f})",
        "",
        "| op type | count | ms | share |",
        "| --- | --- | --- | --- |",
    ]
    for row in profile.by_type():
        share = 100 * row["share"]
        lines.append(f"| {row['op']} | {row['count']} | {row['ms']:.3f} | {share:.1f} % |")
    lines += ["", "| role | count | ms | share |", "| --- | --- | --- | --- |"]
    for row in profile.by_role():
        share = 100 * row["share"]
        lines.append(f"| {row['role']} | {row['count']} | {row['ms']:.3f} | {share:.1f} % |")
    lines += [
        "",
        "| # | op | ms | inputs | outputs | name |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for op in sorted(profile.ops, key=lambda op: -op.ms)[:top]:
        lines.append(
            f"| {op.index} | {op.op} | {op.ms:.3f} | {_shape(op.input_shapes)} "
            f"| {_shape(op.output_shapes)} | {op.name} |"
        )
    return "\n".join(lines)


def as_if_trained(model: Any, seed: int = 0) -> Any:
    """Give every BatchNorm non-trivial statistics and offsets, as training would.

    A freshly built model's BatchNorms have zero offsets, which the converter removes
    (an `ADD` of zeros); a trained model keeps them. The same holds for ReActNet's RSign
    thresholds and RPReLU shifts (`el_larq.reactnet`), which start at zero and are given
    small values too (RPReLU slopes stay near their 0.25). Latency and profiles of zoo
    architectures are measured on models treated with this, so that they run the ops
    a trained model runs. Also breaks the ties at zero of an untrained BNN (see
    `el_larq.deploy.verification.untrained_batchnorms`).

    # Arguments
        model: A Keras model; changed in place.
        seed: Seed of the statistics.

    # Returns
        The same model.

    # Example
        ```python
        flatbuffer, _ = convert(as_if_trained(el_resnet50()))
        ```
    """
    import tensorflow as tf

    from el_larq.reactnet import RPReLU, RSign

    rng = np.random.default_rng(seed)
    for layer in walk_layers(model):
        if isinstance(getattr(layer, "input_quantizer", None), RSign):
            beta = layer.input_quantizer.beta
            beta.assign(rng.normal(0, 0.2, beta.shape))
        if isinstance(layer, RPReLU):
            shape = layer.slope.shape
            layer.set_weights(
                [rng.normal(0, 0.2, shape), rng.uniform(0.1, 0.4, shape), rng.normal(0, 0.2, shape)]
            )
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            values = {
                "gamma": rng.uniform(0.5, 1.5, shape),
                "beta": rng.normal(0, 0.5, shape),
                "moving_mean": rng.normal(0, 1, shape),
                "moving_variance": rng.uniform(0.5, 2, shape),
            }
            layer.set_weights([values[w.name.split("/")[-1].split(":")[0]] for w in layer.weights])
    return model
