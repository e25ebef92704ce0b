"""Larq Compute Engine deployment: load, convert, census, verify, size and benchmark.

Everything `convert/to_lce.py`, `convert/benchmark.py` and `convert/overhead_report.py`
do lives here as small functions, so that scripts and notebooks can use them too:

* `load_model`: read a `.h5`, `.keras` or SavedModel file with el_larq's layers, refusing
  `Lambda` layers (stored code) unless allowed, before anything is deserialised.
* `convert`: LCE's converter on one traced inference function, with the converter's own
  error lines captured (it may print an error and still emit a float op).
* `census`: which Keras layer became which flatbuffer op: binarized standard convs must
  be `LceBconv2d`; float fallbacks are named.
* `verify`: Keras against LCE's interpreter on the same inputs.
* `size_report`, `weight_bytes`: what the flatbuffer holds (FLOPs: `el_larq.summary`).
* `quantize_weights`: int8 weights for the float layers LCE keeps (stem, shortcuts,
  classifier), TFLite's hybrid kernels.
* `host_latency`, `device_commands`, `run_device_benchmark`, `parse_benchmark_output`:
  latency here, or on an ARM device through LCE's `lce_benchmark_model`.
* `write_atomic`: a file is either completely written or not there at all.

Reading a flatbuffer's ops needs no TFLite runtime: LCE ships the schema bindings.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import platform
import re
import shlex
import statistics
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import flatbuffers
import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from larq_compute_engine.mlir.python import tflite_schema

from el_larq import safety
from el_larq.safety import DeploymentError, read_model_config, validate_flatbuffer

__all__ = [
    "Census",
    "DEVICE_MODES",
    "DeploymentError",
    "KERNELS",
    "LATENCY_HEADER",
    "Latency",
    "QuantizedWeight",
    "Verification",
    "census",
    "check_writable",
    "convert",
    "dataset_examples",
    "dataset_inputs",
    "device_commands",
    "device_latency",
    "flatbuffer_ops",
    "format_census",
    "format_quantized",
    "host_latency",
    "json_dumps",
    "layer_kind",
    "load_model",
    "make_interpreter",
    "walk_layers",
    "op_counts",
    "parse_benchmark_output",
    "quantize_weights",
    "random_inputs",
    "read_model_config",
    "run_device_benchmark",
    "size_report",
    "untrained_batchnorms",
    "verify",
    "weight_bytes",
    "write_atomic",
]

_BUILTIN_NAMES = {
    code: name
    for name, code in vars(tflite_schema.BuiltinOperator).items()
    if not name.startswith("_")
}


# ---------------------------------------------------------------- flatbuffer ops
def _op_name(model: Any, op: Any) -> str:
    code = model.OperatorCodes(op.OpcodeIndex())
    custom = code.CustomCode()
    if custom:
        return custom.decode()
    # Codes above 127 live only in BuiltinCode; older files only in the deprecated field.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")


def flatbuffer_ops(flatbuffer: bytes) -> list[str]:
    """The op names of a TFLite flatbuffer's main subgraph, in execution order.

    Builtin ops by their TFLite name (`CONV_2D`, `ADD`, ...), custom ops by their
    custom code (`LceBconv2d`, `LceQuantize`, ...).

    # Arguments
        flatbuffer: The bytes of a `.tflite` model.

    # Returns
        A list of op names.

    # Example
        ```python
        ops = flatbuffer_ops(lce.convert_keras_model(model))
        assert "LceBconv2d" in ops
        ```
    """
    model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    subgraph = model.Subgraphs(0)
    return [_op_name(model, subgraph.Operators(j)) for j in range(subgraph.OperatorsLength())]


def op_counts(flatbuffer: bytes) -> collections.Counter:
    """`collections.Counter` of `flatbuffer_ops(flatbuffer)`."""
    return collections.Counter(flatbuffer_ops(flatbuffer))


def weight_bytes(flatbuffer: bytes) -> collections.Counter:
    """Bytes of constant tensors (weights, biases, ...) by the op type that reads them.

    Shows where a flatbuffer's size goes: bit-packed binary kernels in `LceBconv2d`
    against float32 kernels in `CONV_2D` / `FULLY_CONNECTED`. A constant read by
    several ops counts once, for the first.

    # Example
        ```python
        print(weight_bytes(flatbuffer).most_common(3))
        ```
    """
    model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)
    counts: collections.Counter = collections.Counter()
    seen = set()
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        for k in range(op.InputsLength()):
            tensor = op.Inputs(k)
            if tensor < 0 or tensor in seen:
                continue
            size = model.Buffers(graph.Tensors(tensor).Buffer()).DataLength()
            if size:
                seen.add(tensor)
                counts[_op_name(model, op)] += size
    return counts


# ---------------------------------------------------------------- loading
# Reading and checking stored configs lives in el_larq.safety (no TensorFlow needed to
# read them); `read_model_config` stays importable from here.


def _known_custom_objects() -> list[str]:
    return sorted(tf.keras.utils.get_custom_objects())


def load_model(path: str | os.PathLike, *, allow_unsafe: bool = False) -> tf.keras.Model:
    """Load a Keras model that uses el_larq's (and larq's) layers, safely.

    The whole stored config is checked before anything is deserialised
    (`el_larq.safety.check_model_config`): layers that run code stored in the file
    (`Lambda`, also inside wrappers, RNN cells or nested models) are refused unless
    `allow_unsafe=True`; unknown classes, foreign module names, corrupt or absurdly
    nested configs are always refused.

    # Arguments
        path: A `.h5` file, a `.keras` archive or a SavedModel directory.
        allow_unsafe: Load models with `Lambda` layers (only for files you trust).

    # Returns
        The `tf.keras.Model`, not compiled.

    # Raises
        DeploymentError: missing or corrupt file, not a model, a layer that runs stored
            code, or a layer class that is not registered (the message lists the
            registered ones).

    # Example
        ```python
        model = load_model("el_resnet18.h5")
        ```
    """
    safety.check_model_file(path, allow_unsafe=allow_unsafe)
    try:
        model = tf.keras.models.load_model(
            os.fspath(path), compile=False, safe_mode=not allow_unsafe
        )
    except RecursionError:  # not reachable through a checked config; never a traceback
        raise DeploymentError(f"cannot load {path}: its config is nested too deeply") from None
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        unknown = re.search(r"Unknown (?:layer|object|class)\w*: '?([\w.]+)'?", message)
        if unknown:
            raise DeploymentError(
                f"{path} uses an unknown layer class '{unknown.group(1)}'. Registered custom "
                f"layers: {', '.join(_known_custom_objects())} (plus every tf.keras layer); "
                "import the module that defines it before converting"
            ) from None
        raise DeploymentError(f"cannot load {path}: {message}") from None
    if not isinstance(model, tf.keras.Model):
        raise DeploymentError(f"{path} did not load as a Keras model (got {type(model)})")
    return model


# ---------------------------------------------------------------- conversion
@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture file descriptor 2, where LCE's C++ converter prints its diagnostics."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines.extend(capture.read().decode(errors="replace").splitlines())


def _convert_traced(model: tf.keras.Model, target: str) -> bytes:
    """`lce.convert_keras_model`, minus its Keras SavedModel export.

    `convert_keras_model` saves the model with `model.save(save_format="tf")`, which
    traces every layer's call functions for revival: minutes for a ResNet50. The
    converter needs only one inference function, so that is all we save (about 3x
    faster on EL-ResNet50); the conversion itself is LCE's `convert_saved_model`.
    """
    if len(model.inputs) != 1:
        return lce.convert_keras_model(model, target=target)
    spec = tf.TensorSpec((None, *model.input_shape[1:]), model.inputs[0].dtype)
    serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    module = tf.Module()
    module.model_variables = model.variables  # tracked, so the SavedModel holds them
    with tempfile.TemporaryDirectory() as saved_model_dir:
        tf.saved_model.save(module, saved_model_dir, signatures=serve.get_concrete_function())
        return lce.convert_saved_model(saved_model_dir, target=target)


def convert(model: tf.keras.Model, *, target: str = "arm") -> tuple[bytes, list[str]]:
    """Convert a Keras model with LCE and return the converter's error messages too.

    LCE's converter may print an error (e.g. "Invalid binary grouped convolution") and
    still emit a float op in place of a binary one, so its messages are returned for the
    report; the flatbuffer itself is checked by `census`.

    # Arguments
        model: A Keras model with larq / el_larq layers.
        target: `"arm"` (ARM64 and x86 hosts) or `"xcore"`.

    # Returns
        `(flatbuffer, messages)`: the `.tflite` bytes and the converter's `error:` /
        `warning:` lines, de-duplicated.

    # Example
        ```python
        flatbuffer, messages = convert(model)
        ```
    """
    if target not in ("arm", "xcore"):
        raise DeploymentError(f"unknown target '{target}'; valid targets: arm, xcore")
    with _captured_stderr() as lines:
        flatbuffer = _convert_traced(model, target)
    messages = []
    for line in lines:
        found = re.search(r"\b(error|warning): (.*)$", line)
        if found and f"{found.group(1)}: {found.group(2)}" not in messages:
            messages.append(f"{found.group(1)}: {found.group(2).strip()}")
    return flatbuffer, messages


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes, chunk_size: int = 1 << 20) -> int:
    """Write `data` to `path` so that `path` is either the complete new file or untouched.

    The bytes go to a temporary file in the same directory, are flushed to disk, and the
    file is renamed over `path` (atomic on POSIX); on any error the temporary is removed.

    # Arguments
        path: Destination file.
        data: The bytes to write.
        chunk_size: Write in chunks of this many bytes.

    # Returns
        The number of bytes written.

    # Raises
        DeploymentError: the directory does not exist or is not writable.

    # Example
        ```python
        write_atomic("model.tflite", flatbuffer)
        ```
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise DeploymentError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp's 0600 would surprise users
        with os.fdopen(handle, "wb") as f:
            for start in range(0, len(data), chunk_size):
                f.write(data[start : start + chunk_size])
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return len(data)


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before a long conversion) when `path` cannot be written.

    # Raises
        DeploymentError: the parent is missing or not a writable directory, or `path` is a
            directory.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise DeploymentError(f"cannot write {path}: it is a directory")
    if not parent.is_dir():
        raise DeploymentError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DeploymentError(f"cannot write {path}: {parent} is not writable")


