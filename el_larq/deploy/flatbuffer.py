"""Reading and writing TFLite flatbuffers: op names, op counts, weight bytes, sizes.

Needs no TFLite runtime: LCE ships the flatbuffer schema bindings.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import flatbuffers
from larq_compute_engine.mlir.python import tflite_schema

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "AlignedBuilder",
    "BUILTIN_NAMES",
    "decoded_name",
    "flatbuffer_ops",
    "is_constant",
    "op_counts",
    "op_name",
    "op_type",
    "pack",
    "size_report",
    "weight_bytes",
]

# TFLite builtin operator code -> name (`CONV_2D`, `ADD`, ...).
BUILTIN_NAMES = {
    code: name
    for name, code in vars(tflite_schema.BuiltinOperator).items()
    if not name.startswith("_")
}


def decoded_name(value: Any) -> str:
    """A name from the object API (`tflite_schema.ModelT`): bytes, a string or None.

    # Example
        ```python
        decoded_name(graph.tensors[op.outputs[0]].name)  # "el_resnet50/stem_bn/FusedBatchNormV3"
        ```
    """
    return value.decode() if isinstance(value, bytes) else str(value or "")


def op_type(model: Any, op: Any) -> str:
    """The name of operator `op` of an object-API flatbuffer (`tflite_schema.ModelT`).

    # Arguments
        model: `tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(...))`.
        op: One of its operators (`model.subgraphs[0].operators[i]`).

    # Returns
        The builtin name (`CONV_2D`), the custom code (`LceBconv2d`), or `?`.

    # Example
        ```python
        print(op_type(model, model.subgraphs[0].operators[0]))
        ```
    """
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return decoded_name(code.customCode)
    return BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")


def is_constant(model: Any, tensor: Any) -> bool:
    """Whether `tensor` of an object-API flatbuffer holds data (a weight), not a value
    computed at run time.

    # Arguments
        model: `tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(...))`.
        tensor: One of its tensors (`model.subgraphs[0].tensors[i]`).

    # Returns
        True when the tensor's buffer has bytes.

    # Example
        ```python
        graph = model.subgraphs[0]
        weights = [t for t in graph.tensors if is_constant(model, t)]
        ```
    """
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0


def op_name(model: Any, op: Any) -> str:
    """The name of operator `op` of a flatbuffer `model` (`tflite_schema.Model` API).

    # Arguments
        model: `tflite_schema.Model.GetRootAsModel(flatbuffer, 0)`.
        op: One of its operators.

    # Returns
        The builtin name (`CONV_2D`) or the custom code (`LceBconv2d`).

    # Example
        ```python
        model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
        print(op_name(model, model.Subgraphs(0).Operators(0)))
        ```
    """
    code = model.OperatorCodes(op.OpcodeIndex())
    custom = code.CustomCode()
    if custom:
        return custom.decode()
    # Codes above 127 live only in BuiltinCode; older files only in the deprecated field.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    return BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")


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
    return [op_name(model, subgraph.Operators(j)) for j in range(subgraph.OperatorsLength())]


def op_counts(flatbuffer: bytes) -> collections.Counter:
    """`collections.Counter` of `flatbuffer_ops(flatbuffer)`."""
    return collections.Counter(flatbuffer_ops(flatbuffer))


def weight_bytes(flatbuffer: bytes) -> collections.Counter:
    """Bytes of constant tensors (weights, biases, ...) by the op type that reads them.

    Shows where a flatbuffer's size goes: bit-packed binary kernels in `LceBconv2d`
    against float32 kernels in `CONV_2D` / `FULLY_CONNECTED`. A constant read by
    several ops counts once, for the first; int8 weights behind a `DEQUANTIZE` count
    for the op that reads the dequantized tensor.

    # Example
        ```python
        print(weight_bytes(flatbuffer).most_common(3))
        ```
    """
    model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)
    ops = [graph.Operators(j) for j in range(graph.OperatorsLength())]

    def constant_size(tensor: int) -> int:
        return model.Buffers(graph.Tensors(tensor).Buffer()).DataLength()

    # int8 weights of a float op (`el_larq.deploy.int8`): a DEQUANTIZE of a constant
    # feeds the op; its bytes count for the op that reads them.
    dequantized = {
        op.Outputs(0): op.Inputs(0)
        for op in ops
        if op_name(model, op) == "DEQUANTIZE" and constant_size(op.Inputs(0))
    }
    counts: collections.Counter = collections.Counter()
    seen = set()
    for op in ops:
        if op_name(model, op) == "DEQUANTIZE" and op.Outputs(0) in dequantized:
            continue
        for k in range(op.InputsLength()):
            tensor = dequantized.get(op.Inputs(k), op.Inputs(k))
            if tensor < 0 or tensor in seen:
                continue
            size = constant_size(tensor)
            if size:
                seen.add(tensor)
                counts[op_name(model, op)] += size
    return counts


class AlignedBuilder(flatbuffers.Builder):
    """A `flatbuffers.Builder` that aligns byte vectors (tensor buffers) to 16 bytes.

    TFLite's own writer lays buffers out that way and kernels may rely on it; use it to
    write a changed `tflite_schema.ModelT` back to bytes.

    # Example
        ```python
        builder = AlignedBuilder(len(flatbuffer))
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        new = bytes(builder.Output())
        ```
    """

    def StartVector(self, elemSize: int, numElems: int, alignment: int) -> int:  # noqa: N802,N803
        return super().StartVector(elemSize, numElems, 16 if elemSize == 1 else alignment)


def pack(model: Any, size_hint: int = 1 << 20) -> bytes:
    """A changed object-API flatbuffer (`tflite_schema.ModelT`) back to `.tflite` bytes.

    # Arguments
        model: The model to write.
        size_hint: Initial buffer size (it grows as needed).

    # Example
        ```python
        model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(fb, 0))
        model.description = b"changed"
        fb = pack(model, len(fb))
        ```
    """
    builder = AlignedBuilder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


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
