"""Top-1/top-5 accuracy of a Keras or LCE model on a dataset split."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from el_larq import data as data_lib
from el_larq.progress import Progress
from el_larq.training.config import ConfigError


def _topk_hits(probabilities: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    k = min(5, probabilities.shape[-1])
    top = np.argsort(-probabilities, axis=-1)[:, :k]
    return int(np.sum(top[:, 0] == labels)), int(np.sum(np.any(top == labels[:, None], axis=1)))


def evaluate_model(
    path: str,
    dataset: str,
    split: str | None = None,
    *,
    data_dir: str | None = None,
    batch_size: int = 256,
    max_examples: int | None = None,
    num_threads: int = 1,
    kernel: str = "indirect_bgemm",
    xnnpack: bool | None = None,
    interpreter_batch: int = 1,
    download: bool = True,
    progress: bool = False,
    predictions: bool = False,
) -> dict[str, Any]:
    """Top-1 and top-5 accuracy of a Keras `.h5` or an LCE `.tflite` model on a split.

    Both kinds see the same images, preprocessed as for evaluation during training
    (centre crop for ImageNet), at the model's input size. A `.tflite` runs in Larq
    Compute Engine's interpreter, so comparing the two shows whether deployment kept
    the accuracy.

    # Arguments
        path: `.h5`/`.keras`/SavedModel (Keras) or `.tflite` (LCE) model.
        dataset: Dataset name (see `el_larq.data.load_split`).
        split: Split; None: the dataset's test/validation split.
        data_dir: Dataset directory.
        batch_size: Batch size of the input pipeline.
        max_examples: Evaluate only the first that many examples.
        num_threads: LCE interpreter threads.
        kernel: LCE binary-conv kernel (`indirect_bgemm` is the fast one on x86).
        xnnpack: Run the `.tflite`'s float ops through TFLite's XNNPACK delegate (None:
            `el_larq.deploy.host.DEFAULT_XNNPACK`).
        interpreter_batch: Images per interpreter call for a `.tflite`
            (`el_larq.deploy.batching.BatchPredictor`; same results as 1, one by one).
        download: Let TFDS download a missing dataset.
        progress: Write progress with rate and ETA to stderr (`el_larq.progress`).
        predictions: Also return each image's predicted class (`predictions`, int64),
            to compare two models image by image.

    # Returns
        A dict with `model`, `format` (`keras`/`lce`), `dataset`, `split`, `examples`,
        `top1`, `top5` and, for a `.tflite`, `interpreter_batch` (the batch it ran at).

    # Raises
        ConfigError: missing model file, or a class count that does not match the
            dataset; DataError: data not found, or an input shape that does not match;
        `el_larq.safety.DeploymentError`: a file that does not load.

    # Example
        ```python
        keras = evaluate_model("runs/a/model.h5", "fashion_mnist")
        lce = evaluate_model("runs/a/model.tflite", "fashion_mnist")
        print(keras["top1"] - lce["top1"])
        ```
    """
    if not os.path.exists(path):
        raise ConfigError(f"model file {path} does not exist.")
    extra: dict[str, Any] = {}
    if path.endswith(".tflite"):
        from el_larq.deploy.batching import BatchPredictor  # LCE: only for a .tflite

        with open(path, "rb") as f:
            predictor = BatchPredictor(
                f.read(),
                batch_size=interpreter_batch,
                num_threads=num_threads,
                kernel=kernel,
                xnnpack=xnnpack,
                source=path,
            )
        input_shape, classes = predictor.input_shape, predictor.output_shape[-1]
        predict, kind = predictor.predict, "lce"
    else:
        from el_larq.deploy.loading import load_model

        model = load_model(path)
        input_shape = tuple(model.inputs[0].shape[1:])
        classes = model.outputs[0].shape[-1]
        predict, kind = (lambda x: model.predict_on_batch(x)), "keras"
    split, data = data_lib.load_eval_split_for(
        input_shape, dataset, split, batch_size=batch_size, data_dir=data_dir,
        download=download, model=path,
    )  # fmt: skip
    if classes != data.num_classes:  # scores against the wrong label set mean nothing
        raise ConfigError(
            f"{path} predicts {classes} classes, but {dataset} split {split!r} has "
            f"{data.num_classes}; evaluate it on the dataset it was trained for."
        )
    images = data.dataset.unbatch().take(max_examples) if max_examples else data.dataset
    if max_examples:
        images = images.batch(batch_size)
    total = min(data.num_examples, max_examples or data.num_examples)
    meter = Progress(f"evaluate {path}", total) if progress else None
    seen = top1 = top5 = 0
    classes_predicted = []
    for x, y in images.as_numpy_iterator():
        probabilities = np.asarray(predict(x))
        if predictions:
            classes_predicted.append(probabilities.argmax(-1))
        hits1, hits5 = _topk_hits(probabilities, y)
        seen, top1, top5 = seen + len(y), top1 + hits1, top5 + hits5
        if meter:
            meter.update(len(y))
    if meter:
        meter.close()
    if kind == "lce":  # the batch it really ran at (1 when batching fell back)
        extra["interpreter_batch"] = predictor.batch_size if predictor.batched else 1
    if predictions:
        extra["predictions"] = np.concatenate(classes_predicted or [np.zeros(0, np.int64)])
    return {
        "model": path,
        "format": kind,
        "dataset": dataset,
        "split": split,
        "examples": seen,
        "top1": top1 / max(seen, 1),
        "top5": top5 / max(seen, 1),
        **extra,
    }