def json_dumps(value: Any) -> str:
    """`json.dumps` that also takes NumPy scalars and arrays (reports hold both).

    # Example
        ```python
        text = json_dumps({"max_abs": np.float32(1e-6)})
        ```
    """

    def default(item: Any) -> Any:
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, np.ndarray):
            return item.tolist()
        raise TypeError(f"not JSON serialisable: {type(item).__name__}")

    return json.dumps(value, indent=2, default=default)


# ---------------------------------------------------------------- census
# Ops that a conv becomes (binary or float); the rest of the graph is not a conv.
_CONV_OPS = ("LceBconv2d", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
# Ops the converter puts between a layer's input and its conv: their tensor names still
# name that layer (e.g. `model/grouped/PadV2` before a fallen-back binary conv).
_GLUE_OPS = ("PAD", "PADV2", "LceQuantize", "LceDequantize")
# TFLite keeps at most this many characters of a tensor name.
_NAME_LIMIT = 50


def _is_binary(quantizer: Any) -> bool:
    # larq's own test (layers_base._is_binary); NoOp(precision=1) only tags a variable.
    return getattr(quantizer, "precision", None) == 1 and not isinstance(
        quantizer, lq.quantizers.NoOp
    )


def walk_layers(model: tf.keras.Model) -> Iterator[tf.keras.layers.Layer]:
    """Every layer of `model`, nested models flattened."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from walk_layers(layer)
        else:
            yield layer


def layer_kind(layer: tf.keras.layers.Layer) -> str | None:
    """How LCE treats a Keras layer: `"binary"`, `"binary_depthwise"`, `"binary_dense"`,
    `"float"` (a conv or dense kept in float on purpose) or `None` (not a conv).

    # Example
        ```python
        assert layer_kind(el_larq.layers.BinaryConv2D(8, 3)) == "binary"
        ```
    """
    input_binary = _is_binary(getattr(layer, "input_quantizer", None))
    if isinstance(layer, lq.layers.QuantDepthwiseConv2D):
        if input_binary and _is_binary(layer.depthwise_quantizer):
            return "binary_depthwise"
    elif isinstance(layer, lq.layers.QuantConv2D):
        if input_binary and _is_binary(layer.kernel_quantizer):
            return "binary"
    elif isinstance(layer, lq.layers.QuantDense):
        if input_binary and _is_binary(layer.kernel_quantizer):
            return "binary_dense"
    conv_types = (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D, tf.keras.layers.Dense)
    conv_types += (lq.layers.QuantConv2D, lq.layers.QuantDepthwiseConv2D, lq.layers.QuantDense)
    return "float" if isinstance(layer, conv_types) else None


def _name_tokens(name: str) -> set[str]:
    parts = re.split(r"[/;:]", name)
    if len(name) >= _NAME_LIMIT:
        parts = parts[:-1]  # possibly cut short: "model/expand_c" is not layer "expand_c"
    return {part for part in parts if part}


@dataclasses.dataclass
class _Op:
    index: int
    name: str
    own: set[str]  # tokens of the op's outputs and constant inputs
    glue: set[str]  # tokens of the pad/quantize ops that feed it


def _conv_ops(flatbuffer: bytes) -> list[_Op]:
    model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)
    producer = {}
    for j in range(graph.OperatorsLength()):
        for k in range(graph.Operators(j).OutputsLength()):
            producer[graph.Operators(j).Outputs(k)] = j

    def tensor_name(index: int) -> str:
        return graph.Tensors(index).Name().decode(errors="replace")

    def glue_names(tensor: int, depth: int = 0) -> set[str]:
        j = producer.get(tensor)
        if j is None or depth > 4 or _op_name(model, graph.Operators(j)) not in _GLUE_OPS:
            return set()
        op = graph.Operators(j)
        names = _name_tokens(tensor_name(tensor))
        if _op_name(model, op) != "LceQuantize":  # its input belongs to the layer before
            names |= glue_names(op.Inputs(0), depth + 1)
        return names

    ops = []
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        name = _op_name(model, op)
        if name not in _CONV_OPS:
            continue
        own: set[str] = set()
        for k in range(op.OutputsLength()):
            own |= _name_tokens(tensor_name(op.Outputs(k)))
        for k in range(1, op.InputsLength()):
            if op.Inputs(k) >= 0 and op.Inputs(k) not in producer:
                own |= _name_tokens(tensor_name(op.Inputs(k)))
        ops.append(_Op(j, name, own, glue_names(op.Inputs(0))))
    return ops


def _aliases(model: tf.keras.Model, layer: tf.keras.layers.Layer) -> set[str]:
    """The layer's name and those of the BN / activation layers fused into its op."""
    names = {layer.name}
    fusable = (tf.keras.layers.BatchNormalization, tf.keras.layers.Activation)
    fusable += (tf.keras.layers.ReLU,)
    for node in layer._outbound_nodes:
        if isinstance(node.outbound_layer, fusable):
            names.add(node.outbound_layer.name)
    return names


@dataclasses.dataclass
class Census:
    """Which Keras conv became which flatbuffer op.

    # Attributes
        ops: `collections.Counter` of all flatbuffer op names.
        accelerated: Binarized standard convs that became `LceBconv2d`.
        fallback: Binarized standard convs that LCE kept as a float op, as
            `(layer name, op name)`; the op is `"?"` when no op could be found for it.
        float_kept: Float convs / dense layers, kept in float on purpose (stem,
            downsample shortcut, classifier), as `(layer name, op name)`.
        binary_not_accelerated: Binary depthwise convs and binary dense layers (LCE has
            no binary kernel for them), as `(layer name, op name)`.
        converter_messages: The converter's `error:` / `warning:` lines.
    """

    ops: collections.Counter
    accelerated: list[str]
    fallback: list[tuple[str, str]]
    float_kept: list[tuple[str, str]]
    binary_not_accelerated: list[tuple[str, str]]
    converter_messages: list[str] = dataclasses.field(default_factory=list)

    @property
    def has_binary(self) -> bool:
        """Whether the model has any binarized layer at all."""
        return bool(self.accelerated or self.fallback or self.binary_not_accelerated)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {**dataclasses.asdict(self), "ops": dict(self.ops)}


def _expected_ops(layer: tf.keras.layers.Layer) -> tuple[str, ...]:
    if isinstance(layer, (tf.keras.layers.Dense, lq.layers.QuantDense)):
        return ("FULLY_CONNECTED",)
    if isinstance(layer, (tf.keras.layers.DepthwiseConv2D, lq.layers.QuantDepthwiseConv2D)):
        return ("DEPTHWISE_CONV_2D",)
    if layer_kind(layer) == "binary":
        return ("LceBconv2d", "CONV_2D")
    return ("CONV_2D",)


def _match(model: tf.keras.Model, layers: list, ops: list[_Op]) -> dict[str, str]:
    """Keras layer name -> op name, one op per layer, best evidence first.

    Evidence: the layer (or its fused BN / activation) names the op's output or weights;
    else it names a pad / quantize op feeding the op; else the first op left of the type
    the layer should become (e.g. the classifier's `FULLY_CONNECTED`, whose output is
    just the model output).
    """
    candidates = []
    for layer in layers:
        aliases = _aliases(model, layer)
        for op in ops:
            if aliases & op.own:
                candidates.append((0, layer.name, op))
            elif layer.name in op.glue:
                candidates.append((1, layer.name, op))
    matched: dict[str, str] = {}
    taken: set[int] = set()
    for _, name, op in sorted(candidates, key=lambda c: (c[0], c[2].index)):
        if name not in matched and op.index not in taken:
            matched[name] = op.name
            taken.add(op.index)
    for layer in layers:
        for wanted in _expected_ops(layer) if layer.name not in matched else ():
            free = [op for op in ops if op.index not in taken and op.name == wanted]
            if free:
                matched[layer.name] = free[0].name
                taken.add(free[0].index)
                break
    return matched


def census(
    model: tf.keras.Model, flatbuffer: bytes, converter_messages: Sequence[str] = ()
) -> Census:
    """Compare a Keras model with its LCE flatbuffer, conv by conv.

    Every binarized standard conv (a `larq.layers.QuantConv2D` with binary input and
    kernel quantizers) should have become an `LceBconv2d`. LCE silently keeps some as a
    float `CONV_2D` (e.g. a grouped binary conv with fewer than 32 input channels per
    group): those are listed in `fallback`, by layer name. Layers are found through the
    flatbuffer's tensor names, which carry the Keras layer names (TFLite cuts them at 50
    characters); a layer whose name is not found takes the next unclaimed op of the type
    it should become, so the counts stay right.

    # Arguments
        model: The Keras model that was converted.
        flatbuffer: Its `.tflite` bytes.
        converter_messages: Messages from `convert`, kept in the report.

    # Returns
        A `Census`.

    # Example
        ```python
        flatbuffer, messages = convert(model)
        report = census(model, flatbuffer, messages)
        assert not report.fallback
        ```
    """
    kinds = collections.defaultdict(list)
    for layer in walk_layers(model):
        kind = layer_kind(layer)
        if kind:
            kinds[kind].append(layer)
    ops = _conv_ops(flatbuffer)
    conv_layers = [layer for group in kinds.values() for layer in group]
    matched = _match(model, conv_layers, ops)
    counts = op_counts(flatbuffer)

    accelerated, fallback = [], []
    for layer in kinds["binary"]:
        op = matched.get(layer.name, "?")
        if op == "LceBconv2d":
            accelerated.append(layer.name)
        else:
            fallback.append((layer.name, op))

    def listed(kind: str) -> list[tuple[str, str]]:
        return [(layer.name, matched.get(layer.name, "?")) for layer in kinds[kind]]

    return Census(
        ops=counts,
        accelerated=accelerated,
        fallback=fallback,
        float_kept=listed("float"),
        binary_not_accelerated=listed("binary_depthwise") + listed("binary_dense"),
        converter_messages=list(converter_messages),
    )


def format_census(report: Census) -> str:
    """A human-readable multi-line summary of a `Census`.

    # Example
        ```python
        print(format_census(census(model, flatbuffer)))
        ```
    """
    total = len(report.accelerated) + len(report.fallback)
    lines = ["ops: " + ", ".join(f"{name} x{n}" for name, n in report.ops.most_common())]
    lines.append(
        f"binarized standard convs accelerated (LceBconv2d): {len(report.accelerated)}/{total}"
    )
    for name, op in report.fallback:
        lines.append(f"  NOT accelerated: {name} became {op} (float)")
    if report.float_kept:
        kept = ", ".join(f"{name} ({op})" for name, op in report.float_kept)
        lines.append(f"float layers kept on purpose: {kept}")
    if report.binary_not_accelerated:
        kept = ", ".join(f"{name} ({op})" for name, op in report.binary_not_accelerated)
        lines.append(f"binary depthwise/dense layers (no LCE binary kernel, run in float): {kept}")
    for message in report.converter_messages:
        lines.append(f"LCE converter said: {message}")
    return "\n".join(lines)


# ---------------------------------------------------------------- verification
# Documented in docs/deployment.md. Keras and LCE sum float32 in different orders, so a
# value within ~1e-6 of zero can take the other sign in the next binary layer; in a
# deep BNN a few such flips move the logits by about 1e-3 of their range, and on real
# images a flip early in the net can move one image's outputs a lot. So the gate is the
# MEAN difference (a wrong conversion moves every output) and the top-1 agreement; the
# max difference is reported, not gated.
DEFAULT_RTOL = 1e-2
DEFAULT_MIN_TOP1 = 0.95
# int8 weights move every float layer's outputs by up to ~0.4 % of its range, and each
# activation pushed across zero flips a sign in the next binary layer. A trained
# EL-ResNet26 then gives another top-1 for ~7 % of Fashion-MNIST test images, with the
# same accuracy (81.55 vs 81.57 % on 10,000; docs/deployment.md): the gates catch a
# broken model (chance agreement), not those flips. Accuracy: train/evaluate.py.
DEFAULT_RTOL_INT8 = 5e-2
DEFAULT_MIN_TOP1_INT8 = 0.85
# With labelled inputs (`convert/to_lce.py --dataset`): the flatbuffer's labelled top-1 may
# be at most this much below Keras's. This is the gate that matters for int8 weights.
DEFAULT_MAX_TOP1_DROP = 0.01


@dataclasses.dataclass
class Verification:
    """Keras vs LCE interpreter on the same inputs.

    # Attributes
        samples: Number of inputs.
        max_abs: Largest absolute difference of any output value.
        mean_abs: Mean absolute difference.
        scale: Largest absolute Keras output value (what `rtol` is relative to).
        top1_agreement: Fraction of inputs with the same arg-max (None: not a classifier).
        rtol: Tolerance: `mean_abs <= rtol * scale` must hold.
        min_top1: Tolerance: `top1_agreement >= min_top1` must hold.
        keras_accuracy: Top-1 of Keras against the labels (None: no labels).
        lce_accuracy: Top-1 of the flatbuffer against the labels.
        max_top1_drop: Tolerance: `lce_accuracy >= keras_accuracy - max_top1_drop`.
    """

    samples: int
    max_abs: float
    mean_abs: float
    scale: float
    top1_agreement: float | None
    rtol: float
    min_top1: float
    keras_accuracy: float | None = None
    lce_accuracy: float | None = None
    max_top1_drop: float = DEFAULT_MAX_TOP1_DROP

    @property
    def passed(self) -> bool:
        """Whether every tolerance holds."""
        close = self.mean_abs <= self.rtol * max(self.scale, 1e-6)
        agree = self.top1_agreement is None or self.top1_agreement >= self.min_top1
        accurate = self.keras_accuracy is None or (
            self.lce_accuracy >= self.keras_accuracy - self.max_top1_drop - 1e-12
        )
        return close and agree and accurate

    def summary(self) -> str:
        """One line: the numbers and the verdict."""
        top1 = "n/a" if self.top1_agreement is None else f"{self.top1_agreement:.1%}"
        labelled = ""
        if self.keras_accuracy is not None:
            labelled = (
                f", labelled top-1 Keras {self.keras_accuracy:.2%} vs LCE "
                f"{self.lce_accuracy:.2%} (limit {self.max_top1_drop:.2%} lower)"
            )
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"verification on {self.samples} inputs: mean |diff| {self.mean_abs:.3g} "
            f"(limit {self.rtol:g} x max |output| {self.scale:.3g} = "
            f"{self.rtol * self.scale:.3g}), max |diff| {self.max_abs:.3g}, "
            f"top-1 agreement {top1} (limit {self.min_top1:.0%}){labelled}: {verdict}"
        )


