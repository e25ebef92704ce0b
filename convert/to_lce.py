"""Convert a trained Keras model to a Larq Compute Engine flatbuffer you can trust.

    python convert/to_lce.py model.h5 [-o model.tflite] [--target=arm|xcore] [--strict]
        [--int8_weights] [--no-verify] [--samples=16] [--dataset=fashion_mnist]
        [--json=report.json]

Loads the model (`.h5`, `.keras` or SavedModel) with el_larq's layers, converts it with
LCE, lists its ops and checks that every binarized conv became an `LceBconv2d`
(`--strict`: a float fallback is an error), optionally stores the float layers' weights
as int8 (`--int8_weights`), runs the same inputs through Keras and
LCE's interpreter, and only then writes the `.tflite` (atomically). Exit status 0: written;
1: refused, with a one-line reason. See docs/deployment.md.
"""

import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet TensorFlow's C++ logging
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from absl import app, flags  # noqa: E402

from el_larq import lce  # noqa: E402  (el_larq before TensorFlow: selects Keras 2)

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "output", None, "Output .tflite path (default: the model path with .tflite).", short_name="o"
)
flags.DEFINE_enum("target", "arm", ["arm", "xcore"], "LCE conversion target.")
flags.DEFINE_bool("strict", False, "Fail when a binarized conv fell back to a float op.")
flags.DEFINE_bool(
    "int8_weights",
    False,
    "Store the weights of the float convs and dense layers (stem, downsample shortcuts, "
    "classifier) as int8 (TFLite hybrid kernels); verification then checks the result.",
)
flags.DEFINE_integer(
    "int8_min_elements",
    lce.INT8_MIN_ELEMENTS,
    "With --int8_weights: weight tensors with fewer values stay float32 (0: quantize all).",
    lower_bound=0,
)
flags.DEFINE_bool(
    "int8_keep_input_layers",
    True,
    "With --int8_weights: keep float32 the layers that read the model input (the stem).",
)
flags.DEFINE_bool("verify", True, "Compare Keras and the LCE interpreter (--no-verify skips).")
flags.DEFINE_integer("samples", 16, "Number of inputs for the verification.", lower_bound=1)
flags.DEFINE_string(
    "dataset",
    None,
    "Verify on real images of this dataset "
    "(e.g. fashion_mnist); default: random inputs in [-1, 1].",
)
flags.DEFINE_string("data_dir", None, "Dataset directory for --dataset.")
flags.DEFINE_float(
    "rtol",
    None,
    "Verification: mean |keras - lce| must be <= rtol * max |keras output| "
    f"(default {lce.DEFAULT_RTOL}, with --int8_weights {lce.DEFAULT_RTOL_INT8}).",
)
flags.DEFINE_float(
    "min_top1",
    None,
    f"Verification: smallest allowed top-1 agreement (classifiers; default "
    f"{lce.DEFAULT_MIN_TOP1}, with --int8_weights {lce.DEFAULT_MIN_TOP1_INT8}).",
)
flags.DEFINE_float(
    "max_top1_drop",
    lce.DEFAULT_MAX_TOP1_DROP,
    "Verification with --dataset: the flatbuffer's labelled top-1 may be at most this much "
    "(a fraction) below Keras's.",
    lower_bound=0,
)
flags.DEFINE_bool(
    "allow_unsafe", False, "Load models with Lambda layers (they run code stored in the file)."
)
flags.DEFINE_string("json", None, "Also write the full report as JSON to this path.")


def _warn(message: str) -> None:
    print(f"to_lce: warning: {message}", file=sys.stderr)


def _default_output(model_path: Path) -> Path:
    if model_path.is_dir():  # a SavedModel: write beside it
        return model_path.parent / f"{model_path.name}.tflite"
    return model_path.with_suffix(".tflite")


