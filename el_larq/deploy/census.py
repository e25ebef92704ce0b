"""The op census: which Keras layer became which flatbuffer op.

Binarized standard convs must be `LceBconv2d`; float fallbacks are named.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import larq as lq
import tensorflow as tf
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.flatbuffer import op_counts, op_name
from el_larq.deploy.kinds import layer_kind, walk_layers

__all__ = ["Census", "census", "format_census"]

# Ops that a conv becomes (binary or float); the rest of the graph is not a conv.
_CONV_OPS = ("LceBconv2d", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
# Ops the converter puts between a layer's input and its conv: their tensor names still
# name that layer (e.g. `model/grouped/PadV2` before a fallen-back binary conv).
_GLUE_OPS = ("PAD", "PADV2", "LceQuantize", "LceDequantize")
# TFLite keeps at most this many characters of a tensor name.
_NAME_LIMIT = 50


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
        if j is None or depth > 4 or op_name(model, graph.Operators(j)) not in _GLUE_OPS:
            return set()
        op = graph.Operators(j)
        names = _name_tokens(tensor_name(tensor))
        if op_name(model, op) != "LceQuantize":  # its input belongs to the layer before
            names |= glue_names(op.Inputs(0), depth + 1)
        return names

    ops = []
    for j in range(graph.OperatorsLength()):
        op = graph.Operators(j)
        name = op_name(model, op)
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
