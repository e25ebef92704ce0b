"""What int8 weights cost, layer by layer: labelled top-1 and changed predictions.

Each float layer's weights alone stored as int8 (`el_larq.deploy.int8.quantize_weights`),
evaluated on a dataset split beside Keras, the float32 flatbuffer, every candidate as
int8 and the default choice. It is how the defaults of `quantize_weights` were chosen
(docs/deployment.md, 1.1); `el-larq int8-sensitivity` is its CLI.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from el_larq.deploy.conversion import convert
from el_larq.deploy.int8 import quantize_weights
from el_larq.deploy.loading import load_model

__all__ = ["int8_sensitivity"]


def int8_sensitivity(
    model_path: str | os.PathLike,
    dataset: str,
    *,
    split: str | None = None,
    data_dir: str | None = None,
    max_examples: int | None = None,
    mode: str = "dequantize",
    num_threads: int = 1,
    kernel: str = "indirect_bgemm",
    xnnpack: bool | None = None,
) -> list[dict[str, Any]]:
    """Labelled top-1 of a model with each float layer's weights alone stored as int8.

    Converts the Keras model once, then evaluates on a split: Keras, the float32
    flatbuffer, the flatbuffer with every candidate weight tensor as int8, with
    `quantize_weights`' default choice, and with each candidate alone, each with the
    share of images whose predicted class differs from the float32 flatbuffer's (a
    finer measure than top-1, which moves by chance as predictions flip both ways). It
    is how the defaults of `quantize_weights` were chosen (docs/deployment.md, 1.1).

    # Arguments
        model_path: A trained Keras model file.
        dataset: Dataset name (e.g. `fashion_mnist`).
        split: Split (None: the evaluation split; `train` to choose without the test set).
        data_dir: Dataset directory.
        max_examples: Evaluate on the first `max_examples` images only.
        mode: How the int8 weights run (`INT8_MODES`).
        num_threads: Interpreter threads.
        kernel: LCE binary-conv kernel (`el_larq.deploy.host.KERNELS`).
        xnnpack: Float ops through XNNPACK (None: `el_larq.deploy.host.DEFAULT_XNNPACK`).

    # Returns
        Rows `{"variant", "int8_tensors", "binary_after", "bytes", "top1", "top5",
        "changed", "examples"}`, Keras first (`changed`: against the float32
        flatbuffer; `binary_after`: for one layer alone, the binary convs after it).

    # Example
        ```python
        for row in int8_sensitivity("runs/a/model.h5", "fashion_mnist"):
            print(row["variant"], row["top1"])
        ```
    """
    from el_larq import training

    model = load_model(model_path)
    flatbuffer, _ = convert(model)
    everything = dict(mode=mode, min_elements=0, keep_input_layers=False, max_binary_after=None)
    all_int8, candidates = quantize_weights(flatbuffer, **everything)
    variants = {"float32 flatbuffer": flatbuffer, "all float layers int8": all_int8}
    default, chosen = quantize_weights(flatbuffer, mode=mode)
    variants[f"default ({sum(w.int8 for w in chosen)} tensors int8)"] = default
    alone = {f"only {w.label} {'x'.join(map(str, w.shape))} int8": w for w in candidates}
    for label, weight in alone.items():
        variants[label] = quantize_weights(flatbuffer, mode=mode, only={weight.tensor})[0]

    def evaluate(path: str) -> dict[str, Any]:
        return training.evaluate_model(
            path,
            dataset,
            split,
            data_dir=data_dir,
            max_examples=max_examples,
            num_threads=num_threads,
            kernel=kernel,
            xnnpack=xnnpack,
            predictions=True,
        )

    keras = evaluate(os.fspath(model_path))
    rows = [{"variant": "Keras", "int8_tensors": 0, "binary_after": None, "bytes": None}]
    rows[0].update(_scores(keras))
    reference = None
    with tempfile.TemporaryDirectory() as folder:
        for label, variant in variants.items():
            path = os.path.join(folder, "variant.tflite")
            Path(path).write_bytes(variant)
            _, weights = quantize_weights(variant, **everything)
            scores = _scores(evaluate(path))
            reference = scores["predictions"] if reference is None else reference
            rows.append(
                {
                    "variant": label,
                    "int8_tensors": len(candidates) - len(weights),
                    "binary_after": alone[label].binary_after if label in alone else None,
                    "bytes": len(variant),
                    **scores,
                }
            )
    for row in rows:  # against the float32 flatbuffer, the first variant
        predicted = row.pop("predictions")
        row["changed"] = float(np.mean(predicted != reference)) if len(predicted) else 0.0
    return rows


def _scores(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("top1", "top5", "examples", "predictions")
    return {key: result[key] for key in keys}
