"""The ResNet stack of `resnet.py` and `real_to_binary.py`: blocks, stages, switches.

One stack builder, `_resnet`, with basic or bottleneck blocks out of
`el_larq.layers.el_conv` units; the public functions only choose defaults.

* Bottleneck block (ResNet26 = [2, 2, 2, 2], ResNet50 = [3, 4, 6, 3]):
  reduce 1x1 -> spatial 3x3 (strided) -> expand 1x1 (x4), each an `el_conv`
  unit, plus the block residual. Basic block (ResNet18 = [2, 2, 2, 2],
  ResNet34 = [3, 4, 6, 3]): two 3x3 units, each with its own shortcut as in
  Bi-Real Net (an identity Elastic-Link, or the downsample shortcut where the
  conv changes shape); EL reduces to exactly that, so there is no gamma.
* Downsample shortcut (first block of a stage): 2x2 average-pool (stride 2,
  "same") + full-precision 1x1 conv + BN, in place of the strided 1x1 conv.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from el_larq.layers import GAMMA_ON, el_conv
from el_larq.zoo._common import application, downsample, scaled, shortcut, stem

STAGE_BLOCKS = {18: [2, 2, 2, 2], 26: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}
STAGE_FILTERS = [64, 128, 256, 512]
BOTTLENECK_EXPANSION = 4
REDUCE_CONV_MODES = ("binary", "float", "none")
GATING_WITH_K = ("both", "gating_only")
STRIDE_ON = ("spatial", "reduce")
# A bottleneck's `gamma_on`: ElasticLink's values, plus "pointwise": a gamma on the link of
# every 1x1 conv (the reduce and expand convs, Identity or not) and none on the 3x3 conv's.
BOTTLENECK_GAMMA_ON = (*GAMMA_ON, "pointwise")


def _unit_gamma_on(gamma_on: str, position: str) -> str:
    if gamma_on == "pointwise":
        return "squeeze_expand" if position == "spatial" else "all"
    return gamma_on


def _bottleneck_block(x: tf.Tensor, filters: int, strides: int, opts: dict, name: str):
    """EL-Bottleneck (Fig. 3 left): reduce 1x1, spatial 3x3, expand 1x1, block residual."""
    out_filters = filters * BOTTLENECK_EXPANSION
    skip = shortcut(x, out_filters, strides, f"{name}_down") if opts["residual"] else None

    # Where the block downsamples: on the 3x3 conv (torchvision) or on the reduce 1x1
    # conv (Caffe ResNet, the paper's "channel-reduction convolutions in which
    # downsampling occurred"); a strided link max-pools before its Squeeze.
    stride_at = {"reduce": 1, "spatial": 1, "expand": 1, opts["stride_on"]: strides}

    def unit(y, position: str, channels: int, kernel: int, stride: int = 1, last=False):
        # The reduce conv alone can be float or absent (Table 4); switches are per position.
        mode = opts["reduce_conv"] if position == "reduce" else "binary"
        binary = opts["binary"] and mode == "binary"
        return el_conv(
            y,
            channels,
            kernel,
            stride,
            binary=binary,
            conv=mode != "none",
            elastic_link=opts[f"el_{position}"],
            activation_scaling=binary and opts[f"k_{position}"],
            weight_scaling=binary and opts["weight_scaling"],
            gamma_trainable=opts["gamma_trainable"],
            link_pool=opts["spatial_pool"] if position == "spatial" else "max",
            gamma_on=_unit_gamma_on(opts["gamma_on"], position),
            activation=None if opts["binary"] or last else "relu",
            **_stage_and_gating(opts, binary),
            name=f"{name}_{position}",
        )

    y = unit(x, "reduce", filters, 1, stride_at["reduce"])
    y = unit(y, "spatial", filters, 3, stride_at["spatial"])
    y = unit(y, "expand", out_filters, 1, stride_at["expand"], last=True)
    if skip is not None:
        y = tf.keras.layers.Add(name=f"{name}_residual")([y, skip])
    return _block_out(y, opts["binary"], name)


def _block_out(y: tf.Tensor, binary: bool, name: str) -> tf.Tensor:
    """Every block's output is the layer `{name}_out`, so that attention matching maps a
    binary student's blocks to its float twin's (an identity in a binary net)."""
    return tf.keras.layers.Activation("linear" if binary else "relu", name=f"{name}_out")(y)


def _stage_and_gating(opts: dict, binary: bool) -> dict:
    """`el_conv`'s Real-to-Binary switches for one unit (gating on binary convs only)."""
    return dict(
        binary_weights=opts["binary_weights"],
        soft_activations=opts["soft_activations"],
        gating=binary and opts["gating"],
        gating_reduction=opts["gating_reduction"],
    )


