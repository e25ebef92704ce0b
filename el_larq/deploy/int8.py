"""int8 weights for the float layers LCE keeps (stem, shortcuts, classifier).

TFLite's dynamic-range ("hybrid") kernels, written into an LCE flatbuffer after
conversion; `int8_sensitivity` measures what each layer's int8 weights cost.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import BUILTIN_NAMES, AlignedBuilder, decoded_name
from el_larq.deploy.loading import load_model

__all__ = [
    "INT8_MIN_ELEMENTS",
    "QuantizedWeight",
    "format_quantized",
    "int8_sensitivity",
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

    @property
    def label(self) -> str:
        """The layer when known, else the tensor: for reports."""
        return self.layer or self.tensor


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
            op_name = BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode))
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
            name = decoded_name(tensor.name)
            reason = ""
            if only is not None:
                reason = "" if name in only else "not selected"
            elif keep_input_layers and op.inputs[0] in graph.inputs:
                reason = "reads the model input"
            elif weights.size < min_elements:
                reason = f"{weights.size} < {min_elements} weights"
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
            )
            quantized.append(record)
            if reason:
                continue
            values, scale, error = _int8_symmetric(weights, axis)
            record.int8, record.int8_bytes, record.max_abs_error = True, values.nbytes, error
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
    if not any(weight.int8 for weight in quantized):
        return flatbuffer, quantized
    # An op code is shared by all ops of its type; a type is either all hybrid here or
    # (weights computed at run time) float, which the higher version still runs.
    for index, version in versions.items():
        model.operatorCodes[index].version = version
    builder = AlignedBuilder(len(flatbuffer))
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


def int8_sensitivity(
    model_path: str | os.PathLike,
    dataset: str,
    *,
    data_dir: str | None = None,
    max_examples: int | None = None,
    num_threads: int = 1,
    kernel: str = "indirect_bgemm",
    xnnpack: bool | None = None,
) -> list[dict[str, Any]]:
    """Labelled top-1 of a model with each float layer's weights alone stored as int8.

    Converts the Keras model once, then evaluates on the dataset's evaluation split:
    Keras, the float32 flatbuffer, the flatbuffer with every candidate weight tensor as
    int8, with `quantize_weights`' default choice, and with each candidate alone. It is
    how the defaults of `quantize_weights` were chosen (docs/deployment.md, 1.1).

    # Arguments
        model_path: A trained Keras model file.
        dataset: Dataset name (e.g. `fashion_mnist`).
        data_dir: Dataset directory.
        max_examples: Evaluate on the first `max_examples` images only.
        num_threads: Interpreter threads.
        kernel: LCE binary-conv kernel (`el_larq.deploy.host.KERNELS`).
        xnnpack: Float ops through XNNPACK (None: `el_larq.deploy.host.DEFAULT_XNNPACK`).

    # Returns
        Rows `{"variant", "int8_tensors", "bytes", "top1", "top5"}`, Keras first.

    # Example
        ```python
        for row in int8_sensitivity("runs/a/model.h5", "fashion_mnist"):
            print(row["variant"], row["top1"])
        ```
    """
    from el_larq import training

    model = load_model(model_path)
    flatbuffer, _ = convert(model)
    _, candidates = quantize_weights(flatbuffer, min_elements=0, keep_input_layers=False)
    variants = {"float32 flatbuffer": flatbuffer}
    variants["all float layers int8"] = quantize_weights(
        flatbuffer, min_elements=0, keep_input_layers=False
    )[0]
    default, chosen = quantize_weights(flatbuffer)
    variants[f"default ({sum(w.int8 for w in chosen)} tensors int8)"] = default
    for weight in candidates:
        label = f"only {weight.label} {'x'.join(map(str, weight.shape))} int8"
        variants[label] = quantize_weights(flatbuffer, only={weight.tensor})[0]

    def evaluate(path: str) -> dict[str, Any]:
        return training.evaluate_model(
            path,
            dataset,
            data_dir=data_dir,
            max_examples=max_examples,
            num_threads=num_threads,
            kernel=kernel,
            xnnpack=xnnpack,
        )

    keras = evaluate(os.fspath(model_path))
    rows = [{"variant": "Keras", "int8_tensors": 0, "bytes": None, **_scores(keras)}]
    with tempfile.TemporaryDirectory() as folder:
        for label, variant in variants.items():
            path = os.path.join(folder, "variant.tflite")
            Path(path).write_bytes(variant)
            _, weights = quantize_weights(variant, min_elements=0, keep_input_layers=False)
            rows.append(
                {
                    "variant": label,
                    "int8_tensors": len(candidates) - len(weights),
                    "bytes": len(variant),
                    **_scores(evaluate(path)),
                }
            )
    return rows


def _scores(result: dict[str, Any]) -> dict[str, Any]:
    return {"top1": result["top1"], "top5": result["top5"], "examples": result["examples"]}
