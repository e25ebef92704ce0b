"""int8 weights for the float layers LCE keeps (stem, shortcuts, classifier).

int8 storage (a `DEQUANTIZE` run once at load) or TFLite's dynamic-range ("hybrid")
kernels, written into an LCE flatbuffer after conversion;
`el_larq.deploy.int8_sensitivity` measures what each layer's int8 weights cost.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.flatbuffer import decoded_name, is_constant, op_type, pack

__all__ = [
    "INT8_MAX_BINARY_AFTER",
    "INT8_MIN_ELEMENTS",
    "INT8_MODES",
    "QuantizedWeight",
    "binary_convs_after",
    "fold_dequantized_constants",
    "format_quantized",
    "quantize_weights",
]

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
    # The op's output tensor name, which carries the Keras layer name where the weight
    # tensor's own name does not (constants the converter folded: `arith.constant12`).
    layer: str = ""
    binary_after: int = 0  # how many binary convs the op's output reaches

    @property
    def label(self) -> str:
        """The layer when known, else the tensor: for reports."""
        return self.layer or self.tensor


# DEQUANTIZE's version for int8 input with per-channel scales (TFLite's op_version.cc).
_DEQUANTIZE_PER_CHANNEL_VERSION = 5

# How int8 weights run: "dequantize" stores them as int8 and a `DEQUANTIZE` op turns
# them back into float32 once, when the interpreter first runs (TFLite keeps a constant
# input's dequantized output), so the float kernels compute exactly as before on rounded
# weights; "hybrid" hands them to TFLite's hybrid kernels, which also quantize each
# activation to int8 on the fly: less memory at run time, more sign flips downstream.
INT8_MODES = ("dequantize", "hybrid")

# Float layers with more binary convs than this after them stay float32 by default:
# those convs' signs amplify the rounding (docs/deployment.md, 1.1).
INT8_MAX_BINARY_AFTER = 6

# Weight tensors smaller than this stay float32 by default: they save little, and in a
# BNN each float layer's rounding flips signs downstream (docs/deployment.md, 1.1).
INT8_MIN_ELEMENTS = 16384


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


def _layer_name(graph: Any, op: Any, op_name: str) -> str:
    """The Keras layer path in the op's output name: the model's output is named after
    the signature (`StatefulPartitionedCall:0`), so it is called that instead."""
    if op.outputs[0] in graph.outputs:
        return f"{op_name} of the model output"
    first = decoded_name(graph.tensors[op.outputs[0]].name).split(";")[0]
    return first if "/" in first else ""


def binary_convs_after(model: Any, graph: Any) -> list[int]:
    """For each operator of `graph`, how many `LceBconv2d` its output reaches.

    A measure of how far a change of that op's output is amplified: every binary conv
    downstream signs its input, and a value pushed across zero flips a bit.

    # Arguments
        model: An object-API flatbuffer (`tflite_schema.ModelT`).
        graph: One of its subgraphs.

    # Returns
        One count per operator, in the graph's (execution) order.

    # Example
        ```python
        counts = binary_convs_after(model, model.subgraphs[0])
        ```
    """
    consumers = collections.defaultdict(list)
    for k, op in enumerate(graph.operators):
        for tensor in op.inputs:
            consumers[tensor].append(k)
    # Bit k set: binary conv k is downstream. TFLite orders ops topologically.
    reach = [0] * len(graph.operators)
    for j in reversed(range(len(graph.operators))):
        for tensor in graph.operators[j].outputs:
            for k in consumers[tensor]:
                binary = op_type(model, graph.operators[k]) == "LceBconv2d"
                reach[j] |= reach[k] | (1 << k if binary else 0)
    return [bin(bits).count("1") for bits in reach]


def fold_dequantized_constants(model: Any) -> int:
    """Replace each `DEQUANTIZE` of a constant by the float32 constant it computes.

    What TFLite's interpreter does at its first run (it keeps such an op's output), done
    in the flatbuffer: so that tools timing one op at a time (`el_larq.deploy.profile`)
    see the float op with constant weights that really runs, and no per-run DEQUANTIZE.

    # Arguments
        model: An object-API flatbuffer (`tflite_schema.ModelT`), changed in place.

    # Returns
        How many ops were folded.

    # Example
        ```python
        model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(fb, 0))
        fold_dequantized_constants(model)
        ```
    """
    folded = 0
    for graph in model.subgraphs:
        kept = []
        for op in graph.operators:
            source = graph.tensors[op.inputs[0]] if len(op.inputs) else None
            data = None if source is None else model.buffers[source.buffer].data
            if op_type(model, op) != "DEQUANTIZE" or data is None or len(data) == 0:
                kept.append(op)
                continue
            if source.type != tflite_schema.TensorType.INT8:
                kept.append(op)  # float16 and others: not written here, left as they are
                continue
            quantization = source.quantization
            shape = [1] * len(source.shape)
            scale = np.asarray(quantization.scale, np.float32)
            zero = np.asarray(quantization.zeroPoint, np.float32)
            if scale.size > 1:
                shape[quantization.quantizedDimension] = -1
            values = np.frombuffer(bytes(data), np.int8).reshape(source.shape)
            weights = (values - zero.reshape(shape)) * scale.reshape(shape)
            graph.tensors[op.outputs[0]].buffer = _add_buffer(
                model, weights.astype(np.float32).tobytes()
            )
            folded += 1
        graph.operators = kept
    return folded


def _opcode_index(model: Any, builtin: int) -> int:
    """The index of a builtin op's code in `model.operatorCodes`, added if missing."""
    for index, code in enumerate(model.operatorCodes):
        if not code.customCode and max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = tflite_schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def quantize_weights(
    flatbuffer: bytes,
    *,
    mode: str = "dequantize",
    min_elements: int = INT8_MIN_ELEMENTS,
    keep_input_layers: bool = True,
    max_binary_after: int | None = INT8_MAX_BINARY_AFTER,
    only: Collection[str] | None = None,
) -> tuple[bytes, list[QuantizedWeight]]:
    """Store the float32 weights of a flatbuffer's float convs and dense layers as int8.

    Applied to an LCE flatbuffer after conversion, because LCE's converter has no option
    for it: a `CONV_2D`, `DEPTHWISE_CONV_2D` or `FULLY_CONNECTED` whose weights are a
    float32 constant gets symmetric int8 weights, one scale per output channel.
    `LceBconv2d` kernels are already 1 bit. In a binary ResNet this shrinks what stays
    float on purpose (downsample shortcuts, classifier) about 4x, and with it most of
    the file. How the int8 weights run (`INT8_MODES`):

    * `"dequantize"` (default): a `DEQUANTIZE` op per tensor gives the unchanged float
      op its float32 weights back. TFLite dequantizes a constant once, when the
      interpreter first runs, so the float kernels and their speed stay as they were and
      only the weights' rounding (at most half a step of 1/127 of a channel's largest
      weight) reaches the signs. The file shrinks; memory at run time does not.
    * `"hybrid"`: TFLite's dynamic-range kernels (the op versions that select them):
      they also quantize each float input to int8 on the fly and multiply in int8, so
      the float weights never exist at run time, but the activations' rounding flips
      more signs downstream. Dense layers get one scale per tensor (per-channel hybrid
      dense layers are newer than the TFLite inside LCE 0.16); grouped convs stay float.

    What stays float32 by default, because in a BNN every sign after a layer amplifies
    its rounding: a layer whose output reaches more than `max_binary_after` binary convs
    (`binary_convs_after`), a layer that reads the model input (the stem: it feeds every
    sign of the network), and any weight tensor with fewer than `min_elements` values.
    Weights that are +-c per channel (a binary conv LCE kept float) are always stored
    as int8: it holds them exactly. Check the result with `verify` on labelled data
    (`el-larq convert --int8_weights --dataset ...`) and on a test set
    (`el-larq evaluate`); docs/deployment.md, 1.1, has the measurements.

    # Arguments
        flatbuffer: The bytes of a `.tflite` model (from `convert`).
        mode: How the int8 weights run, one of `INT8_MODES`.
        min_elements: Weight tensors with fewer values stay float32 (0: none).
        keep_input_layers: Keep float32 the layers that read the model input.
        max_binary_after: Keep float32 the layers followed by more binary convs
            (None: no limit).
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
    if mode not in INT8_MODES:
        raise ValueError(f"int8 mode must be one of {', '.join(INT8_MODES)}, not {mode!r}")
    model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(flatbuffer, 0))
    quantized, chosen = [], []
    for g, graph in enumerate(model.subgraphs):
        after = binary_convs_after(model, graph)
        for j, op in enumerate(graph.operators):
            op_name = op_type(model, op)
            spec = _HYBRID_OPS.get(op_name)
            if spec is None or len(op.inputs) <= spec[0] or op.inputs[spec[0]] < 0:
                continue
            tensor = graph.tensors[op.inputs[spec[0]]]
            buffer = model.buffers[tensor.buffer]
            float32 = tensor.type == tflite_schema.TensorType.FLOAT32
            if not float32 or not is_constant(model, tensor):
                continue  # not a float constant (already quantized, or computed)
            if any(c[0] == g and c[1].inputs[spec[0]] == op.inputs[spec[0]] for c in chosen):
                continue  # one weight tensor read by several ops: quantized once, serves all
            grouped = graph.tensors[op.inputs[0]].shape[-1] != tensor.shape[-1]
            if mode == "hybrid" and op_name == "CONV_2D" and grouped:
                continue  # TFLite has no hybrid grouped conv
            weights = np.frombuffer(bytes(buffer.data), np.float32).reshape(tensor.shape)
            name = decoded_name(tensor.name)
            # +-c per channel (a binary conv LCE kept float, BatchNorm folded in): int8
            # holds it exactly, wherever it is
            channels = np.moveaxis(np.abs(weights), 0 if spec[1] is None else spec[1], 0)
            exact = bool(np.all(np.ptp(channels.reshape(len(channels), -1), axis=1) == 0))
            reason = ""
            if only is not None:
                reason = "" if name in only else "not selected"
            elif exact:
                reason = ""  # quantized wherever it is: int8 holds it exactly
            elif keep_input_layers and op.inputs[0] in graph.inputs:
                reason = "reads the model input"
            elif weights.size < min_elements:
                reason = f"{weights.size} < {min_elements} weights"
            elif max_binary_after is not None and after[j] > max_binary_after:
                reason = f"{after[j]} binary convs after it > {max_binary_after}"
            record = QuantizedWeight(
                op=op_name,
                tensor=name,
                layer=_layer_name(graph, op, op_name),
                shape=tuple(int(d) for d in tensor.shape),
                float32_bytes=weights.nbytes,
                int8_bytes=weights.nbytes,
                max_abs_error=0.0,
                int8=False,
                reason=reason,
                binary_after=after[j],
            )
            quantized.append(record)
            if not reason:
                chosen.append((g, op, weights, record))
    if not chosen:
        return flatbuffer, quantized
    uses = collections.Counter(t.buffer for graph in model.subgraphs for t in graph.tensors)
    versions, dequantize_ops = {}, collections.defaultdict(list)
    for g, op, weights, record in chosen:
        graph = model.subgraphs[g]
        index, axis, version = _HYBRID_OPS[record.op]
        if mode == "dequantize" and axis is None:
            axis = 0  # DEQUANTIZE takes per-channel scales for any tensor
        values, scale, error = _int8_symmetric(weights, axis)
        record.int8, record.int8_bytes, record.max_abs_error = True, values.nbytes, error
        tensor = graph.tensors[op.inputs[index]]
        # The int8 values get a buffer of their own; the float32 one is emptied unless
        # another tensor still reads it.
        uses[tensor.buffer] -= 1
        if uses[tensor.buffer] == 0:
            model.buffers[tensor.buffer].data = None
        quantization = tflite_schema.QuantizationParametersT()
        quantization.scale = scale.tolist()
        quantization.zeroPoint = [0] * scale.size
        quantization.quantizedDimension = 0 if axis is None else axis
        int8_buffer = _add_buffer(model, values.tobytes())
        if mode == "hybrid":
            tensor.buffer, tensor.type = int8_buffer, tflite_schema.TensorType.INT8
            tensor.quantization = quantization
            code = model.operatorCodes[op.opcodeIndex]
            versions[op.opcodeIndex] = max(versions.get(op.opcodeIndex, code.version), version)
            continue
        # The float tensor becomes the output of a DEQUANTIZE of the int8 one, so every
        # op that reads it stays as it is.
        source = tflite_schema.TensorT()
        source.name = f"{record.tensor}_int8".encode()
        source.shape, source.type = list(tensor.shape), tflite_schema.TensorType.INT8
        source.buffer, source.quantization = int8_buffer, quantization
        graph.tensors.append(source)
        tensor.buffer = _add_buffer(model, None)  # empty: computed at run time
        dequantize = tflite_schema.OperatorT()
        dequantize.inputs, dequantize.outputs = [len(graph.tensors) - 1], [op.inputs[index]]
        dequantize_ops[g].append(dequantize)
    # An op code is shared by all ops of its type; a type is either all hybrid here or
    # (weights computed at run time) float, which the higher version still runs.
    for index, version in versions.items():
        model.operatorCodes[index].version = version
    if dequantize_ops:
        opcode = _opcode_index(model, tflite_schema.BuiltinOperator.DEQUANTIZE)
        code = model.operatorCodes[opcode]
        code.version = max(code.version, _DEQUANTIZE_PER_CHANNEL_VERSION)
        for g, ops in dequantize_ops.items():
            for dequantize in ops:
                dequantize.opcodeIndex = opcode
            # constants in, so they can run first; TFLite runs ops in this order
            model.subgraphs[g].operators[:0] = ops
    return pack(model, len(flatbuffer)), quantized


def _add_buffer(model: Any, data: bytes | None) -> int:
    """Append a buffer holding `data` (None: an empty one) and return its index."""
    buffer = tflite_schema.BufferT()
    if data is not None:
        buffer.data = np.frombuffer(data, np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1


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
            f"{worst.max_abs_error:.3g} ({worst.label})"
        )
    else:
        lines.append("int8 weights: no float32 conv or dense weights quantized")
    if kept:
        lines.append(
            f"kept float32: {len(kept)} tensors, {sum(w.float32_bytes for w in kept)} bytes ("
            + "; ".join(f"{w.label}: {w.reason}" for w in kept[:4])
            + ("; ..." if len(kept) > 4 else "")
            + ")"
        )
    return "\n".join(lines)
