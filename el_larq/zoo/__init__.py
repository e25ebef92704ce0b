"""Model zoo: EL-ResNet18/26/34/50, EL-MobileNet, their baselines and ablations.

One module per family (`resnet.py`, `mobilenet.py`, ...), each with one stack
builder out of `el_larq.layers.el_conv` units and thin public functions that only
choose defaults, in the style of keras-applications; `_common.py` holds the
scaffolding (input, stem, head) they share:

    from el_larq.zoo import el_resnet50
    model = el_resnet50(input_shape=(224, 224, 3), num_classes=1000)

Every builder has an explicit keyword-only signature: keras-applications' arguments
first (`input_shape`, `input_tensor`, `include_top`, `weights`, `num_classes`, `width`,
`stem`, `pooling`, `classifier_activation`, `include_preprocessing`,
`preprocessing_mean`), then the family's switches with their defaults; errors name the
builder. `preprocess_input` applies the zoo's input convention (x / 255 - per-channel
mean); `include_preprocessing=True` or `with_preprocessing(model)` puts it inside the
model, so that a deployed `.tflite` takes raw pixels.

Architecture (docs/design.md §3, the paper's "Instantiations" and Fig. 3):

* Full-precision stem: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool ("imagenet"), or a
  3x3/1 conv, BN, ReLU ("small", chosen automatically for inputs up to 64 px).
  Full-precision classifier: global average pool and a dense softmax layer.
* Downsample shortcut (first block of a stage): 2x2 average-pool (stride 2,
  "same") + full-precision 1x1 conv + BN, in place of the strided 1x1 conv.
* Bottleneck block (ResNet26 = [2, 2, 2, 2], ResNet50 = [3, 4, 6, 3]):
  reduce 1x1 -> spatial 3x3 (strided) -> expand 1x1 (x4), each an `el_conv`
  unit, plus the block residual. Basic block (ResNet18 = [2, 2, 2, 2],
  ResNet34 = [3, 4, 6, 3]): two 3x3 units, each with its own shortcut as in
  Bi-Real Net (an identity Elastic-Link, or the downsample shortcut where the
  conv changes shape); EL reduces to exactly that, so there is no gamma.
* MobileNet v1: depthwise 3x3 and pointwise 1x1 units with EL on each
  (identity / max-pool on depthwise, usually Expand on pointwise) and a ReLU
  after every EL sum.

Full-precision twins (`resnet18`, ..., `mobilenet`) are the same stacks with
`binary=False`: float convs, ReLU after each unit and no Elastic-Link.

ReActNet (`reactnet.py`): ReActNet-A and -C and EL-ReActNet, ReActNet-C with
Elastic-Link in its reduction blocks (the paper's 71.9 %); RSign and RPReLU from
`el_larq.reactnet`, a 3x3/2 stem without activation and no ReLU before the pool.

Real-to-Binary (`real_to_binary.py`): the Real-to-Binary net (`r2b_resnet18`), its
gating on the Bi-Real bottleneck nets (`r2b_resnet26/50`) and EL-dagger, the EL nets with
gating on every binary conv (`el_r2b_*`, Table 3's best rows); layers from
`el_larq.real_to_binary`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

# Introspection lives in el_larq.summary (which does not import the zoo); re-exported here
# because zoo users reach for it.
from el_larq.elasticize import elasticize as elasticize_model
from el_larq.summary import gamma_report, model_summary, plot_gamma_report
from el_larq.zoo.mobilenet import binary_mobilenet, el_mobilenet, mobilenet
from el_larq.zoo.preprocessing import preprocess_input, with_preprocessing
from el_larq.zoo.reactnet import el_reactnet, reactnet_a, reactnet_c
from el_larq.zoo.real_to_binary import (
    el_r2b_mobilenet,
    el_r2b_resnet18,
    el_r2b_resnet26,
    el_r2b_resnet34,
    el_r2b_resnet50,
    r2b_resnet18,
    r2b_resnet26,
    r2b_resnet50,
)
from el_larq.zoo.resnet import (
    bireal_resnet18,
    bireal_resnet26,
    bireal_resnet34,
    bireal_resnet50,
    el_resnet18,
    el_resnet26,
    el_resnet34,
    el_resnet50,
    resnet18,
    resnet26,
    resnet34,
    resnet50,
)

__all__ = [
    "KERAS_PREFIX",
    "MODELS",
    "check_model_name",
    "gamma_report",
    "model_summary",
    "plot_gamma_report",
    "preprocess_input",
    "summary_table",
    "with_preprocessing",
    "bireal_resnet18",
    "bireal_resnet26",
    "bireal_resnet34",
    "bireal_resnet50",
    "binary_mobilenet",
    "el_mobilenet",
    "el_r2b_mobilenet",
    "el_r2b_resnet18",
    "el_r2b_resnet26",
    "el_r2b_resnet34",
    "el_r2b_resnet50",
    "el_reactnet",
    "el_resnet18",
    "el_resnet26",
    "el_resnet34",
    "el_resnet50",
    "get_model",
    "keras_application",
    "mobilenet",
    "r2b_resnet18",
    "r2b_resnet26",
    "r2b_resnet50",
    "reactnet_a",
    "reactnet_c",
    "resnet18",
    "resnet26",
    "resnet34",
    "resnet50",
]

MODELS: dict[str, Callable[..., tf.keras.Model]] = {
    builder.__name__: builder
    for builder in (
        el_resnet18,
        el_resnet26,
        el_resnet34,
        el_resnet50,
        el_mobilenet,
        bireal_resnet18,
        bireal_resnet26,
        bireal_resnet34,
        bireal_resnet50,
        binary_mobilenet,
        resnet18,
        resnet26,
        resnet34,
        resnet50,
        mobilenet,
        r2b_resnet18,
        r2b_resnet26,
        r2b_resnet50,
        el_r2b_resnet18,
        el_r2b_resnet26,
        el_r2b_resnet34,
        el_r2b_resnet50,
        el_r2b_mobilenet,
        reactnet_a,
        reactnet_c,
        el_reactnet,
    )
}


# `keras:MobileNetV2`: a tf.keras.applications builder instead of a zoo model.
KERAS_PREFIX = "keras:"


def keras_application(
    name: str,
    *,
    input_shape: tuple = (224, 224, 3),
    num_classes: int = 1000,
    width: float = 1.0,
    **kwargs: Any,
) -> tf.keras.Model:
    """A float `tf.keras.applications` CNN, built offline (`weights=None`).

    # Arguments
        name: The application's builder, e.g. `"MobileNetV2"`.
        input_shape, num_classes: As for the zoo builders (`classes` of the builder).
        width: The builder's `alpha` (MobileNets' width multiplier) when not 1.
        **kwargs: Any other argument of the builder.

    # Returns
        The float model (binarize it with `el_larq.elasticize.elasticize`).

    # Raises
        ValueError: `tf.keras.applications` has no builder `name`.

    # Example
        ```python
        model = keras_application("MobileNetV2", input_shape=(32, 32, 1), num_classes=10)
        ```
    """
    check_model_name(KERAS_PREFIX + name)
    builder = getattr(tf.keras.applications, name)
    if width != 1.0:
        kwargs["alpha"] = width
    return builder(weights=None, input_shape=input_shape, classes=num_classes, **kwargs)


def check_model_name(name: str) -> None:
    """Raise a one-line ValueError unless `get_model` knows `name`.

    # Example
        ```python
        check_model_name("keras:MobileNetV2")  # fine
        ```
    """
    if name.startswith(KERAS_PREFIX):
        application = name[len(KERAS_PREFIX) :]
        if not (
            application[:1].isupper()
            and callable(getattr(tf.keras.applications, application, None))
        ):
            raise ValueError(
                f"Unknown model {name!r}: tf.keras.applications has no builder "
                f"{application!r} (e.g. {KERAS_PREFIX}MobileNetV2)."
            )
    elif name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Valid models: {', '.join(sorted(MODELS))}.")


def get_model(
    name: str,
    *,
    elasticize: dict[str, Any] | None = None,
    batch_norm_momentum: float | None = None,
    **kwargs: Any,
) -> tf.keras.Model:
    """Build the zoo model `name` with builder keyword arguments `kwargs`.

    # Arguments
        name: A key of `MODELS`, e.g. `"el_resnet26"`, or `keras:<Application>` for a
            float `tf.keras.applications` CNN (`keras_application`).
        elasticize: Options of `el_larq.elasticize.elasticize` (may be empty): binarize
            the built float model with Elastic-Link. None: return the model as built.
        batch_norm_momentum: Set every BatchNormalization's momentum (before
            elasticizing, so that reused BatchNorms keep it). keras-applications use
            0.999, tuned to ImageNet-length runs: after a few hundred steps their moving
            statistics are still near their initial values and inference is at chance.
        **kwargs: Passed to the builder (`input_shape`, `num_classes`, `width`, switches).

    # Returns
        A `tf.keras.Model`.

    # Raises
        ValueError: `name` is not a zoo model (the message lists the valid names), or
            (`el_larq.elasticize.ElasticizeError`) a model elasticize cannot rewrite.

    # Example
        ```python
        model = get_model("el_resnet26", input_shape=(28, 28, 1), num_classes=10, width=0.25)
        binary = get_model("keras:MobileNetV2", input_shape=(32, 32, 1), num_classes=10,
                           elasticize={"elastic_link": True}, batch_norm_momentum=0.9)
        ```
    """
    check_model_name(name)
    if name.startswith(KERAS_PREFIX):
        model = keras_application(name[len(KERAS_PREFIX) :], **kwargs)
    else:
        model = MODELS[name](**kwargs)
    if batch_norm_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = float(batch_norm_momentum)
    if elasticize is not None:
        model = elasticize_model(model, **elasticize)[0]
    return model


def summary_table(names: list[str] | None = None, input_shape=(224, 224, 3)) -> str:
    """A Markdown table of `model_summary` for zoo models (all by default) at `input_shape`.

    # Arguments
        names: Zoo model names; None for every model in `el_larq.zoo.MODELS`.
        input_shape: Input of the built models.

    # Returns
        The table as a string. `python -m el_larq.summary` prints it for 224 px.

    # Example
        ```python
        print(summary_table(["el_resnet18", "bireal_resnet18"]))
        ```
    """
    rows = [
        "| model | params (M) | binary MACs (M) | float MACs (M) | binary-MAC ratio "
        "| EL ops (M) | Squeeze sums (M) | FLOPs, Bi-Real convention (M) | gamma |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names or list(MODELS):
        s = model_summary(MODELS[name](input_shape=input_shape))
        rows.append(
            f"| {name} | {s['params'] / 1e6:.2f} | {s['binary_macs'] / 1e6:.0f} "
            f"| {s['float_macs'] / 1e6:.0f} | {s['binary_mac_ratio']:.3f} "
            f"| {s['el_ops'] / 1e6:.2f} | {s['squeeze_ops'] / 1e6:.2f} | {s['flops'] / 1e6:.0f} "
            f"| {s['gammas']} |"
        )
        tf.keras.backend.clear_session()
    return "\n".join(rows)
