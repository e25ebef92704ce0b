"""Validating `.tflite` flatbuffers before an interpreter or a device reads them.

TFLite's interpreter trusts its input: a truncated or hostile file makes it read past
the end of the buffer and crash the process. `validate_flatbuffer` walks every table,
vector and string the interpreter reads (with its own bounds-checked `_Table` reader),
checks indices, constant sizes and the options of LCE's custom ops, and then decodes
the whole model a second time with the schema's object API; `read_flatbuffer` reads a
file and validates it. Failures are one-line `DeploymentError`s naming the file.
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path
from typing import Any

from el_larq.safety import DeploymentError

__all__ = ["LCE_CUSTOM_OPS", "read_flatbuffer", "validate_flatbuffer"]

# The ops LCE's interpreter registers besides TFLite's builtins.
LCE_CUSTOM_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")
_IDENTIFIER = b"TFL3"
_SCHEMA_VERSION = 3
# Bytes per element of the fixed-size tensor types (TensorType values).
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8,
               15: 4, 16: 2}  # fmt: skip
# A tensor larger than this is a corrupt shape, not a model for this tool.
_MAX_TENSOR_BYTES = 1 << 31
# The integer options of LCE's ops (flexbuffer maps): name -> smallest valid value.
_LCE_OPTIONS = {
    "LceBconv2d": {
        "channels_in": 1,
        "dilation_height_factor": 1,
        "dilation_width_factor": 1,
        "stride_height": 1,
        "stride_width": 1,
        "padding": 0,
        "pad_values": 0,
        "fused_activation_function": 0,
    },
    "LceBMaxPool2d": {
        "filter_height": 1,
        "filter_width": 1,
        "stride_height": 1,
        "stride_width": 1,
        "padding": 0,
    },
}


class _Invalid(Exception):
    """Raised inside the walk; turned into one DeploymentError line."""


class _Table:
    """A flatbuffer table whose vtable and object lie inside the buffer."""

    def __init__(self, buf: bytes, pos: int, what: str):
        self.buf, self.pos, self.what = buf, pos, what
        size = len(buf)
        if not 0 <= pos <= size - 4:
            raise _Invalid(f"{what} starts outside the file")
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        if not 0 <= vtable <= size - 4:
            raise _Invalid(f"{what} has its field table outside the file")
        self.vtable_size, self.object_size = struct.unpack_from("<HH", buf, vtable)
        if self.vtable_size < 4 or self.vtable_size % 2 or vtable + self.vtable_size > size:
            raise _Invalid(f"{what} has a corrupt field table")
        if self.object_size < 4 or pos + self.object_size > size:
            raise _Invalid(f"{what} extends past the end of the file")
        self.vtable = vtable

    def _field(self, slot: int, width: int) -> int | None:
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return None
        offset = struct.unpack_from("<H", self.buf, self.vtable + entry)[0]
        if not offset:
            return None
        if offset + width > self.object_size:
            raise _Invalid(f"{self.what} has field {slot} outside the table")
        return self.pos + offset

    def check_fields(self) -> None:
        """Every field of a table whose layout we do not walk lies inside the table."""
        for slot in range((self.vtable_size - 4) // 2):
            self._field(slot, 1)

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        at = self._field(slot, struct.calcsize(fmt))
        return default if at is None else struct.unpack_from("<" + fmt, self.buf, at)[0]

    def _target(self, slot: int, what: str) -> int | None:
        at = self._field(slot, 4)
        if at is None:
            return None
        target = at + struct.unpack_from("<I", self.buf, at)[0]
        if target > len(self.buf) - 4:
            raise _Invalid(f"{self.what}'s {what} points past the end of the file")
        return target

    def table(self, slot: int, what: str) -> _Table | None:
        target = self._target(slot, what)
        return None if target is None else _Table(self.buf, target, f"{self.what}'s {what}")

    def vector(self, slot: int, width: int, what: str) -> tuple[int, int] | None:
        """(start, length) of a vector field, checked to lie inside the file."""
        target = self._target(slot, what)
        if target is None:
            return None
        length = struct.unpack_from("<I", self.buf, target)[0]
        if target + 4 + length * width > len(self.buf):
            raise _Invalid(f"{self.what}'s {what} ({length} entries) runs past the end of the file")
        return target + 4, length

    def ints(self, slot: int, what: str, fmt: str = "i") -> list[int]:
        found = self.vector(slot, struct.calcsize(fmt), what)
        if found is None:
            return []
        start, length = found
        return list(struct.unpack_from(f"<{length}{fmt}", self.buf, start))

    def string(self, slot: int, what: str) -> bytes | None:
        found = self.vector(slot, 1, what)
        if found is None:
            return None
        start, length = found
        if start + length >= len(self.buf) or self.buf[start + length] != 0:
            raise _Invalid(f"{self.what}'s {what} is not a terminated string")
        return self.buf[start : start + length]

    def tables(self, slot: int, what: str) -> list[_Table]:
        found = self.vector(slot, 4, what)
        if found is None:
            return []
        start, length = found
        result = []
        for i in range(length):
            at = start + 4 * i
            target = at + struct.unpack_from("<I", self.buf, at)[0]
            result.append(_Table(self.buf, target, f"{what}[{i}]"))
        return result


@functools.lru_cache(maxsize=1)
def _tensor_types() -> frozenset[int]:
    from larq_compute_engine.mlir.python import tflite_schema

    return frozenset(
        code for name, code in vars(tflite_schema.TensorType).items() if not name.startswith("_")
    )


@functools.lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    from larq_compute_engine.mlir.python import tflite_schema

    return {
        code: name
        for name, code in vars(tflite_schema.BuiltinOperator).items()
        if not name.startswith("_")
    }


def _decode_options(kind: int, table: _Table, second: bool) -> Any:
    """The object-API form of an op's options; reads every vector it holds (each read
    raises, in Python, when it would leave the buffer)."""
    from flatbuffers.table import Table
    from larq_compute_engine.mlir.python import tflite_schema

    table.check_fields()
    creator = (
        tflite_schema.BuiltinOptions2Creator if second else tflite_schema.BuiltinOptionsCreator
    )
    try:
        return creator(kind, Table(table.buf, table.pos))
    except (struct.error, IndexError, ValueError, TypeError) as error:
        raise _Invalid(f"{table.what} are corrupt ({type(error).__name__})") from None


def _check_subgraph_refs(options: Any, subgraphs: int, what: str) -> None:
    # Control-flow ops (IF, WHILE, CALL_ONCE, ...) name other subgraphs by index.
    for key, value in getattr(options, "__dict__", {}).items():
        if "subgraph" in key.lower() and isinstance(value, int) and not 0 <= value < subgraphs:
            raise _Invalid(f"{what} refers to subgraph {value} of {subgraphs}")


def _check_lce_options(name: str, op: _Table, what: str) -> None:
    from flatbuffers import flexbuffers

    wanted = _LCE_OPTIONS.get(name)
    if wanted is None:
        return
    found = op.vector(5, 1, "custom options")
    if found is None:
        raise _Invalid(f"{what} ({name}) has no options")
    start, length = found
    try:
        options = flexbuffers.Loads(bytearray(op.buf[start : start + length]))
    except Exception as error:  # flexbuffers raises whatever its reads raise
        raise _Invalid(f"{what} ({name}) has corrupt options ({type(error).__name__})") from None
    if not isinstance(options, dict):
        raise _Invalid(f"{what} ({name}) options are not a map")
    for key, smallest in wanted.items():
        value = options.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not smallest <= value < 1 << 16:
            raise _Invalid(f"{what} ({name}) has option {key}={value!r}")


def _walk(buf: bytes) -> list[str]:
    """Check every structure the interpreter reads; return the main subgraph's op names."""
    builtin_names = _builtin_names()
    custom_code = next(code for code, name in builtin_names.items() if name == "CUSTOM")
    root = struct.unpack_from("<I", buf, 0)[0]
    model = _Table(buf, root, "model")
    version = model.scalar(0, "I")
    if version != _SCHEMA_VERSION:
        raise _Invalid(f"schema version {version}, expected {_SCHEMA_VERSION}")

    op_names, unknown = [], []
    for code in model.tables(1, "operator codes"):
        builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))
        custom = code.string(1, "custom code")
        if builtin == custom_code:
            name = (custom or b"").decode(errors="replace")
            if name not in LCE_CUSTOM_OPS:
                unknown.append(f"custom op {name!r}")
        else:
            name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
            if builtin not in builtin_names:
                unknown.append(f"builtin op code {builtin}")
        op_names.append(name)
    if unknown:
        raise _Invalid(
            f"it uses ops this interpreter does not know: {', '.join(unknown)} (it runs TFLite "
            f"builtins and {', '.join(LCE_CUSTOM_OPS)})"
        )

    buffer_sizes = []
    for i, buffer in enumerate(model.tables(4, "buffers")):
        data = buffer.vector(0, 1, "data")
        offset, size = buffer.scalar(1, "Q"), buffer.scalar(2, "Q")
        if offset > 1 and offset + size > len(buf):
            raise _Invalid(f"buffers[{i}] ({size} bytes at {offset}) lies past the end of the file")
        buffer_sizes.append(size if offset > 1 else (data[1] if data else 0))

    subgraphs = model.tables(2, "subgraphs")
    if not subgraphs:
        raise _Invalid("it has no subgraph")
    tensor_counts = []
    model.string(3, "description")
    for s, graph in enumerate(subgraphs):
        graph.string(4, f"subgraphs[{s}].name")
        tensors = graph.tables(0, f"subgraphs[{s}].tensors")
        tensor_counts.append(len(tensors))
        for t, tensor in enumerate(tensors):
            _check_tensor(tensor, f"subgraphs[{s}].tensors[{t}]", buffer_sizes)
        for io in (1, 2):
            for index in graph.ints(io, "inputs/outputs"):
                if not 0 <= index < len(tensors):
                    raise _Invalid(
                        f"subgraphs[{s}] has input/output tensor {index} of {len(tensors)}"
                    )
        for j, op in enumerate(graph.tables(3, f"subgraphs[{s}].operators")):
            what = f"subgraphs[{s}].operators[{j}]"
            opcode = op.scalar(0, "I")
            if opcode >= len(op_names):
                raise _Invalid(f"{what} has op code index {opcode} of {len(op_names)}")
            for slot in (1, 2, 8):  # inputs, outputs, intermediates; -1: optional, absent
                for index in op.ints(slot, "tensor indices"):
                    if not -1 <= index < len(tensors):
                        raise _Invalid(f"{what} refers to tensor {index} of {len(tensors)}")
            op.vector(7, 1, "mutating variable inputs")
            if op.scalar(6, "b") != 0:
                raise _Invalid(f"{what} has custom options in an unknown format")
            large_offset, large_size = op.scalar(9, "Q"), op.scalar(10, "Q")
            if large_offset > 1 and large_offset + large_size > len(buf):
                raise _Invalid(f"{what}'s custom options lie past the end of the file")
            for type_slot, table_slot, second in ((3, 4, False), (11, 12, True)):
                options = op.table(table_slot, "options")
                if options is not None:
                    decoded = _decode_options(op.scalar(type_slot, "B"), options, second)
                    _check_subgraph_refs(decoded, len(subgraphs), what)
            _check_lce_options(op_names[opcode], op, what)

    for index in model.ints(5, "metadata buffer indices"):
        if not 0 <= index < len(buffer_sizes):
            raise _Invalid(f"metadata refers to buffer {index} of {len(buffer_sizes)}")
    for i, entry in enumerate(model.tables(6, "metadata")):
        entry.string(0, "name")
        if entry.scalar(1, "I") >= len(buffer_sizes):
            raise _Invalid(f"metadata[{i}] refers to a missing buffer")
    for i, signature in enumerate(model.tables(7, "signature defs")):
        s = signature.scalar(4, "I")
        if s >= len(subgraphs):
            raise _Invalid(f"signature_defs[{i}] refers to subgraph {s} of {len(subgraphs)}")
        signature.string(2, "signature key")
        for slot in (0, 1):
            for tensor_map in signature.tables(slot, f"signature_defs[{i}] tensors"):
                tensor_map.string(0, "name")
                if tensor_map.scalar(1, "I") >= tensor_counts[s]:
                    raise _Invalid(f"signature_defs[{i}] refers to a missing tensor")

    # A second, independent reading: the schema's object API decodes every field it
    # knows, each read bounds-checked by Python, so a field the walk above skips cannot
    # point outside the file either.
    from larq_compute_engine.mlir.python import tflite_schema

    try:
        tflite_schema.ModelT.InitFromPackedBuf(buf, 0)
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise _Invalid(f"a field lies outside the file ({type(error).__name__})") from None
    main = subgraphs[0]
    return [op_names[op.scalar(0, "I")] for op in main.tables(3, "operators")]