def random_inputs(model: tf.keras.Model, samples: int, seed: int = 0) -> np.ndarray:
    """`samples` inputs for `model`, uniform in [-1, 1] (both signs: every sign path runs).

    # Example
        ```python
        x = random_inputs(model, 8)
        ```
    """
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise DeploymentError(f"the model input shape {shape} must be fully known to convert")
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(samples, *shape)).astype(np.float32)


def dataset_inputs(
    model: tf.keras.Model, name: str, samples: int, *, data_dir: str | None = None
) -> np.ndarray:
    """`samples` real, preprocessed images from a dataset (its evaluation split).

    # Example
        ```python
        x = dataset_inputs(model, "fashion_mnist", 32)
        ```
    """
    return dataset_examples(model, name, samples, data_dir=data_dir)[0]


def dataset_examples(
    model: tf.keras.Model, name: str, samples: int, *, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`samples` real, preprocessed images and their labels (the evaluation split).

    Uses `el_larq.data`, so the images are preprocessed as for training and evaluation.

    # Arguments
        model: The model the images are for (its input size picks the image size).
        name: Dataset name, e.g. `fashion_mnist` or any TFDS image dataset.
        samples: How many images.
        data_dir: Dataset directory (see `el_larq.data.load_split`).

    # Returns
        `(images, labels)`: float32 `(samples, *input_shape)` and int64 `(samples,)`.

    # Example
        ```python
        x, y = dataset_examples(model, "fashion_mnist", 1000)
        ```
    """
    from el_larq import data

    shape = tuple(model.inputs[0].shape[1:])
    try:
        split = data.load_split(
            name,
            data.default_eval_split(name, data_dir),
            training=False,
            batch_size=samples,
            data_dir=data_dir,
            image_size=shape[0],
        )
        images, labels = (t.numpy() for t in next(iter(split.dataset))[:2])
    except data.DataError as error:
        raise DeploymentError(str(error).splitlines()[0]) from None
    if images.shape[1:] != shape:
        raise DeploymentError(
            f"dataset {name!r} gives images of shape {images.shape[1:]}, but the model "
            f"expects {shape}"
        )
    labels = labels.argmax(-1) if labels.ndim > 1 else labels  # one-hot or sparse
    return images[:samples].astype(np.float32), labels[:samples].astype(np.int64)


def untrained_batchnorms(model: tf.keras.Model) -> list[str]:
    """BatchNorm layers still at their initial statistics (moving mean 0, variance 1).

    In an untrained BNN every bconv output is an integer, and with identity BatchNorms
    sums of them cancel to within float rounding of zero, where Keras and LCE may pick
    different signs. Such a model is no test of the conversion: verify a trained one.

    # Example
        ```python
        if untrained_batchnorms(model): print("train or load weights first")
        ```
    """
    names = []
    for layer in walk_layers(model):
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            mean, variance = layer.moving_mean.numpy(), layer.moving_variance.numpy()
            if not mean.any() and np.all(variance == 1):
                names.append(layer.name)
    return names


def verify(
    model: tf.keras.Model,
    flatbuffer: bytes,
    inputs: np.ndarray,
    *,
    rtol: float = DEFAULT_RTOL,
    min_top1: float = DEFAULT_MIN_TOP1,
    labels: np.ndarray | None = None,
    max_top1_drop: float = DEFAULT_MAX_TOP1_DROP,
    num_threads: int = 1,
) -> Verification:
    """Run the same inputs through Keras and LCE's interpreter and compare.

    # Arguments
        model: The Keras model.
        flatbuffer: Its LCE conversion.
        inputs: A batch of inputs, `(samples, *input_shape)`.
        rtol: Largest allowed mean `|diff|`, relative to the largest Keras output.
        min_top1: Smallest allowed top-1 agreement (for `(batch, classes)` outputs).
        labels: Class labels of `inputs` (classifiers): then both models' labelled
            top-1 is reported, and the flatbuffer's may be at most `max_top1_drop`
            below Keras's.
        max_top1_drop: See `labels`.
        num_threads: Interpreter threads.

    # Returns
        A `Verification`; check `.passed`.

    # Example
        ```python
        result = verify(model, flatbuffer, random_inputs(model, 8))
        assert result.passed, result.summary()
        ```
    """
    expected = model.predict(inputs, batch_size=len(inputs), verbose=0)
    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=num_threads)
    actual = interpreter.predict(inputs)
    if isinstance(expected, list):
        expected = np.concatenate([np.reshape(e, (len(inputs), -1)) for e in expected], axis=1)
        actual = np.concatenate([np.reshape(a, (len(inputs), -1)) for a in actual], axis=1)
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    diff = np.abs(actual - expected)
    top1 = keras_accuracy = lce_accuracy = None
    if expected.ndim == 2 and expected.shape[1] > 1:
        top1 = float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1)))
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            if labels.shape != (len(inputs),):
                raise DeploymentError(f"{len(labels)} labels for {len(inputs)} inputs")
            keras_accuracy = float(np.mean(expected.argmax(axis=1) == labels))
            lce_accuracy = float(np.mean(actual.argmax(axis=1) == labels))
    return Verification(
        samples=len(inputs),
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        scale=float(np.abs(expected).max()),
        top1_agreement=top1,
        rtol=rtol,
        min_top1=min_top1,
        keras_accuracy=keras_accuracy,
        lce_accuracy=lce_accuracy,
        max_top1_drop=max_top1_drop,
    )


# ---------------------------------------------------------------- size and FLOPs
def size_report(model: tf.keras.Model, flatbuffer: bytes) -> dict[str, float]:
    """Flatbuffer bytes against the float32 size of the same model (4 bytes a weight).

    # Returns
        `{"flatbuffer_bytes", "float32_bytes", "ratio"}` (ratio = float32 / flatbuffer).

    # Example
        ```python
        print(size_report(model, flatbuffer)["ratio"])
        ```
    """
    float_bytes = 4 * model.count_params()
    return {
        "flatbuffer_bytes": len(flatbuffer),
        "float32_bytes": float_bytes,
        "ratio": float_bytes / len(flatbuffer),
    }


# ---------------------------------------------------------------- int8 weights
# The float ops whose constant weights can be stored as int8 ("hybrid" kernels: int8
# weights, float activations quantized on the fly): weight input index, quantized axis
# (None: one scale per tensor) and the op version TFLite's converter gives that form.
# FULLY_CONNECTED takes per-tensor scales: per-channel hybrid FC (version 12) is newer
# than the TFLite inside LCE 0.16, whose interpreter refuses it.
_HYBRID_OPS = {
    "CONV_2D": (1, 0, 5),
    "DEPTHWISE_CONV_2D": (1, 3, 6),
    "FULLY_CONNECTED": (1, None, 3),
}


@dataclasses.dataclass
class QuantizedWeight:
    """One float32 weight tensor `quantize_weights` considered: stored as int8, or kept."""

    op: str
    tensor: str
    shape: tuple[int, ...]
    float32_bytes: int
    int8_bytes: int  # what it takes now (float32_bytes when kept float)
    max_abs_error: float  # largest |w - dequantized w|, in the weights' own units (0: kept)
    int8: bool = True
    reason: str = ""  # why it was kept float


# Weight tensors smaller than this stay float32 by default: they save little, and in a
# BNN each float layer's rounding flips signs downstream (docs/deployment.md, 1.1).
INT8_MIN_ELEMENTS = 16384


class _AlignedBuilder(flatbuffers.Builder):
    """Byte vectors (tensor buffers) 16-byte aligned, as TFLite's own writer lays them."""

    def StartVector(self, elemSize: int, numElems: int, alignment: int) -> int:  # noqa: N802,N803
        return super().StartVector(elemSize, numElems, 16 if elemSize == 1 else alignment)


def _int8_symmetric(weights: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """`(int8 values, float32 scales, max |error|)`, `weights ~ values * scale`, zero point 0."""
    reduce = None if axis is None else tuple(i for i in range(weights.ndim) if i != axis)
    scale = np.atleast_1d(np.abs(weights).max(axis=reduce) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0  # an all-zero channel: any scale represents it exactly
    shape = [1] * weights.ndim
    if axis is not None:
        shape[axis] = -1
    values = np.clip(np.round(weights / scale.reshape(shape)), -127, 127).astype(np.int8)
    return values, scale, float(np.abs(weights - values * scale.reshape(shape)).max())


def quantize_weights(
    flatbuffer: bytes,
    *,
    min_elements: int = INT8_MIN_ELEMENTS,
    keep_input_layers: bool = True,
    only: Collection[str] | None = None,
) -> tuple[bytes, list[QuantizedWeight]]:
    """Store the float32 weights of a flatbuffer's float convs and dense layers as int8.

    TFLite's dynamic-range ("hybrid") quantization, applied to an LCE flatbuffer after
    conversion, because LCE's converter has no option for it: a `CONV_2D`,
    `DEPTHWISE_CONV_2D` or `FULLY_CONNECTED` whose weights are a float32 constant
    gets symmetric int8 weights (one scale per output channel for convs, one per
    tensor for dense layers) and the op version that marks the hybrid kernel. At run
    time the kernel quantizes its float input on the fly and multiplies in int8;
    activations, biases and everything else stay float32, and `LceBconv2d` kernels are
    already 1 bit. In a binary ResNet this shrinks what stays float on purpose
    (downsample shortcuts, classifier) about 4x, and with it most of the file.

    What stays float32 by default, because it costs accuracy and saves little: a layer
    that reads the model input (the stem: it feeds every sign of the network, and its
    rounding moved a trained EL-ResNet26's test top-1 most), and any weight tensor with
    fewer than `min_elements` values. Check the result with `verify` on labelled data
    (`convert/to_lce.py --int8_weights --dataset ...`) and on a test set
    (`train/evaluate.py`).

    # Arguments
        flatbuffer: The bytes of a `.tflite` model (from `convert`).
        min_elements: Weight tensors with fewer values stay float32 (0: none).
        keep_input_layers: Keep float32 the layers that read the model input.
        only: Quantize exactly these weight tensors (by name), nothing else: for
            measuring one layer at a time.

    # Returns
        `(flatbuffer, weights)`: the new bytes (the input bytes when nothing changed)
        and one `QuantizedWeight` per float32 weight tensor considered, with `int8`
        telling whether it was stored as int8 and `reason` why not.

    # Example
        ```python
        flatbuffer, _ = convert(model)
        small, weights = quantize_weights(flatbuffer)
        print(format_quantized(weights))
        ```
    """
    model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(flatbuffer, 0))
    quantized, versions = [], {}
    uses = collections.Counter(t.buffer for graph in model.subgraphs for t in graph.tensors)
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            op_name = _BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode))
            spec = _HYBRID_OPS.get(op_name)
            if spec is None or len(op.inputs) <= spec[0] or op.inputs[spec[0]] < 0:
                continue
            index, axis, version = spec
            tensor = graph.tensors[op.inputs[index]]
            buffer = model.buffers[tensor.buffer]
            float32 = tensor.type == tflite_schema.TensorType.FLOAT32
            if not float32 or buffer.data is None or len(buffer.data) == 0:
                continue  # not a float constant (already quantized, or computed)
            if op_name == "CONV_2D" and graph.tensors[op.inputs[0]].shape[-1] != tensor.shape[-1]:
                continue  # grouped: TFLite has no hybrid kernel for it
            weights = np.frombuffer(bytes(buffer.data), np.float32).reshape(tensor.shape)
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            reason = ""
            if only is not None:
                reason = "" if name in only else "not selected"
            elif keep_input_layers and op.inputs[0] in graph.inputs:
                reason = "reads the model input"
            elif weights.size < min_elements:
                reason = f"{weights.size} < {min_elements} weights"
            if reason:
                quantized.append(
                    QuantizedWeight(
                        op=op_name,
                        tensor=name,
                        shape=tuple(int(d) for d in tensor.shape),
                        float32_bytes=weights.nbytes,
                        int8_bytes=weights.nbytes,
                        max_abs_error=0.0,
                        int8=False,
                        reason=reason,
                    )
                )
                continue
            values, scale, error = _int8_symmetric(weights, axis)
            if uses[tensor.buffer] > 1:  # a constant shared with another tensor: keep it
                model.buffers.append(tflite_schema.BufferT())
                tensor.buffer, buffer = len(model.buffers) - 1, model.buffers[-1]
            buffer.data = np.frombuffer(values.tobytes(), np.uint8)
            tensor.type = tflite_schema.TensorType.INT8
            tensor.quantization = tflite_schema.QuantizationParametersT()
            tensor.quantization.scale = scale.tolist()
            tensor.quantization.zeroPoint = [0] * scale.size
            tensor.quantization.quantizedDimension = 0 if axis is None else axis
            versions[op.opcodeIndex] = max(versions.get(op.opcodeIndex, code.version), version)
            quantized.append(
                QuantizedWeight(
                    op=op_name,
                    tensor=name,
                    shape=tuple(int(d) for d in tensor.shape),
                    float32_bytes=weights.nbytes,
                    int8_bytes=values.nbytes,
                    max_abs_error=error,
                )
            )
    if not any(weight.int8 for weight in quantized):
        return flatbuffer, quantized
    # An op code is shared by all ops of its type; a type is either all hybrid here or
    # (weights computed at run time) float, which the higher version still runs.
    for index, version in versions.items():
        model.operatorCodes[index].version = version
    builder = _AlignedBuilder(len(flatbuffer))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), quantized


