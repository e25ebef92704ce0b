"""Larq Compute Engine helpers: conversion, op census, verification.

Reading a flatbuffer's ops needs no TFLite runtime: LCE ships the schema bindings.
"""

from __future__ import annotations

import collections

from larq_compute_engine.mlir.python import tflite_schema

__all__ = ["flatbuffer_ops", "op_counts"]

_BUILTIN_NAMES = {
    code: name
    for name, code in vars(tflite_schema.BuiltinOperator).items()
    if not name.startswith("_")
}


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
    ops = []
    for j in range(subgraph.OperatorsLength()):
        code = model.OperatorCodes(subgraph.Operators(j).OpcodeIndex())
        custom = code.CustomCode()
        if custom:
            ops.append(custom.decode())
        else:
            # Codes above 127 live only in BuiltinCode; older files only in the deprecated field.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            ops.append(_BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    return ops


def op_counts(flatbuffer: bytes) -> collections.Counter:
    """`collections.Counter` of `flatbuffer_ops(flatbuffer)`."""
    return collections.Counter(flatbuffer_ops(flatbuffer))