def _check_tensor(tensor: _Table, what: str, buffer_sizes: list[int]) -> None:
    shape = tensor.ints(0, "shape")
    if any(not 0 <= dim < 1 << 31 for dim in shape):
        raise _Invalid(f"{what} has shape {shape}")
    signature = tensor.ints(7, "shape signature")
    if any(dim < -1 for dim in signature):
        raise _Invalid(f"{what} has shape signature {signature}")
    kind = tensor.scalar(1, "b")
    if kind not in _tensor_types():
        raise _Invalid(f"{what} has unknown type {kind}")
    buffer = tensor.scalar(2, "I")
    if buffer >= len(buffer_sizes):
        raise _Invalid(f"{what} refers to buffer {buffer} of {len(buffer_sizes)}")
    tensor.string(3, "name")
    elements = 1
    for dim in shape:
        elements *= dim
    width = _TYPE_BYTES.get(kind)
    if width is not None:
        if elements * width > _MAX_TENSOR_BYTES:
            raise _Invalid(f"{what} would need {elements * width} bytes (shape {shape})")
        if buffer_sizes[buffer] and buffer_sizes[buffer] != elements * width:
            raise _Invalid(
                f"{what} has {buffer_sizes[buffer]} bytes of data for shape {shape} "
                f"({elements * width} bytes)"
            )
    quantization = tensor.table(4, "quantization")
    if quantization is not None:
        scales = quantization.vector(2, 4, "scales")
        zero_points = quantization.vector(3, 8, "zero points")
        quantization.vector(0, 4, "min")
        quantization.vector(1, 4, "max")
        n_scales = scales[1] if scales else 0
        n_zero = zero_points[1] if zero_points else 0
        if n_scales and n_zero and n_scales != n_zero:
            raise _Invalid(f"{what} has {n_scales} scales but {n_zero} zero points")
        axis = quantization.scalar(6, "i")
        if n_scales > 1 and not (0 <= axis < len(shape) and shape[axis] == n_scales):
            raise _Invalid(f"{what} has {n_scales} scales along axis {axis} of shape {shape}")
        details = quantization.table(5, "quantization details")
        if details is not None:
            details.check_fields()
            details.vector(0, 1, "custom quantization")
    if tensor.table(6, "sparsity") is not None:
        raise _Invalid(f"{what} is a sparse tensor, which this tool does not support")
    for k, variant in enumerate(tensor.tables(9, "variant tensors")):
        variant.ints(0, f"variant_tensors[{k}].shape")