def format_quantized(quantized: Sequence[QuantizedWeight]) -> str:
    """What `quantize_weights` did, in a few lines for a terminal."""
    stored = [weight for weight in quantized if weight.int8]
    kept = [weight for weight in quantized if not weight.int8]
    lines = []
    if stored:
        before = sum(weight.float32_bytes for weight in stored)
        after = sum(weight.int8_bytes for weight in stored)
        ops = collections.Counter(weight.op for weight in stored)
        worst = max(stored, key=lambda weight: weight.max_abs_error)
        lines.append(
            f"int8 weights: {len(stored)} tensors ("
            + ", ".join(f"{op} x{count}" for op, count in ops.most_common())
            + f"), {before} -> {after} bytes; largest |weight error| "
            f"{worst.max_abs_error:.3g} ({worst.tensor})"
        )
    else:
        lines.append("int8 weights: no float32 conv or dense weights quantized")
    if kept:
        lines.append(
            f"kept float32: {len(kept)} tensors, {sum(w.float32_bytes for w in kept)} bytes ("
            + "; ".join(f"{w.tensor}: {w.reason}" for w in kept[:4])
            + ("; ..." if len(kept) > 4 else "")
            + ")"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- host latency
KERNELS = ("indirect_bgemm", "optimized", "reference")


@dataclasses.dataclass
class Latency:
    """Latency of one model, from the host interpreter or a device, in milliseconds.

    `median_ms` is None for `lce_benchmark_model`, which prints no median.
    `cpu_median_ms` / `cpu_min_ms` (host only) are the process CPU time of the same
    runs: with one thread they equal the latency of an undisturbed run, and unlike wall
    time they hardly move when other jobs share the cores.
    """

    model: str
    where: str
    num_threads: int
    kernel: str
    runs: int
    mean_ms: float
    median_ms: float | None
    min_ms: float
    max_ms: float
    cpu_median_ms: float | None = None
    cpu_min_ms: float | None = None

    def row(self) -> str:
        """One row of `LATENCY_HEADER`'s table."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}"

        return (
            f"| {self.model} | {self.where} | {self.num_threads} | {self.kernel} | {self.runs} "
            f"| {ms(self.median_ms)} | {self.mean_ms:.3f} | {self.min_ms:.3f} "
            f"| {self.max_ms:.3f} | {ms(self.cpu_median_ms)} | {ms(self.cpu_min_ms)} |"
        )


LATENCY_HEADER = (
    "| model | where | threads | kernel | runs | median ms | mean ms | min ms | max ms "
    "| CPU median ms | CPU min ms |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def make_interpreter(
    flatbuffer: bytes,
    *,
    num_threads: int = 1,
    kernel: str = "indirect_bgemm",
    xnnpack=False,
    source: str = "the model",
) -> Any:
    """LCE's Python interpreter with a named binary-conv kernel.

    On x86 `"indirect_bgemm"` is the fast one (LCE's default `"optimized"` path is
    tuned for ARM); `"reference"` is the slow, simple one. The flatbuffer is checked
    first (`el_larq.safety.validate_flatbuffer`): TFLite trusts its input, and a
    truncated or corrupt file would crash the process instead of raising.

    # Arguments
        flatbuffer: The bytes of a `.tflite` model.
        num_threads: Interpreter threads.
        kernel: Binary conv kernel, one of `KERNELS`.
        xnnpack: Run float ops through TFLite's XNNPACK delegate.
        source: Where the bytes came from (a file name), for error messages.

    # Raises
        DeploymentError: an unknown kernel, an invalid flatbuffer, or one the
            interpreter refuses (one line).

    # Example
        ```python
        interpreter = make_interpreter(flatbuffer, num_threads=1)
        ```
    """
    if kernel not in KERNELS:
        raise DeploymentError(f"unknown kernel '{kernel}'; valid kernels: {', '.join(KERNELS)}")
    validate_flatbuffer(flatbuffer, source)
    # TFLite prints its reasons on file descriptor 2 and raises a generic error: keep
    # them for the one-line message. One run on zeros finds what only Invoke checks
    # (unsupported types of a valid file), here instead of mid-benchmark.
    try:
        with _captured_stderr() as lines:
            interpreter = lce.testing.Interpreter(
                flatbuffer,
                num_threads=num_threads,
                use_reference_bconv=kernel == "reference",
                use_indirect_bgemm=kernel == "indirect_bgemm",
                use_xnnpack=xnnpack,
            )
            zeros = [
                np.zeros(shape, dtype)
                for shape, dtype in zip(
                    interpreter.input_shapes, interpreter.input_types, strict=True
                )
            ]
            interpreter.predict(zeros[0] if len(zeros) == 1 else zeros)
    except (RuntimeError, ValueError) as error:
        errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR")]
        reason = "; ".join(errors[:2]) or " ".join(str(error).split()) or type(error).__name__
        raise DeploymentError(f"LCE's interpreter cannot run {source}: {reason}") from None
    return interpreter


def _timed_runs(interpreter: Any, x: np.ndarray, runs: int) -> list[tuple[float, float]]:
    """`(wall ms, process CPU ms)` of each run."""
    times = []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        interpreter.predict(x)
        times.append(((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3))
    return times


def _latency(name, times, num_threads, kernel) -> Latency:
    wall, cpu = [t for t, _ in times], [c for _, c in times]
    return Latency(
        model=name,
        where=f"host {platform.machine()} (LCE Python interpreter)",
        num_threads=num_threads,
        kernel=kernel,
        runs=len(times),
        mean_ms=statistics.fmean(wall),
        median_ms=statistics.median(wall),
        min_ms=min(wall),
        max_ms=max(wall),
        cpu_median_ms=statistics.median(cpu),
        cpu_min_ms=min(cpu),
    )


def host_latency(
    flatbuffers: dict[str, bytes],
    *,
    num_runs: int = 50,
    warmup_runs: int = 5,
    num_threads: int = 1,
    kernel: str = "indirect_bgemm",
    xnnpack: bool = False,
    rounds: int = 5,
) -> dict[str, Latency]:
    """Latency of one or more `.tflite` models on this host, interleaved for fairness.

    Every model is warmed up, then the `num_runs` timed runs are split into `rounds`
    rounds that alternate between the models, so that a slow period of a shared machine
    hits all of them alike; the CPU time of every run is recorded too (see `Latency`).
    This is a relative measure on x86: LCE's ARM kernels only run on the device (see
    `device_commands`).

    # Arguments
        flatbuffers: `{name: .tflite bytes}`.
        num_runs: Timed runs per model.
        warmup_runs: Untimed runs per model first.
        num_threads: Interpreter threads.
        kernel: Binary conv kernel, one of `KERNELS`.
        xnnpack: Run float ops through TFLite's XNNPACK delegate.
        rounds: Number of interleaved rounds.

    # Returns
        `{name: Latency}`.

    # Example
        ```python
        result = host_latency({"el": open("el.tflite", "rb").read()}, num_runs=20)
        print(result["el"].median_ms)
        ```
    """
    if num_runs < 1 or warmup_runs < 0 or num_threads < 1:
        raise DeploymentError("num_runs and num_threads must be >= 1, warmup_runs >= 0")
    interpreters, inputs, times = {}, {}, {}
    for name, flatbuffer in flatbuffers.items():
        interpreters[name] = make_interpreter(
            flatbuffer, num_threads=num_threads, kernel=kernel, xnnpack=xnnpack, source=name
        )
        shape = interpreters[name].input_shapes[0]
        inputs[name] = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
        _timed_runs(interpreters[name], inputs[name], warmup_runs)
        times[name] = []
    rounds = max(1, min(rounds, num_runs))
    for r in range(rounds):
        per_round = num_runs // rounds + (1 if r < num_runs % rounds else 0)
        for name in flatbuffers:
            times[name] += _timed_runs(interpreters[name], inputs[name], per_round)
    return {name: _latency(name, times[name], num_threads, kernel) for name in flatbuffers}


# ---------------------------------------------------------------- device benchmark
DEVICE_MODES = ("local", "adb", "ssh")


def device_commands(
    graph: str,
    *,
    mode: str = "local",
    binary: str = "lce_benchmark_model",
    num_threads: int = 1,
    num_runs: int = 50,
    host: str | None = None,
    serial: str | None = None,
    remote_dir: str = "/data/local/tmp",
    extra_flags: Sequence[str] = (),
) -> list[list[str]]:
    """The commands that run LCE's `lce_benchmark_model` on a model, on or via a device.

    * `local`: run the binary here (on the Raspberry Pi / ARM board itself).
    * `adb`: push binary and model to an Android device and run them there.
    * `ssh`: copy binary and model to a Pi (`host`, e.g. `pi@raspberrypi.local`) and run
      them there.

    Nothing a user typed can become an option or shell code: local paths are made
    absolute (never starting with `-`), `--` ends ssh's and scp's options, hosts must
    be plain `[user@]host`, the remote directory must be absolute and made of
    characters every shell and scp mode take literally, the remote file names are the
    local ones with any other character replaced by `_`, and the remote commands are
    `shlex`-quoted (adb and ssh hand them to the device's shell).

    # Arguments
        graph: Path of the `.tflite` model here.
        mode: One of `DEVICE_MODES`.
        binary: Path of `lce_benchmark_model` here (from an LCE release: aarch64, arm32
            or android_arm64).
        num_threads: `--num_threads` of the benchmark.
        num_runs: `--num_runs` of the benchmark.
        host: ssh destination (`ssh` mode).
        serial: adb device serial (`adb` mode, optional).
        remote_dir: Absolute directory on the device for binary and model.
        extra_flags: More `lce_benchmark_model` flags, e.g. `["--warmup_runs=5"]`.

    # Returns
        A list of argv lists, to be run in order; the last one prints the timings.

    # Raises
        DeploymentError: an unknown mode, or a host, serial or remote directory that
            could be read as an option or need shell quoting (one line).

    # Example
        ```python
        for argv in device_commands("m.tflite", mode="adb", binary="lce_benchmark_model"):
            subprocess.run(argv, check=True)
        ```
    """
    if mode not in DEVICE_MODES:
        raise DeploymentError(
            f"unknown device mode '{mode}'; valid modes: {', '.join(DEVICE_MODES)}"
        )
    flags = [f"--num_threads={num_threads}", f"--num_runs={num_runs}", *extra_flags]
    if mode == "local":
        # A relative name without '/' is looked up on PATH; anything else runs as given,
        # made absolute so that it cannot start with '-'.
        on_path = "/" not in binary and not binary.startswith("-")
        local_binary = binary if on_path else os.path.abspath(binary)
        return [[local_binary, f"--graph={os.path.abspath(graph)}", *flags]]
    remote_dir = safety.check_remote_dir(remote_dir)
    base = remote_dir.rstrip("/")
    remote_binary = f"{base}/{safety.remote_name(binary)}"
    remote_graph = f"{base}/{safety.remote_name(graph)}"
    if remote_binary == remote_graph:
        raise DeploymentError(
            f"the binary and the model would both be {remote_graph} on the device; rename one"
        )
    # Absolute local paths: adb has no `--`, and no operand may look like an option.
    local_binary, local_graph = os.path.abspath(binary), os.path.abspath(graph)
    # adb shell and ssh hand the command to the device's shell: quote every word.
    remote_run = shlex.join([remote_binary, f"--graph={remote_graph}", *flags])
    chmod = shlex.join(["chmod", "+x", remote_binary])
    if mode == "adb":
        if serial is not None and not re.fullmatch(r"[A-Za-z0-9._:][A-Za-z0-9._:-]*", serial):
            raise DeploymentError(f"--serial {serial!r} is not an adb device serial")
        adb = ["adb", *(["-s", serial] if serial else [])]
        return [
            [*adb, "push", local_binary, remote_binary],
            [*adb, "shell", chmod],
            [*adb, "push", local_graph, remote_graph],
            [*adb, "shell", remote_run],
        ]
    host = safety.check_ssh_host(host)
    return [
        ["ssh", "--", host, shlex.join(["mkdir", "-p", remote_dir])],
        # One file per scp with its full remote path: the remote name is ours, and the
        # checked remote path reads the same in scp's legacy (shell) and SFTP modes.
        ["scp", "--", local_binary, f"{host}:{remote_binary}"],
        ["scp", "--", local_graph, f"{host}:{remote_graph}"],
        ["ssh", "--", host, f"{chmod} && {remote_run}"],
    ]


_TIMINGS = re.compile(
    r"Inference timings in us: Init: (?P<init>[\d.e+]+), First inference: (?P<first>[\d.e+]+), "
    r"Warmup \(avg\): (?P<warmup>[\d.e+]+), Inference \(avg\): (?P<avg>[\d.e+]+)"
)
_STATS = re.compile(
    r"count=(?P<count>\d+) first=(?P<first>[\d.e+]+) curr=(?P<curr>[\d.e+]+) "
    r"min=(?P<min>[\d.e+]+) max=(?P<max>[\d.e+]+) avg=(?P<avg>[\d.e+]+) std=(?P<std>[\d.e+]+)"
)


def parse_benchmark_output(text: str) -> dict[str, float]:
    """Parse the output of (LCE's) TFLite `benchmark_model`.

    It reads the summary line `Inference timings in us: Init: ..., First inference: ...,
    Warmup (avg): ..., Inference (avg): ...` and the last `count=... min=... max=...
    avg=... std=...` line (the timed runs; the one before is the warm-up).

    # Arguments
        text: The tool's combined stdout and stderr.

    # Returns
        `{"init_us", "first_us", "warmup_avg_us", "avg_us", "count", "min_us", "max_us",
        "std_us"}` (the last four only when the stats line is there).

    # Raises
        DeploymentError: no timings in `text` (the last lines are quoted).

    # Example
        ```python
        timings = parse_benchmark_output(subprocess.run(argv, capture_output=True,
                                                        text=True).stdout)
        ```
    """
    found = _TIMINGS.search(text)
    if not found:
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise DeploymentError(f"no 'Inference timings in us' line in the benchmark output: {tail}")
    result = {
        "init_us": float(found["init"]),
        "first_us": float(found["first"]),
        "warmup_avg_us": float(found["warmup"]),
        "avg_us": float(found["avg"]),
    }
    stats = list(_STATS.finditer(text))
    if stats:
        last = stats[-1]
        result.update(
            count=int(last["count"]),
            min_us=float(last["min"]),
            max_us=float(last["max"]),
            std_us=float(last["std"]),
        )
    return result


def device_latency(
    name: str, timings: dict[str, float], *, where: str, num_threads: int
) -> Latency:
    """`parse_benchmark_output`'s timings as a `Latency` row (no median: not printed).

    # Example
        ```python
        row = device_latency("el", parse_benchmark_output(text), where="adb", num_threads=1)
        ```
    """
    avg = timings["avg_us"] / 1e3
    return Latency(
        model=name,
        where=where,
        num_threads=num_threads,
        kernel="lce_benchmark_model",
        runs=int(timings.get("count", 0)),
        mean_ms=avg,
        median_ms=None,
        min_ms=timings.get("min_us", timings["avg_us"]) / 1e3,
        max_ms=timings.get("max_us", timings["avg_us"]) / 1e3,
    )


def run_device_benchmark(
    commands: list[list[str]], runner: Callable[..., Any] | None = None
) -> dict[str, float]:
    """Run `device_commands`' output in order and parse the last command's output.

    # Arguments
        commands: From `device_commands`.
        runner: `subprocess.run`-like callable (tests pass a fake device here).

    # Raises
        DeploymentError: a command is missing or fails (its output is quoted).
    """
    import subprocess

    runner = runner or subprocess.run
    output = ""
    for argv in commands:
        try:
            result = runner(argv, capture_output=True, text=True)
        except FileNotFoundError:
            raise DeploymentError(f"'{argv[0]}' not found; is it installed and on PATH?") from None
        output = (result.stdout or "") + (result.stderr or "")
        if result.returncode != 0:
            tail = " | ".join(output.strip().splitlines()[-3:])
            raise DeploymentError(f"`{shlex.join(argv)}` failed ({result.returncode}): {tail}")
    return parse_benchmark_output(output)
