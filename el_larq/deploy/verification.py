"""Keras against LCE's interpreter on the same inputs, random or from a dataset."""

from __future__ import annotations

import dataclasses
from typing import Any

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

from el_larq.deploy.kinds import walk_layers
from el_larq.progress import Progress
from el_larq.safety import DeploymentError

__all__ = [
    "AGREE_RTOL",
    "DEFAULT_MAX_TOP1_DROP",
    "DEFAULT_MIN_TOP1",
    "DEFAULT_MIN_TOP1_INT8",
    "DEFAULT_RTOL",
    "DEFAULT_RTOL_INT8",
    "Verification",
    "calibrated_copy",
    "dataset_examples",
    "dataset_inputs",
    "random_inputs",
    "untrained_batchnorms",
    "verify",
]

# Documented in docs/deployment.md. Keras and LCE sum float32 in different orders, so a
# value within ~1e-6 of zero can take the other sign in the next binary layer; in a
# deep BNN a few such flips move the logits by about 1e-3 of their range, and on real
# images a flip early in the net can move one image's outputs a lot. So the gate is the
# MEAN difference (a wrong conversion moves every output) and the top-1 agreement; the
# max difference is reported, not gated.
DEFAULT_RTOL = 1e-2
DEFAULT_MIN_TOP1 = 0.95
# int8 weights move every float layer's outputs by up to ~0.4 % of its range, and each
# activation pushed across zero flips a sign in the next binary layer. A trained
# EL-ResNet26 then gives another top-1 for ~7 % of Fashion-MNIST test images, with the
# same accuracy (81.55 vs 81.57 % on 10,000; docs/deployment.md): the gates catch a
# broken model (chance agreement), not those flips. Accuracy: train/evaluate.py.
DEFAULT_RTOL_INT8 = 5e-2
DEFAULT_MIN_TOP1_INT8 = 0.85
# With labelled inputs (`convert/to_lce.py --dataset`): the flatbuffer's labelled top-1 may
# be at most this much below Keras's. This is the gate that matters for int8 weights.
DEFAULT_MAX_TOP1_DROP = 0.01
# An input "agrees" when every output is within this share of the largest output: no
# sign flipped on its way (reported, not gated: a few flips near zero are coin tosses
# that depend on the CPU's float rounding; a wrong conversion moves every input). Not
# counted for int8 weights, whose rounding moves every output of every input.
AGREE_RTOL = 1e-3
# Floor of the output scale, so an all-zero output does not make every limit zero.
_MIN_SCALE = 1e-6
# Inputs per progress step of `verify(progress=True)`.
_PROGRESS_CHUNK = 64


def _limit(share: float, scale: float) -> float:
    """The largest allowed difference: `share` of the output scale (floored)."""
    return share * max(scale, _MIN_SCALE)


@dataclasses.dataclass
class Verification:
    """Keras vs LCE interpreter on the same inputs.

    # Attributes
        samples: Number of inputs.
        max_abs: Largest absolute difference of any output value.
        mean_abs: Mean absolute difference.
        scale: Largest absolute Keras output value (what `rtol` is relative to).
        top1_agreement: Fraction of inputs with the same arg-max (None: not a classifier).
        rtol: Tolerance: `mean_abs <= rtol * scale` must hold.
        min_top1: Tolerance: `top1_agreement >= min_top1` must hold.
        keras_accuracy: Top-1 of Keras against the labels (None: no labels).
        lce_accuracy: Top-1 of the flatbuffer against the labels.
        max_top1_drop: Tolerance: `lce_accuracy >= keras_accuracy - max_top1_drop`, with
            at least one input of slack (`allowed_top1_drop`).
        inputs_agreeing: Inputs whose every output is within `agree_rtol * scale` (not
            gated): all of them when nothing flipped, most when a few activations near
            zero took the other sign, few or none after a wrong conversion (None: not
            counted, as for int8 weights).
        agree_rtol: The share of `scale` that `inputs_agreeing` allows (None: not counted).
    """

    samples: int
    max_abs: float
    mean_abs: float
    scale: float
    top1_agreement: float | None
    rtol: float
    min_top1: float
    keras_accuracy: float | None = None
    lce_accuracy: float | None = None
    max_top1_drop: float = DEFAULT_MAX_TOP1_DROP
    inputs_agreeing: int | None = None
    agree_rtol: float | None = AGREE_RTOL

    @property
    def passed(self) -> bool:
        """Whether every tolerance holds."""
        close = self.mean_abs <= _limit(self.rtol, self.scale)
        agree = self.top1_agreement is None or self.top1_agreement >= self.min_top1
        accurate = self.keras_accuracy is None or (
            self.lce_accuracy >= self.keras_accuracy - self.allowed_top1_drop - 1e-12
        )
        return close and agree and accurate

    @property
    def allowed_top1_drop(self) -> float:
        """`max_top1_drop`, but never less than one input: on a few labelled images a
        finer limit would fail any one prediction that flips (int8 weights flip some)."""
        return max(self.max_top1_drop, 1 / max(self.samples, 1))

    def summary(self) -> str:
        """One line: the numbers and the verdict."""
        top1 = "n/a" if self.top1_agreement is None else f"{self.top1_agreement:.1%}"
        extra = ""
        if self.keras_accuracy is not None:
            extra = (
                f", labelled top-1 Keras {self.keras_accuracy:.2%} vs LCE "
                f"{self.lce_accuracy:.2%} (limit {self.allowed_top1_drop:.2%} lower)"
            )
        if self.inputs_agreeing is not None:
            extra += (
                f", {self.inputs_agreeing} of {self.samples} inputs within "
                f"{self.agree_rtol:g} x max |output|"
            )
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"verification on {self.samples} inputs: mean |diff| {self.mean_abs:.3g} "
            f"(limit {self.rtol:g} x max |output| {self.scale:.3g} = "
            f"{self.rtol * self.scale:.3g}), max |diff| {self.max_abs:.3g}, "
            f"top-1 agreement {top1} (limit {self.min_top1:.0%}){extra}: {verdict}"
        )


