"""Flatbuffer reading helpers on a real LCE flatbuffer (`helpers.mixed_model`)."""

import numpy as np
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.flatbuffer import is_constant, op_name, op_type, weight_bytes
from el_larq.deploy.int8 import quantize_weights


def _object_model(flatbuffer: bytes):
    return tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(flatbuffer, 0))


def test_is_constant_tells_weights_from_activations(mixed):
    _, flatbuffer, _ = mixed
    model = _object_model(flatbuffer)
    graph = model.subgraphs[0]
    # The model's input and output are computed at run time, never constants.
    for index in [*graph.inputs, *graph.outputs]:
        assert not is_constant(model, graph.tensors[index])
    # Every LceBconv2d reads its bit-packed filter as a constant (input 1), its
    # activations (input 0) are computed.
    bconvs = [op for op in graph.operators if op_type(model, op) == "LceBconv2d"]
    assert bconvs
    for op in bconvs:
        assert not is_constant(model, graph.tensors[op.inputs[0]])
        assert is_constant(model, graph.tensors[op.inputs[1]])
    # The classifier's weights hold exactly the Keras kernel's bytes.
    dense = [op for op in graph.operators if op_type(model, op) == "FULLY_CONNECTED"]
    kernel = graph.tensors[dense[0].inputs[1]]
    assert is_constant(model, kernel)
    assert len(model.buffers[kernel.buffer].data) == np.prod(kernel.shape) * 4


def test_op_type_agrees_with_op_name(mixed):
    _, flatbuffer, _ = mixed
    model = _object_model(flatbuffer)
    flat = tflite_schema.Model.GetRootAsModel(flatbuffer, 0).Subgraphs(0)
    names = [op_type(model, op) for op in model.subgraphs[0].operators]
    reader = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    assert names == [op_name(reader, flat.Operators(j)) for j in range(flat.OperatorsLength())]
    assert {"LceBconv2d", "LceQuantize", "FULLY_CONNECTED"} <= set(names)


def test_weight_bytes_counts_int8_for_the_reading_op(mixed):
    _, flatbuffer, _ = mixed
    float_bytes = weight_bytes(flatbuffer)
    int8, _ = quantize_weights(flatbuffer, min_elements=0, max_binary_after=None)
    int8_bytes = weight_bytes(int8)
    assert "DEQUANTIZE" not in int8_bytes
    assert int8_bytes["LceBconv2d"] == float_bytes["LceBconv2d"]
    # The classifier's 64x10 float kernel becomes 640 int8 bytes (+ per-channel scales
    # live in quantization parameters, not buffers); its bias stays float.
    assert int8_bytes["FULLY_CONNECTED"] == float_bytes["FULLY_CONNECTED"] - 3 * 640
