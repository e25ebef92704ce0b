"""MobileNet family: EL-MobileNet, the binarized MobileNet without EL, the float MobileNet v1.

MobileNet v1 (Fig. 3 right): depthwise 3x3 and pointwise 1x1 units with EL on
each (identity / max-pool on depthwise, usually Expand on pointwise) and a ReLU
after every EL sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from el_larq.layers import el_conv
from el_larq.zoo._common import MODEL_ARGS, application, model_args, scaled, stem

__all__ = ["binary_mobilenet", "el_mobilenet", "mobilenet"]

# MobileNet v1: (pointwise filters, depthwise stride) for the 13 separable blocks.
MOBILENET_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
MOBILENET_BLOCKS += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def _mobilenet(
    name: str,
    model_args: dict,
    binary: bool = True,
    el_depthwise: bool = True,
    el_pointwise: bool = True,
    gamma_trainable: bool = True,
    relu_position: str = "after_sum",
    input_norm: bool = True,
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
) -> tf.keras.Model:
    """MobileNet v1 stack (Fig. 3 right): depthwise + pointwise units, each with a ReLU."""
    if relu_position not in ("branch", "after_sum", "none"):
        raise ValueError(
            f"relu_position must be 'branch', 'after_sum' or 'none', got {relu_position!r}."
        )
    relu = {
        "branch": {"branch_activation": "relu"},
        "after_sum": {"activation": "relu"},
        "none": {},
    }[relu_position if binary else "branch"]
    unit = dict(
        binary=binary, gamma_trainable=gamma_trainable, input_norm=binary and input_norm, **relu
    )
    unit.update(binary_weights=binary_weights, soft_activations=soft_activations)
    unit.update(gating=binary and gating, gating_reduction=gating_reduction)

    def body(x, stem_, width):
        x = stem(x, scaled(32, width), stem_, 3, pool=False, binary=binary)
        for index, (filters, strides) in enumerate(MOBILENET_BLOCKS, 1):
            link = binary and el_depthwise
            x = el_conv(
                x,
                None,
                3,
                strides,
                depthwise=True,
                elastic_link=link,
                name=f"block{index}_depthwise",
                **unit,
            )
            link = binary and el_pointwise
            x = el_conv(
                x,
                scaled(filters, width),
                1,
                elastic_link=link,
                name=f"block{index}_pointwise",
                **unit,
            )
            # Named block outputs, the same in the binary nets and the float twin, so
            # that attention matching maps a student's blocks to its teacher's.
            x = tf.keras.layers.Activation("linear", name=f"block{index}_out")(x)
        return x

    return application(name, body, **model_args)


def _build(name: str, args: dict) -> tf.keras.Model:
    """A MobileNet from a public builder's `locals()`; switch errors name the builder."""
    switches = {key: value for key, value in args.items() if key not in MODEL_ARGS}
    try:
        return _mobilenet(name, model_args(args), **switches)
    except ValueError as error:
        message = str(error)
        named = message if message.startswith(f"{name}()") else f"{name}(): {message}"
        raise ValueError(named) from None


def el_mobilenet(
    *,
    input_shape: tuple[int, int, int] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    binary: bool = True,
    el_depthwise: bool = True,
    el_pointwise: bool = True,
    gamma_trainable: bool = True,
    relu_position: str = "after_sum",
    input_norm: bool = True,
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
) -> tf.keras.Model:
    """EL-MobileNet: binarized MobileNet v1 with EL on every depthwise and pointwise conv (56.4 %).

    # Arguments
        input_shape, input_tensor, include_top, weights, num_classes, width, stem,
            pooling, classifier_activation, include_preprocessing, preprocessing_mean:
            as for `el_larq.zoo.el_resnet26` (keras-applications' arguments).
        binary: False builds the full-precision MobileNet.
        el_depthwise, el_pointwise: Elastic-Link on the depthwise / pointwise convs.
        gamma_trainable: Learn gamma or freeze it.
        relu_position: Where the kept ReLU goes. `"after_sum"` (default):
            `ReLU(BN(BinConv(x)) + SEI(x) / gamma)`. `"branch"`:
            `ReLU(BN(BinConv(x))) + SEI(x) / gamma`. `"none"`: no ReLU (sign is the
            only nonlinearity).
        input_norm: A BatchNormalization before every binarization (XNOR-Net's
            `BN -> sign -> conv`; default True). Without it a ReLU, after the sum or
            (through the identity links) on the branch, leaves every later sign
            input >= 0: all signs +1, a constant conv output, a dead network (seen
            at 28 px: from block 4 on every binary conv had only +1 inputs).
        binary_weights, soft_activations: Real-to-Binary's stage switches on every
            binary conv (`el_larq.layers.el_conv`); the weights are the same for every
            setting.
        gating, gating_reduction: Real-to-Binary's channel gating on every binary
            conv, depthwise and pointwise (EL-dagger, `el_larq.zoo.real_to_binary`).

    # Returns
        A `tf.keras.Model`.

    # Example
        ```python
        model = el_mobilenet(input_shape=(28, 28, 1), num_classes=10, width=0.25)
        ```
    """
    return _build("el_mobilenet", locals())


def binary_mobilenet(
    *,
    input_shape: tuple[int, int, int] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    binary: bool = True,
    el_depthwise: bool = True,
    el_pointwise: bool = False,
    gamma_trainable: bool = True,
    relu_position: str = "after_sum",
    input_norm: bool = True,
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
) -> tf.keras.Model:
    """Binarized MobileNet without EL on the pointwise convs (the paper: does not converge).

    As the paper's attempt, the depthwise convs keep their identity shortcut; it is
    `el_mobilenet(el_pointwise=False)`, so the two differ only in the pointwise links.
    Arguments as `el_mobilenet`.

    # Example
        ```python
        model = binary_mobilenet(input_shape=(28, 28, 1), num_classes=10, width=0.25)
        ```
    """
    return _build("binary_mobilenet", locals())


def mobilenet(
    *,
    input_shape: tuple[int, int, int] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
) -> tf.keras.Model:
    """Full-precision MobileNet v1 (70.6 %). Arguments as `el_mobilenet`'s first eleven.

    # Example
        ```python
        model = mobilenet(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _build("mobilenet", {**locals(), "binary": False})
