"""MobileNet family: EL-MobileNet, the binarized MobileNet without EL, the float MobileNet v1.

MobileNet v1 (Fig. 3 right): depthwise 3x3 and pointwise 1x1 units with EL on
each (identity / max-pool on depthwise, usually Expand on pointwise) and a ReLU
after every EL sum.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from el_larq.layers import el_conv
from el_larq.zoo._common import application, scaled, split_model_args, stem

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
        return x

    return application(name, body, **model_args)


def el_mobilenet(**kwargs: Any) -> tf.keras.Model:
    """EL-MobileNet: binarized MobileNet v1 with EL on every depthwise and pointwise conv (56.4 %).

    # Arguments
        input_shape, input_tensor, include_top, num_classes, weights, width, stem:
            as for `el_resnet26`.
        binary: False builds the full-precision MobileNet.
        el_depthwise, el_pointwise: Elastic-Link on the depthwise / pointwise convs.
        gamma_trainable: Learn gamma or freeze it.
        relu_position: Where the kept ReLU goes. `"after_sum"` (default, DESIGN.md):
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
    model_args, switches = split_model_args(kwargs)
    return _mobilenet("el_mobilenet", model_args, **switches)


def binary_mobilenet(**kwargs: Any) -> tf.keras.Model:
    """Binarized MobileNet without EL on the pointwise convs (the paper: does not converge).

    As the paper's attempt, the depthwise convs keep their identity shortcut; it is
    `el_mobilenet(el_pointwise=False)`, so the two differ only in the pointwise links.
    Arguments as `el_mobilenet`.
    """
    model_args, switches = split_model_args(kwargs)
    switches = {"el_pointwise": False, **switches}
    return _mobilenet("binary_mobilenet", model_args, **switches)


def mobilenet(**kwargs: Any) -> tf.keras.Model:
    """Full-precision MobileNet v1 (70.6 %). Arguments as `el_mobilenet`."""
    model_args, switches = split_model_args(kwargs)
    return _mobilenet("mobilenet", model_args, **{**switches, "binary": False})