def _calibrated_copy(model, inputs):
    """A copy of `model` whose BatchNorms hold the statistics of `inputs`, as training
    would give them: at their initial statistics an untrained BNN's activations cancel to
    ~0, where Keras and LCE take signs by coin toss, so comparing them tests nothing."""
    import tensorflow as tf  # after el_larq (Keras 2)

    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    norms = [
        layer
        for layer in lce.walk_layers(copy)
        if isinstance(layer, tf.keras.layers.BatchNormalization)
    ]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0  # moving statistics := this batch's statistics
    copy(inputs, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    return copy


# The ops that say what a layer became. A BatchNorm's statistics can add or remove a
# bias ADD (zero shift: folded away), so elementwise ops are not compared.
_LAYER_OPS = (
    "LceBconv2d",
    "LceQuantize",
    "LceDequantize",
    "LceBMaxPool2d",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "TRANSPOSE_CONV",
)


def _layer_ops(flatbuffer: bytes) -> list[str]:
    return [op for op in lce.flatbuffer_ops(flatbuffer) if op in _LAYER_OPS]


def _quantize(flatbuffer: bytes) -> tuple[bytes, list]:
    return lce.quantize_weights(
        flatbuffer,
        min_elements=FLAGS.int8_min_elements,
        keep_input_layers=FLAGS.int8_keep_input_layers,
    )


def _verify(model, flatbuffer, result):
    labels = None
    if FLAGS.dataset:
        inputs, labels = lce.dataset_examples(
            model, FLAGS.dataset, FLAGS.samples, data_dir=FLAGS.data_dir
        )
    else:
        inputs = lce.random_inputs(model, FLAGS.samples)
    int8 = FLAGS.int8_weights
    rtol, min_top1 = FLAGS.rtol, FLAGS.min_top1
    if rtol is None:
        rtol = lce.DEFAULT_RTOL_INT8 if int8 else lce.DEFAULT_RTOL
    if min_top1 is None:
        min_top1 = lce.DEFAULT_MIN_TOP1_INT8 if int8 else lce.DEFAULT_MIN_TOP1
    untrained = lce.untrained_batchnorms(model)
    checked, checked_flatbuffer, note = model, flatbuffer, ""
    if untrained:
        # Verify the same architecture with meaningful statistics instead: a broken
        # conversion still disagrees there, coin tosses no longer do.
        checked = _calibrated_copy(model, inputs)
        checked_flatbuffer, _ = lce.convert(checked, target=FLAGS.target)
        if int8:
            checked_flatbuffer, _ = _quantize(checked_flatbuffer)
        if _layer_ops(checked_flatbuffer) != _layer_ops(flatbuffer):
            raise lce.DeploymentError(
                "the model's BatchNorms are untrained and a copy with calibrated statistics "
                "converts to other convs; cannot verify it: train it or pass --no-verify"
            )
        note = " (on a copy with calibrated BatchNorm statistics)"
        _warn(
            f"{len(untrained)} BatchNorm layer(s) still have their initial statistics "
            f"(e.g. {untrained[0]}): the model is untrained, so Keras and LCE would disagree "
            "by sign coin tosses. Verifying a copy whose BatchNorms hold the statistics of "
            "the verification inputs instead; it has the same convs as the written flatbuffer"
        )
    check = lce.verify(
        checked,
        checked_flatbuffer,
        inputs,
        rtol=rtol,
        min_top1=min_top1,
        labels=labels,
        max_top1_drop=FLAGS.max_top1_drop,
    )
    dataset = f" (dataset {FLAGS.dataset})" if FLAGS.dataset else ""
    print(check.summary() + dataset + note)
    result["verification"] = {
        **vars(check),
        "passed": check.passed,
        "calibrated_copy": bool(untrained),
    }
    if not check.passed:
        raise lce.DeploymentError(f"Keras and LCE disagree{note}: {check.summary()}")


def convert(model_path: Path) -> int:
    output = Path(FLAGS.output) if FLAGS.output else _default_output(model_path)
    # Before anything is read or written: no output may replace the model or another output.
    lce.safety.check_outputs([model_path], {"-o": output, "--json": FLAGS.json})
    lce.check_writable(output)
    if FLAGS.json:
        lce.check_writable(FLAGS.json)
    model = lce.load_model(model_path, allow_unsafe=FLAGS.allow_unsafe)
    flatbuffer, messages = lce.convert(model, target=FLAGS.target)
    quantized = []
    if FLAGS.int8_weights:
        flatbuffer, quantized = _quantize(flatbuffer)
        print(lce.format_quantized(quantized))

    report = lce.census(model, flatbuffer, messages)
    print(lce.format_census(report))
    if not report.has_binary:
        _warn("the model has no binarized layer: nothing for LCE to accelerate")
    if report.fallback:
        names = ", ".join(f"{name} ({op})" for name, op in report.fallback)
        if FLAGS.strict:
            raise lce.DeploymentError(f"binarized conv(s) not accelerated by LCE: {names}")
        _warn(f"binarized conv(s) not accelerated by LCE, they run as float: {names}")

    result = {"census": report.to_json(), "size": lce.size_report(model, flatbuffer)}
    if FLAGS.int8_weights:
        result["int8_weights"] = [dataclasses.asdict(weight) for weight in quantized]
    if FLAGS.verify:
        _verify(model, flatbuffer, result)

    written = lce.write_atomic(output, flatbuffer)
    size = result["size"]
    print(f"wrote {output} ({written} bytes, {written / 1024:.1f} KiB)")
    print(
        f"size: flatbuffer {size['flatbuffer_bytes']} bytes vs float32 weights "
        f"{size['float32_bytes']} bytes ({size['ratio']:.1f}x smaller)"
    )
    if FLAGS.json:
        result["output"] = str(output)
        lce.write_atomic(FLAGS.json, (lce.json_dumps(result) + "\n").encode())
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise app.UsageError("expected one model path: to_lce.py model.h5 [-o out.tflite]")
    try:
        return convert(Path(argv[1]))
    except lce.DeploymentError as error:
        print(f"to_lce: error: {error}", file=sys.stderr)
        return 1


def _parse(argv: list[str]) -> list[str]:
    # Accept the common spelling --no-verify besides absl's --noverify.
    argv = ["--noverify" if arg in ("--no-verify", "--no_verify") else arg for arg in argv]
    return flags.FLAGS(argv)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
