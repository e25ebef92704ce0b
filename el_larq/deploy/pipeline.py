"""The conversion pipeline of `convert/to_lce.py`: load, convert, int8, census, verify, write.

`convert_model_file` does every step and returns a `ConversionReport`; it prints
nothing, so a notebook, a script or the command line (`el_larq.cli.convert`) decide
what to show. A refusal raises `ConversionFailed`, which carries the report of the
steps done so far.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from el_larq import io
from el_larq.deploy.census import Census, census
from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import flatbuffer_ops, size_report
from el_larq.deploy.int8 import (
    INT8_MAX_BINARY_AFTER,
    INT8_MIN_ELEMENTS,
    QuantizedWeight,
    quantize_weights,
)
from el_larq.deploy.loading import load_model
from el_larq.deploy.verification import (
    AGREE_RTOL,
    DEFAULT_MAX_TOP1_DROP,
    DEFAULT_MIN_TOP1,
    DEFAULT_MIN_TOP1_INT8,
    DEFAULT_RTOL,
    DEFAULT_RTOL_INT8,
    Verification,
    calibrated_copy,
    dataset_examples,
    random_inputs,
    untrained_batchnorms,
    verify,
)
from el_larq.safety import DeploymentError

__all__ = ["ConversionFailed", "ConversionReport", "convert_model_file", "default_output"]

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


@dataclasses.dataclass
class ConversionReport:
    """What `convert_model_file` did, step by step (later steps None until done).

    # Attributes
        model_path: The Keras model that was read.
        output: The `.tflite` path.
        int8_weights: Whether float layers' weights were to be stored as int8.
        quantized: One `QuantizedWeight` per float32 weight tensor considered (int8).
        census: The op census of the written flatbuffer.
        size: `size_report` of the flatbuffer.
        warnings: Things the user should know that did not stop the conversion.
        verification: Keras against the LCE interpreter (None: not verified).
        dataset: The dataset the verification inputs came from (None: random).
        calibrated_copy: The verification ran on a copy with calibrated BatchNorm
            statistics (the model was untrained).
        written: Bytes written to `output` (None: nothing written).
        json_path: Where the JSON report went (None: nowhere).
    """

    model_path: Path
    output: Path
    int8_weights: bool = False
    quantized: list[QuantizedWeight] = dataclasses.field(default_factory=list)
    census: Census | None = None
    size: dict[str, float] | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    verification: Verification | None = None
    dataset: str | None = None
    calibrated_copy: bool = False
    written: int | None = None
    json_path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON report `convert/to_lce.py --json` writes."""
        result: dict[str, Any] = {}
        if self.census is not None:
            result["census"] = self.census.to_json()
        if self.size is not None:
            result["size"] = self.size
        if self.int8_weights:
            result["int8_weights"] = [dataclasses.asdict(weight) for weight in self.quantized]
        if self.verification is not None:
            result["verification"] = {
                **vars(self.verification),
                "passed": self.verification.passed,
                "calibrated_copy": self.calibrated_copy,
            }
        if self.written is not None:
            result["output"] = str(self.output)
        return result


class ConversionFailed(DeploymentError):
    """The pipeline refused the model; `report` holds the steps done before the refusal."""

    def __init__(self, message: str, report: ConversionReport) -> None:
        super().__init__(message)
        self.report = report


def default_output(model_path: str | os.PathLike) -> Path:
    """Where the `.tflite` of a model goes by default: beside it, with `.tflite`.

    # Arguments
        model_path: A `.h5` / `.keras` file or a SavedModel directory.

    # Returns
        `model.h5` -> `model.tflite`; a SavedModel directory `sm` -> `sm.tflite` beside it.

    # Example
        ```python
        assert default_output("runs/a/model.h5") == Path("runs/a/model.tflite")
        ```
    """
    model_path = Path(model_path)
    if model_path.is_dir():  # a SavedModel: write beside it
        return model_path.parent / f"{model_path.name}.tflite"
    return model_path.with_suffix(".tflite")


def _layer_ops(flatbuffer: bytes) -> list[str]:
    return [op for op in flatbuffer_ops(flatbuffer) if op in _LAYER_OPS]


