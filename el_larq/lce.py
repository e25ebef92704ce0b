"""Compatibility module: Larq Compute Engine deployment now lives in `el_larq.deploy`.

`from el_larq import lce` and `lce.<name>` keep working for every public name this
module had; new code imports from the module that does the job:

| job | module |
| --- | --- |
| load a Keras model (safety rules: `el_larq.safety`) | `el_larq.deploy.loading` |
| convert with LCE | `el_larq.deploy.conversion` |
| op names, op counts, weight bytes, sizes | `el_larq.deploy.flatbuffer` |
| how LCE treats each Keras layer | `el_larq.deploy.kinds` |
| op census | `el_larq.deploy.census` |
| verification inputs and Keras vs LCE | `el_larq.deploy.verification` |
| int8 weights | `el_larq.deploy.int8` |
| host latency, interpreter | `el_larq.deploy.host` |
| device benchmark | `el_larq.deploy.device` |
| per-op profile | `el_larq.deploy.profile` |
| the whole `to_lce` pipeline | `el_larq.deploy.pipeline` |
| atomic writes, JSON | `el_larq.io` |
"""

from el_larq import safety  # noqa: F401  (`lce.safety` is used by scripts)
from el_larq.deploy.census import Census, census, format_census
from el_larq.deploy.conversion import convert
from el_larq.deploy.device import (
    DEVICE_MODES,
    device_commands,
    device_latency,
    parse_benchmark_output,
    run_device_benchmark,
)
from el_larq.deploy.flatbuffer import flatbuffer_ops, op_counts, size_report, weight_bytes
from el_larq.deploy.host import (
    DEFAULT_KERNEL,
    DEFAULT_XNNPACK,
    KERNELS,
    LATENCY_HEADER,
    Latency,
    host_latency,
    make_interpreter,
)
from el_larq.deploy.int8 import (
    INT8_MIN_ELEMENTS,
    QuantizedWeight,
    format_quantized,
    int8_sensitivity,
    quantize_weights,
)
from el_larq.deploy.kinds import layer_kind, walk_layers
from el_larq.deploy.loading import load_model
from el_larq.deploy.verification import (
    DEFAULT_MAX_TOP1_DROP,
    DEFAULT_MIN_TOP1,
    DEFAULT_MIN_TOP1_INT8,
    DEFAULT_RTOL,
    DEFAULT_RTOL_INT8,
    Verification,
    dataset_examples,
    dataset_inputs,
    random_inputs,
    untrained_batchnorms,
    verify,
)
from el_larq.io import check_writable, json_dumps, write_atomic
from el_larq.safety import DeploymentError, read_model_config

__all__ = [
    "Census",
    "DEFAULT_KERNEL",
    "DEFAULT_MAX_TOP1_DROP",
    "DEFAULT_MIN_TOP1",
    "DEFAULT_MIN_TOP1_INT8",
    "DEFAULT_RTOL",
    "DEFAULT_RTOL_INT8",
    "DEFAULT_XNNPACK",
    "DEVICE_MODES",
    "DeploymentError",
    "INT8_MIN_ELEMENTS",
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
    "int8_sensitivity",
    "json_dumps",
    "layer_kind",
    "load_model",
    "make_interpreter",
    "op_counts",
    "parse_benchmark_output",
    "quantize_weights",
    "random_inputs",
    "read_model_config",
    "run_device_benchmark",
    "size_report",
    "untrained_batchnorms",
    "verify",
    "walk_layers",
    "weight_bytes",
    "write_atomic",
]
