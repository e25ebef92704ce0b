"""LCE's converter on one traced inference function, with its own error lines captured."""

from __future__ import annotations

import re
import tempfile

import larq_compute_engine as lce
import tensorflow as tf

from el_larq.deploy.rewrites import traced_for_deployment
from el_larq.io import captured_stderr
from el_larq.safety import DeploymentError

__all__ = ["convert"]


def _convert_traced(model: tf.keras.Model, target: str) -> bytes:
    """`lce.convert_keras_model`, minus its Keras SavedModel export, on the model as
    traced for deployment (`el_larq.deploy.rewrites`).

    `convert_keras_model` saves the model with `model.save(save_format="tf")`, which
    traces every layer's call functions for revival: minutes for a ResNet50. The
    converter needs only one inference function, so that is all we save (about 3x
    faster on EL-ResNet50); the conversion itself is LCE's `convert_saved_model`.
    """
    with traced_for_deployment(model):
        if len(model.inputs) != 1:
            return lce.convert_keras_model(model, target=target)
        return _convert_saved_model(model, target)


def _convert_saved_model(model: tf.keras.Model, target: str) -> bytes:
    spec = tf.TensorSpec((None, *model.input_shape[1:]), model.inputs[0].dtype)
    serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    module = tf.Module()
    module.model_variables = model.variables  # tracked, so the SavedModel holds them
    # Without the gradient functions of `tf.custom_gradient` ops (every larq quantizer
    # has one): the converter never reads them, and tracing them took ~20 % of export +
    # conversion on EL-ResNet26/50. Same flatbuffer bytes (checked on five zoo models).
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    with tempfile.TemporaryDirectory() as saved_model_dir:
        tf.saved_model.save(
            module, saved_model_dir, signatures=serve.get_concrete_function(), options=options
        )
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
    with captured_stderr() as lines:
        flatbuffer = _convert_traced(model, target)
    messages = []
    for line in lines:
        found = re.search(r"\b(error|warning): (.*)$", line)
        if found and f"{found.group(1)}: {found.group(2)}" not in messages:
            messages.append(f"{found.group(1)}: {found.group(2).strip()}")
    return flatbuffer, messages
