"""Convert a trained Keras model to a Larq Compute Engine flatbuffer you can trust.

    el-larq convert model.h5 [-o model.tflite] [--target=arm|xcore] [--strict]
        [--int8_weights [--int8_mode=dequantize|hybrid] [--int8_max_binary_after=6]]
        [--no-verify] [--samples=16] [--dataset=fashion_mnist] [--json=report.json]

(also `python -m el_larq convert ...` and, in a checkout, `python convert/to_lce.py ...`)

Loads the model (`.h5`, `.keras` or SavedModel) with el_larq's layers, converts it with
LCE, lists its ops and checks that every binarized conv became an `LceBconv2d`
(`--strict`: a float fallback is an error), optionally stores the float layers' weights
as int8 (`--int8_weights`), runs the same inputs through Keras and
LCE's interpreter, and only then writes the `.tflite` (atomically). Exit status 0: written;
1: refused, with a one-line reason. See docs/deployment.md.
"""

import sys
from pathlib import Path

from absl import flags

from el_larq.cli import flag_groups, flags_parser, run_tool  # (el_larq first: Keras 2)
from el_larq.deploy import census, int8, pipeline, verification
from el_larq.safety import DeploymentError

# The name in messages: `to_lce` (the script), `el-larq convert` (the command).
PROG = "to_lce"

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "output", None, "Output .tflite path (default: the model path with .tflite).", short_name="o"
)
flags.DEFINE_enum("target", "arm", ["arm", "xcore"], "LCE conversion target.")
flags.DEFINE_bool("strict", False, "Fail when a binarized conv fell back to a float op.")
flags.DEFINE_bool(
    "int8_weights",
    False,
    "Store the weights of the float convs and dense layers (downsample shortcuts, "
    "classifier) as int8; verification then checks the result.",
)
flag_groups.define_int8_mode_flag()
flags.DEFINE_integer(
    "int8_min_elements",
    int8.INT8_MIN_ELEMENTS,
    "With --int8_weights: weight tensors with fewer values stay float32 (0: quantize all).",
    lower_bound=0,
)
flags.DEFINE_bool(
    "int8_keep_input_layers",
    True,
    "With --int8_weights: keep float32 the layers that read the model input (the stem).",
)
flags.DEFINE_integer(
    "int8_max_binary_after",
    int8.INT8_MAX_BINARY_AFTER,
    "With --int8_weights: layers followed by more binary convs stay float32 (their signs "
    "amplify the rounding; -1: no limit).",
    lower_bound=-1,
)
flags.DEFINE_bool("verify", True, "Compare Keras and the LCE interpreter (--no-verify skips).")
flags.DEFINE_integer("samples", 16, "Number of inputs for the verification.", lower_bound=1)
flag_groups.define_dataset_flags(
    None,
    "Verify on real images of this dataset (e.g. fashion_mnist); default: random inputs in "
    "[-1, 1].",
)
flags.DEFINE_float(
    "rtol",
    None,
    "Verification: mean |keras - lce| must be <= rtol * max |keras output| "
    f"(default {verification.DEFAULT_RTOL}, with --int8_weights {verification.DEFAULT_RTOL_INT8}).",
)
flags.DEFINE_float(
    "min_top1",
    None,
    f"Verification: smallest allowed top-1 agreement (classifiers; default "
    f"{verification.DEFAULT_MIN_TOP1}, with --int8_weights {verification.DEFAULT_MIN_TOP1_INT8}).",
)
flags.DEFINE_float(
    "max_top1_drop",
    verification.DEFAULT_MAX_TOP1_DROP,
    "Verification with --dataset: the flatbuffer's labelled top-1 may be at most this much "
    "(a fraction) below Keras's.",
    lower_bound=0,
)
flags.DEFINE_bool(
    "allow_unsafe", False, "Load models with Lambda layers (they run code stored in the file)."
)
flag_groups.define_json_flag("Also write the full report as JSON to this path.")


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _print(report: pipeline.ConversionReport) -> None:
    """Everything the pipeline found, in the order it found it."""
    if report.int8_weights and report.census is not None:
        print(int8.format_quantized(report.quantized))
    if report.census is not None:
        print(census.format_census(report.census))
    for warning in report.warnings:
        _warn(warning)
    if report.verification is not None:
        dataset = f" (dataset {report.dataset})" if report.dataset else ""
        note = " (on a copy with calibrated BatchNorm statistics)"
        print(report.verification.summary() + dataset + (note if report.calibrated_copy else ""))
    if report.written is not None:
        size = report.size
        print(f"wrote {report.output} ({report.written} bytes, {report.written / 1024:.1f} KiB)")
        print(
            f"size: flatbuffer {size['flatbuffer_bytes']} bytes vs float32 weights "
            f"{size['float32_bytes']} bytes ({size['ratio']:.1f}x smaller)"
        )


def convert(model_path: Path) -> int:
    try:
        report = pipeline.convert_model_file(
            model_path,
            FLAGS.output,
            target=FLAGS.target,
            strict=FLAGS.strict,
            int8_weights=FLAGS.int8_weights,
            int8_mode=FLAGS.int8_mode,
            int8_min_elements=FLAGS.int8_min_elements,
            int8_keep_input_layers=FLAGS.int8_keep_input_layers,
            int8_max_binary_after=(
                None if FLAGS.int8_max_binary_after < 0 else FLAGS.int8_max_binary_after
            ),
            verify_model=FLAGS.verify,
            samples=FLAGS.samples,
            dataset=FLAGS.dataset,
            data_dir=FLAGS.data_dir,
            rtol=FLAGS.rtol,
            min_top1=FLAGS.min_top1,
            max_top1_drop=FLAGS.max_top1_drop,
            allow_unsafe=FLAGS.allow_unsafe,
            json_path=FLAGS.json,
            progress=True,
        )
    except pipeline.ConversionFailed as failure:
        _print(failure.report)
        raise
    _print(report)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.exit(f"{PROG}: error: expected one model path: {PROG} model.h5 [-o out.tflite]")
    try:
        return convert(Path(argv[1]))
    except DeploymentError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def _parse(argv: list[str]) -> list[str]:
    # Accept the common spelling --no-verify besides absl's --noverify.
    argv = ["--noverify" if arg in ("--no-verify", "--no_verify") else arg for arg in argv]
    return flags_parser(PROG)(argv)


def run(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Run the tool on `argv` (default `sys.argv`) and exit with its status.

    # Arguments
        argv: The command line, program name first.
        prog: The name in messages.

    # Example
        ```python
        run(["el-larq convert", "model.h5", "--int8_weights"], prog="el-larq convert")
        ```
    """
    run_tool(__name__, main, argv, prog, _parse)


if __name__ == "__main__":
    run()