def _basic_unit(x: tf.Tensor, filters: int, strides: int, opts: dict, name: str) -> tf.Tensor:
    """One binary 3x3 conv of a basic block with its Bi-Real shortcut.

    Where the conv keeps the shape the shortcut is an identity Elastic-Link; where it
    changes shape it is the full-precision downsample shortcut (Bi-Real Net, docs/design.md §3).
    """
    reshaping = strides > 1 or x.shape[-1] != filters
    y = el_conv(
        x,
        filters,
        3,
        strides,
        elastic_link=not reshaping,
        weight_scaling=opts["weight_scaling"],
        conv_kwargs=opts["conv_kwargs"],
        **_stage_and_gating(opts, True),
        name=name,
    )
    if reshaping:
        skip = downsample(x, filters, strides, f"{name}_down")
        y = tf.keras.layers.Add(name=f"{name}_residual")([y, skip])
    return y


def _basic_block(x: tf.Tensor, filters: int, strides: int, opts: dict, name: str):
    """Basic block. Binary: two 3x3 units, each with its own shortcut (Bi-Real Net).

    Full precision: the classic block, conv-BN-ReLU, conv-BN, + residual, ReLU.
    """
    if opts["binary"]:
        y = _basic_unit(x, filters, strides, opts, f"{name}_conv1")
        return _block_out(_basic_unit(y, filters, 1, opts, f"{name}_conv2"), True, name)
    skip = shortcut(x, filters, strides, f"{name}_down")
    fp = dict(binary=False, elastic_link=False)
    y = el_conv(x, filters, 3, strides, activation="relu", name=f"{name}_conv1", **fp)
    y = el_conv(y, filters, 3, name=f"{name}_conv2", **fp)
    y = tf.keras.layers.Add(name=f"{name}_residual")([y, skip])
    return _block_out(y, False, name)


def _resnet(depth: int, bottleneck: bool, name: str, model_args: dict, **opts: Any):
    """The one ResNet stack builder: stem, four stages of blocks, classifier."""
    block = _bottleneck_block if bottleneck else _basic_block

    def body(x, stem_, width):
        x = stem(x, scaled(64, width), stem_, 7, pool=True, binary=opts["binary"])
        stages = zip(STAGE_BLOCKS[depth], STAGE_FILTERS, strict=True)
        for stage, (blocks, filters) in enumerate(stages, 1):
            for index in range(blocks):
                strides = 2 if stage > 1 and index == 0 else 1
                name_ = f"stage{stage}_block{index + 1}"
                x = block(x, scaled(filters, width), strides, opts, name_)
        return x

    return application(name, body, **model_args)


def _bottleneck_opts(
    binary: bool = True,
    k_reduce: bool = True,
    k_spatial: bool = False,
    k_expand: bool = False,
    el_reduce: bool = True,
    el_spatial: bool = True,
    el_expand: bool = True,
    residual: bool = True,
    gamma_trainable: bool = True,
    reduce_conv: str = "binary",
    weight_scaling: bool = False,
    spatial_pool: str = "max",
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
    gating_with_k: str = "both",
    gamma_on: str = "squeeze_expand",
    stride_on: str = "spatial",
) -> dict:
    if stride_on not in STRIDE_ON:
        raise ValueError(f"stride_on must be one of {STRIDE_ON}, got {stride_on!r}.")
    if gamma_on not in BOTTLENECK_GAMMA_ON:
        raise ValueError(f"gamma_on must be one of {BOTTLENECK_GAMMA_ON}, got {gamma_on!r}.")
    if gating_with_k not in GATING_WITH_K:
        raise ValueError(f"gating_with_k must be one of {GATING_WITH_K}, got {gating_with_k!r}.")
    if gating and gating_with_k == "gating_only":  # the gates replace K
        k_reduce = k_spatial = k_expand = False
    if reduce_conv not in REDUCE_CONV_MODES:
        raise ValueError(f"reduce_conv must be one of {REDUCE_CONV_MODES}, got {reduce_conv!r}.")
    if reduce_conv == "none" and not el_reduce:
        raise ValueError("reduce_conv='none' (EL-minus) keeps only the link: needs el_reduce=True.")
    if not binary:  # full-precision twin: plain ResNet, no links, no scaling
        k_reduce = k_spatial = k_expand = el_reduce = el_spatial = el_expand = False
        weight_scaling = False
    return dict(locals())


# Bi-Real baselines: EL-ResNet without the reduce/expand links, Bi-Real's pooled shortcut.
_BIREAL = dict(el_reduce=False, el_expand=False, spatial_pool="avg")
_BIREAL_QUANTIZERS = {"input_quantizer": "approx_sign", "kernel_quantizer": "magnitude_aware_sign"}