def random_inputs(model: tf.keras.Model, samples: int, seed: int = 0) -> np.ndarray:
    """`samples` inputs for `model`, uniform in [-1, 1] (both signs: every sign path runs).

    # Example
        ```python
        x = random_inputs(model, 8)
        ```
    """
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise DeploymentError(f"the model input shape {shape} must be fully known to convert")
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(samples, *shape)).astype(np.float32)


def dataset_inputs(
    model: tf.keras.Model, name: str, samples: int, *, data_dir: str | None = None
) -> np.ndarray:
    """`samples` real, preprocessed images from a dataset (its evaluation split).

    # Example
        ```python
        x = dataset_inputs(model, "fashion_mnist", 32)
        ```
    """
    return dataset_examples(model, name, samples, data_dir=data_dir)[0]


def dataset_examples(
    model: tf.keras.Model, name: str, samples: int, *, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`samples` real, preprocessed images and their labels (the evaluation split).

    Uses `el_larq.data`, so the images are preprocessed as for training and evaluation.

    # Arguments
        model: The model the images are for (its input size picks the image size).
        name: Dataset name, e.g. `fashion_mnist` or any TFDS image dataset.
        samples: How many images.
        data_dir: Dataset directory (see `el_larq.data.load_split`).

    # Returns
        `(images, labels)`: float32 `(samples, *input_shape)` and int64 `(samples,)`.

    # Example
        ```python
        x, y = dataset_examples(model, "fashion_mnist", 1000)
        ```
    """
    from el_larq import data

    shape = tuple(model.inputs[0].shape[1:])
    try:
        split = data.load_split(
            name,
            data.default_eval_split(name, data_dir),
            training=False,
            batch_size=samples,
            data_dir=data_dir,
            image_size=shape[0],
        )
        images, labels = (t.numpy() for t in next(iter(split.dataset))[:2])
    except data.DataError as error:
        raise DeploymentError(str(error).splitlines()[0]) from None
    if images.shape[1:] != shape:
        raise DeploymentError(
            f"dataset {name!r} gives images of shape {images.shape[1:]}, but the model "
            f"expects {shape}"
        )
    labels = labels.argmax(-1) if labels.ndim > 1 else labels  # one-hot or sparse
    return images[:samples].astype(np.float32), labels[:samples].astype(np.int64)


def untrained_batchnorms(model: tf.keras.Model) -> list[str]:
    """BatchNorm layers still at their initial statistics (moving mean 0, variance 1).

    In an untrained BNN every bconv output is an integer, and with identity BatchNorms
    sums of them cancel to within float rounding of zero, where Keras and LCE may pick
    different signs. Such a model is no test of the conversion: verify a trained one.

    # Example
        ```python
        if untrained_batchnorms(model): print("train or load weights first")
        ```
    """
    names = []
    for layer in walk_layers(model):
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            mean, variance = layer.moving_mean.numpy(), layer.moving_variance.numpy()
            if not mean.any() and np.all(variance == 1):
                names.append(layer.name)
    return names


def calibrated_copy(model: tf.keras.Model, inputs: np.ndarray) -> tf.keras.Model:
    """A copy of `model` whose BatchNorms hold the statistics of `inputs`, as after training.

    At their initial statistics an untrained BNN's activations cancel to ~0, where Keras
    and LCE take signs by coin toss, so comparing them tests nothing; the copy has the
    same architecture and weights, so a broken conversion still shows on it.

    # Arguments
        model: A Keras model (not changed).
        inputs: A batch whose statistics the BatchNorms take.

    # Returns
        The calibrated copy.

    # Example
        ```python
        if untrained_batchnorms(model):
            model = calibrated_copy(model, random_inputs(model, 16))
        ```
    """
    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    norms = [
        layer
        for layer in walk_layers(copy)
        if isinstance(layer, tf.keras.layers.BatchNormalization)
    ]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0  # moving statistics := this batch's statistics
    copy(inputs, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    return copy


def _interpreter_outputs(interpreter: Any, inputs: np.ndarray, progress: bool) -> Any:
    """`interpreter.predict(inputs)`, in chunks that report progress (unless few inputs)."""
    if not progress or len(inputs) <= _PROGRESS_CHUNK:
        return interpreter.predict(inputs)
    meter = Progress("verify in LCE's interpreter", len(inputs), unit="inputs")
    chunks = []
    for start in range(0, len(inputs), _PROGRESS_CHUNK):
        outputs = interpreter.predict(inputs[start : start + _PROGRESS_CHUNK])
        chunks.append(outputs if isinstance(outputs, list) else [outputs])
        meter.update(len(inputs[start : start + _PROGRESS_CHUNK]))
    meter.close()
    merged = [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
    return merged if len(merged) > 1 else merged[0]


def verify(
    model: tf.keras.Model,
    flatbuffer: bytes,
    inputs: np.ndarray,
    *,
    rtol: float = DEFAULT_RTOL,
    min_top1: float = DEFAULT_MIN_TOP1,
    labels: np.ndarray | None = None,
    max_top1_drop: float = DEFAULT_MAX_TOP1_DROP,
    num_threads: int = 1,
    progress: bool = False,
    agree_rtol: float | None = AGREE_RTOL,
) -> Verification:
    """Run the same inputs through Keras and LCE's interpreter and compare.

    # Arguments
        model: The Keras model.
        flatbuffer: Its LCE conversion.
        inputs: A batch of inputs, `(samples, *input_shape)`.
        rtol: Largest allowed mean `|diff|`, relative to the largest Keras output.
        min_top1: Smallest allowed top-1 agreement (for `(batch, classes)` outputs).
        labels: Class labels of `inputs` (classifiers): then both models' labelled
            top-1 is reported, and the flatbuffer's may be at most `max_top1_drop`
            below Keras's.
        max_top1_drop: See `labels`.
        num_threads: Interpreter threads.
        progress: Write the interpreter's progress with rate and ETA to stderr
            (`el_larq.progress`) for more than 64 inputs: thousands of dataset images
            take minutes.
        agree_rtol: Count the inputs whose every output is within this share of the
            largest output (`Verification.inputs_agreeing`); None: do not count (int8
            weights move every output, so the count would say nothing).

    # Returns
        A `Verification`; check `.passed`.

    # Example
        ```python
        result = verify(model, flatbuffer, random_inputs(model, 8))
        assert result.passed, result.summary()
        ```
    """
    expected = model.predict(inputs, batch_size=len(inputs), verbose=0)
    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=num_threads)
    actual = _interpreter_outputs(interpreter, inputs, progress)
    if isinstance(expected, list):
        expected = np.concatenate([np.reshape(e, (len(inputs), -1)) for e in expected], axis=1)
        actual = np.concatenate([np.reshape(a, (len(inputs), -1)) for a in actual], axis=1)
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    diff = np.abs(actual - expected)
    scale = float(np.abs(expected).max())
    agreeing = None
    if agree_rtol is not None:
        per_input = diff.reshape(len(inputs), -1).max(axis=1)
        agreeing = int(np.sum(per_input <= _limit(agree_rtol, scale)))
    top1 = keras_accuracy = lce_accuracy = None
    if expected.ndim == 2 and expected.shape[1] > 1:
        top1 = float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1)))
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            if labels.shape != (len(inputs),):
                raise DeploymentError(f"{len(labels)} labels for {len(inputs)} inputs")
            keras_accuracy = float(np.mean(expected.argmax(axis=1) == labels))
            lce_accuracy = float(np.mean(actual.argmax(axis=1) == labels))
    return Verification(
        samples=len(inputs),
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        scale=scale,
        top1_agreement=top1,
        rtol=rtol,
        min_top1=min_top1,
        keras_accuracy=keras_accuracy,
        lce_accuracy=lce_accuracy,
        max_top1_drop=max_top1_drop,
        inputs_agreeing=agreeing,
        agree_rtol=agree_rtol,
    )