def convert_model_file(
    model_path: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    target: str = "arm",
    strict: bool = False,
    int8_weights: bool = False,
    int8_mode: str = "dequantize",
    int8_min_elements: int = INT8_MIN_ELEMENTS,
    int8_keep_input_layers: bool = True,
    int8_max_binary_after: int | None = INT8_MAX_BINARY_AFTER,
    verify_model: bool = True,
    samples: int = 16,
    dataset: str | None = None,
    data_dir: str | None = None,
    rtol: float | None = None,
    min_top1: float | None = None,
    max_top1_drop: float = DEFAULT_MAX_TOP1_DROP,
    allow_unsafe: bool = False,
    json_path: str | os.PathLike | None = None,
    progress: bool = False,
) -> ConversionReport:
    """Convert a trained Keras model file to a checked LCE flatbuffer and write it.

    Outputs are checked first (none may replace the model or each other; their
    directories must be writable), then: load (`load_model`, safety rules), convert
    (`convert`), int8 weights (`quantize_weights`, optional), census (`census`; with
    `strict` a binarized conv that fell back to float is an error), verification
    (`verify` on random inputs or `dataset` images; an untrained model is verified on
    a copy with calibrated BatchNorm statistics), and only then the atomic writes of
    the `.tflite` and the JSON report.

    # Arguments
        model_path: A `.h5` / `.keras` file or a SavedModel directory.
        output: The `.tflite` path (None: `default_output(model_path)`).
        target: `"arm"` or `"xcore"`.
        strict: Refuse a binarized conv that LCE kept as a float op.
        int8_weights: Store the float convs' and dense layers' weights as int8.
        int8_mode: With `int8_weights`: how they run (`el_larq.deploy.int8.INT8_MODES`).
        int8_min_elements: With `int8_weights`: smaller weight tensors stay float32.
        int8_keep_input_layers: With `int8_weights`: keep the stem float32.
        int8_max_binary_after: With `int8_weights`: layers with more binary convs
            after them stay float32 (None: no limit).
        verify_model: Compare Keras and the LCE interpreter before writing.
        samples: Number of verification inputs.
        dataset: Verify on images (and labels) of this dataset; None: random inputs.
        data_dir: Dataset directory.
        rtol: Verification tolerance (None: `DEFAULT_RTOL`, or `DEFAULT_RTOL_INT8`).
        min_top1: Smallest top-1 agreement (None: `DEFAULT_MIN_TOP1[_INT8]`).
        max_top1_drop: With `dataset`: largest allowed drop of labelled top-1.
        allow_unsafe: Load models with `Lambda` layers (files you trust only).
        json_path: Also write `ConversionReport.to_json()` here.
        progress: Show the verification's progress with rate and ETA on stderr.

    # Returns
        The `ConversionReport`.

    # Raises
        ConversionFailed: a refusal after the model was read (with the partial report).
        DeploymentError: a refusal before (paths, loading).

    # Example
        ```python
        report = convert_model_file("runs/a/model.h5", int8_weights=True)
        print(report.census.accelerated, report.written)
        ```
    """
    model_path = Path(model_path)
    output = Path(output) if output is not None else default_output(model_path)
    json_path = Path(json_path) if json_path is not None else None
    # Before anything is read or written: no output may replace the model or another output.
    io.check_outputs([model_path], {"-o": output, "--json": json_path})
    io.check_writable(output)
    if json_path is not None:
        io.check_writable(json_path)
    report = ConversionReport(model_path, output, int8_weights=int8_weights, json_path=json_path)
    model = load_model(model_path, allow_unsafe=allow_unsafe)
    try:
        flatbuffer, messages = convert(model, target=target)

        def quantize(flatbuffer: bytes) -> tuple[bytes, list[QuantizedWeight]]:
            return quantize_weights(
                flatbuffer,
                mode=int8_mode,
                min_elements=int8_min_elements,
                keep_input_layers=int8_keep_input_layers,
                max_binary_after=int8_max_binary_after,
            )

        if int8_weights:
            flatbuffer, report.quantized = quantize(flatbuffer)
        report.census = census(model, flatbuffer, messages)
        if not report.census.has_binary:
            report.warnings.append(
                "the model has no binarized layer: nothing for LCE to accelerate"
            )
        if report.census.fallback:
            names = ", ".join(f"{name} ({op})" for name, op in report.census.fallback)
            if strict:
                raise DeploymentError(f"binarized conv(s) not accelerated by LCE: {names}")
            report.warnings.append(
                f"binarized conv(s) not accelerated by LCE, they run as float: {names}"
            )
        report.size = size_report(model, flatbuffer)
        if verify_model:
            labels = None
            if dataset:
                inputs, labels = dataset_examples(model, dataset, samples, data_dir=data_dir)
            else:
                inputs = random_inputs(model, samples)
            if rtol is None:
                rtol = DEFAULT_RTOL_INT8 if int8_weights else DEFAULT_RTOL
            if min_top1 is None:
                min_top1 = DEFAULT_MIN_TOP1_INT8 if int8_weights else DEFAULT_MIN_TOP1
            checked, checked_flatbuffer = model, flatbuffer
            untrained = untrained_batchnorms(model)
            if untrained:
                # Verify the same architecture with meaningful statistics instead: a
                # broken conversion still disagrees there, coin tosses no longer do.
                checked = calibrated_copy(model, inputs)
                checked_flatbuffer, _ = convert(checked, target=target)
                if int8_weights:
                    checked_flatbuffer, _ = quantize(checked_flatbuffer)
                if _layer_ops(checked_flatbuffer) != _layer_ops(flatbuffer):
                    raise DeploymentError(
                        "the model's BatchNorms are untrained and a copy with calibrated "
                        "statistics converts to other convs; cannot verify it: train it or "
                        "pass --no-verify"
                    )
                report.calibrated_copy = True
                report.warnings.append(
                    f"{len(untrained)} BatchNorm layer(s) still have their initial statistics "
                    f"(e.g. {untrained[0]}): the model is untrained, so Keras and LCE would "
                    "disagree by sign coin tosses. Verifying a copy whose BatchNorms hold the "
                    "statistics of the verification inputs instead; it has the same convs as "
                    "the written flatbuffer"
                )
            report.dataset = dataset or None
            report.verification = verify(
                checked,
                checked_flatbuffer,
                inputs,
                rtol=rtol,
                min_top1=min_top1,
                labels=labels,
                max_top1_drop=max_top1_drop,
                progress=progress,
                agree_rtol=None if int8_weights else AGREE_RTOL,
            )
            if not report.verification.passed:
                note = " (on a copy with calibrated BatchNorm statistics)"
                raise DeploymentError(
                    f"Keras and LCE disagree{note if untrained else ''}: "
                    f"{report.verification.summary()}"
                )
        report.written = io.write_atomic(output, flatbuffer)
        if json_path is not None:
            io.write_atomic(json_path, (io.json_dumps(report.to_json()) + "\n").encode())
    except ConversionFailed:
        raise
    except DeploymentError as error:
        raise ConversionFailed(str(error), report) from None
    return report