def validate_flatbuffer(flatbuffer: bytes, source: str = "the model") -> list[str]:
    """Check a TFLite flatbuffer before an interpreter sees it.

    TFLite's interpreter trusts its input: a truncated file makes it read past the end
    and crash the process. This walks every table, vector and string the interpreter
    reads and checks that it lies inside the file; that tensor, buffer, op code and
    subgraph indices are in range; that constant data matches its tensor's shape; and
    that every op is one LCE's interpreter knows (TFLite builtins and `LCE_CUSTOM_OPS`,
    whose options are checked too).

    # Arguments
        flatbuffer: The bytes of a `.tflite` file.
        source: What they came from, for the message.

    # Returns
        The op names of the main subgraph, in order.

    # Raises
        DeploymentError: one line saying what is wrong.

    # Example
        ```python
        ops = validate_flatbuffer(Path("m.tflite").read_bytes(), "m.tflite")
        ```
    """
    prefix = f"{source} is not a valid TFLite flatbuffer"
    if not isinstance(flatbuffer, (bytes, bytearray, memoryview)):
        raise DeploymentError(f"{prefix}: expected bytes, got {type(flatbuffer).__name__}")
    buf = bytes(flatbuffer)
    if not buf:
        raise DeploymentError(f"{prefix}: it is empty")
    if len(buf) < 8 or buf[4:8] != _IDENTIFIER:
        raise DeploymentError(f"{prefix}: no 'TFL3' identifier (not a .tflite file?)")
    try:
        return _walk(buf)
    except _Invalid as error:
        raise DeploymentError(f"{prefix} (corrupt or truncated?): {error}") from None
    except struct.error as error:  # a read the walk did not guard: still not a crash
        raise DeploymentError(f"{prefix} (corrupt or truncated?): {error}") from None


def read_flatbuffer(path: str | os.PathLike) -> bytes:
    """Read and validate a `.tflite` file.

    # Returns
        Its bytes, checked by `validate_flatbuffer`.

    # Raises
        DeploymentError: missing, not a regular file, unreadable or invalid.

    # Example
        ```python
        interpreter = make_interpreter(read_flatbuffer("m.tflite"))  # el_larq.deploy.host
        ```
    """
    path = Path(path)
    if not path.exists():
        raise DeploymentError(f"{path}: no such file")
    if not path.is_file():
        raise DeploymentError(f"{path} is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DeploymentError(f"cannot read {path}: {error.strerror}") from None
    validate_flatbuffer(data, str(path))
    return data
