"""ReActNet family: ReActNet-A, ReActNet-C and EL-ReActNet (the EL paper's 71.9 %).

ReActNet (Liu et al., ECCV 2020) is MobileNet-v1-shaped: a float stem (3x3/2 conv and
BN, no activation), 13 blocks with 32, 64, 128 x 2, 256 x 2, 512 x 6, 1024 x 2 channels
in which every depthwise conv of MobileNet is a full binary 3x3 conv, and a float
classifier (global average pool, dense). Every binarization is an `RSign` and every
activation an `RPReLU` (`el_larq.reactnet`); binary weights are `sign(W)` scaled by the
per-output-channel `mean |W|` (larq's `magnitude_aware_sign`, folded by LCE). Two
el-larq conventions differ from ReActNet's code: binary convs pad with +1 (`pad_values=1`,
what LCE accelerates) where ReActNet pads with 0, and their latent weights are clipped to
[-1, 1] after each update (larq's `weight_clip`) where ReActNet leaves them unclipped with
the same zero gradient outside [-1, 1].

* Normal block (C -> C, stride s): RSign -> binary 3x3 (stride s) -> BN -> + the input
  (2x2 average-pooled when s = 2) -> RPReLU = `out1`; RSign -> binary 1x1 -> BN ->
  + `out1` -> RPReLU.
* Reduction block (C -> 2C; the first block and the four strided ones): the same 3x3
  half, then the 1x1 half doubles the channels: two C -> C binary 1x1 convs on the same
  binarized `out1`, each BN'd and added to `out1`, concatenated, RPReLU. The "duplicate
  activation" is that `out1` added to both halves.
* ReActNet-A: every 1x1 conv binary. ReActNet-C: the reduction blocks' 1x1 convs
  real-valued (a float conv on the real-valued `out1`, no RSign), 71.4 % on ImageNet.

Elastic-Link: the EL paper says only that it integrated EL with ReActNet-C "on the
Reduction block by replacing the duplicate activation parts with our EL modules" (71.9 %).
`el_reactnet` reads this as: adding the same `out1` to both halves is an Expand with
gamma fixed at 1, and EL makes it

    y = BN(Conv1x1_{C -> 2C}(x)) + Expand(out1) / gamma,   gamma learnable, init 2 (eq. 5),

with el-larq's `ElasticLink` for `Expand(out1) / gamma`; normal blocks are unchanged (EL
there is the identity shortcut they already have). The switches give the alternatives
a researcher would try: A-style binary 1x1 (`reduction_conv="binary"`), two C -> C convs
instead of one C -> 2C (`reduction_split=True`), gamma frozen (`gamma_trainable=False`),
and EL with a gamma (init 1) also on the normal blocks' 1x1 (`el_normal=True`).

Two C -> C convs on the same binarized input, each with a per-channel BN, compute exactly
what one C -> 2C conv with a BN does: every builder uses the one conv by default
(`reduction_split=False`, one `LceBconv2d` and one RSign threshold per channel, as
ReActNet's one binarization of `out1`); `reduction_split=True` builds the two convs of
ReActNet's code (each binary one with its own RSign).

`binary_weights=False` keeps the latent real-valued weights (no kernel quantizer, no
clip): ReActNet's training step 1 (binary activations, real weights). The weights have
the same names and shapes either way, so step 2 loads step 1's with `load_weights`.
Every block's output layer is named `block{i}_out` (i = 1 ... 13), for distillation.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from el_larq.layers import ElasticLink, el_conv
from el_larq.reactnet import RPReLU, RSign
from el_larq.zoo._common import MODEL_ARGS, application, scaled, stem

__all__ = ["el_reactnet", "reactnet_a", "reactnet_c"]

# Output channels of the stem and the 13 blocks (ReActNet-A at width 1).
CHANNELS = [32, 64, 128, 128, 256, 256] + [512] * 6 + [1024, 1024]
REDUCTION_CONVS = ("binary", "float")


def _conv_args(binary: bool, opts: dict) -> dict:
    """`el_conv` arguments of a 1x1 or 3x3 conv: ReActNet's binary conv, or a float one."""
    if not binary:
        return {"binary": False}
    return {
        "weight_scaling": True,
        "binary_weights": opts["binary_weights"],
        # A fresh RSign for every conv: it owns the thresholds of that conv's input.
        "conv_kwargs": {"input_quantizer": RSign(name="rsign")},
    }


def _link(y: tf.Tensor, x: tf.Tensor, opts: dict, name: str, gamma_on: str) -> tf.Tensor:
    """`y + ElasticLink(x)`, for the links that `el_conv` does not add itself."""
    link = ElasticLink(
        y.shape[-1], gamma_trainable=opts["gamma_trainable"], gamma_on=gamma_on, name=f"{name}_el"
    )(x)
    return tf.keras.layers.Add(name=f"{name}_add")([y, link])


def _normal_1x1(out1: tf.Tensor, opts: dict, name: str) -> tf.Tensor:
    if not opts["el_normal"]:
        return el_conv(out1, out1.shape[-1], 1, name=name, **_conv_args(True, opts))
    y = el_conv(out1, out1.shape[-1], 1, elastic_link=False, name=name, **_conv_args(True, opts))
    return _link(y, out1, opts, name, gamma_on="all")


def _reduction_1x1(out1: tf.Tensor, opts: dict, name: str) -> tf.Tensor:
    """C -> 2C: BN(conv(out1)) plus `out1` twice (ReActNet) or Expand(out1) / gamma (EL).

    ReActNet's "duplicate activation" is an Expand without gamma (`gamma_on="none"`):
    the same CONCATENATION and ADD in the flatbuffer as adding `out1` to each half, and
    counted as a link by `el_larq.summary`, so that FLOPs compare like with like.
    """
    channels = out1.shape[-1]
    binary = opts["reduction_conv"] == "binary"
    link = "squeeze_expand" if opts["el"] else "none"
    if not opts["reduction_split"]:
        y = el_conv(
            out1, 2 * channels, 1, elastic_link=False, name=name, **_conv_args(binary, opts)
        )
        return _link(y, out1, opts, name, gamma_on=link)
    halves = [
        el_conv(
            out1,
            channels,
            1,
            elastic_link=not opts["el"],  # each half + out1: ReActNet's own layout
            name=f"{name}_{half}",
            **_conv_args(binary, opts),
        )
        for half in (1, 2)
    ]
    y = tf.keras.layers.Concatenate(name=f"{name}_concat")(halves)
    return _link(y, out1, opts, name, gamma_on=link) if opts["el"] else y


def _block(x: tf.Tensor, out_channels: int, strides: int, opts: dict, name: str) -> tf.Tensor:
    """One ReActNet block: the 3x3 half, the 1x1 half (normal or reduction), RPReLU each."""
    channels = x.shape[-1]
    y = el_conv(
        x, channels, 3, strides, link_pool="avg", name=f"{name}_3x3", **_conv_args(True, opts)
    )
    out1 = RPReLU(name=f"{name}_3x3_act")(y)
    if out_channels == channels:
        y = _normal_1x1(out1, opts, f"{name}_1x1")
    else:
        y = _reduction_1x1(out1, opts, f"{name}_1x1")
    return RPReLU(name=f"{name}_out")(y)


def _reactnet(
    name: str,
    model_args: dict,
    *,
    binary_weights: bool,
    reduction_conv: str,
    reduction_split: bool,
    el: bool,
    gamma_trainable: bool = True,
    el_normal: bool = False,
) -> tf.keras.Model:
    """The one ReActNet stack builder: stem, 13 blocks, classifier on the last RPReLU."""
    if reduction_conv not in REDUCTION_CONVS:
        raise ValueError(
            f"reduction_conv must be one of {REDUCTION_CONVS}, got {reduction_conv!r}."
        )
    opts = dict(
        binary_weights=bool(binary_weights),
        reduction_conv=reduction_conv,
        reduction_split=bool(reduction_split),
        el=bool(el),
        gamma_trainable=bool(gamma_trainable),
        el_normal=bool(el_normal),
    )

    def body(x, stem_, width):
        first = scaled(CHANNELS[0], width)
        x = stem(x, first, stem_, 3, pool=False, binary=True)
        for index in range(1, len(CHANNELS)):
            reduction = CHANNELS[index] != CHANNELS[index - 1]
            # Every reduction block but the first (32 -> 64) halves the resolution.
            strides = 2 if reduction and index > 1 else 1
            out_channels = x.shape[-1] * (2 if reduction else 1)
            x = _block(x, out_channels, strides, opts, f"block{index}")
        return x

    return application(name, body, head_activation=None, **model_args)


_ARGUMENTS = """
    # Arguments
        input_shape: `(height, width, channels)`, default `(224, 224, 3)`.
        input_tensor: Optional Keras tensor to use as the model input.
        include_top: Add global average pooling and the softmax classifier.
        weights: `None` or the path of a local weights file (nothing is downloaded).
        num_classes: Classes of the classifier.
        width: Channel multiplier (0.25 gives 8-16-32-64-128-256 channels for CPUs).
        stem: `"imagenet"` (3x3/2 conv) or `"small"` (3x3/1 conv), `None` for small on
            inputs up to 64 px; BN and no activation after it either way.
        pooling, classifier_activation, include_preprocessing, preprocessing_mean:
            keras-applications' arguments, as for `el_larq.zoo.el_resnet26`.
        binary_weights: False keeps the latent real-valued weights (ReActNet's training
            step 1); the weights are the same as with True, so step 2 loads them.
        reduction_split: Two C -> C 1x1 convs in the reduction blocks (ReActNet's code)
            instead of the one equivalent C -> 2C conv.
"""
_RETURNS = """
    # Returns
        A `tf.keras.Model`; every block's output layer is `block{i}_out`.
"""


def _documented(extra_arguments: str = ""):
    """Append the arguments every ReActNet builder shares (and its own) to its docstring."""

    def decorate(builder):
        builder.__doc__ = builder.__doc__ + _ARGUMENTS + extra_arguments + _RETURNS
        return builder

    return decorate


def _model_args(values: dict) -> dict:
    """The keras-applications arguments among a builder's `locals()`."""
    return {key: values[key] for key in MODEL_ARGS if key in values}


@_documented()
def reactnet_a(
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
    binary_weights: bool = True,
    reduction_split: bool = False,
) -> tf.keras.Model:
    """ReActNet-A: every conv of the 13 blocks binary (ImageNet top-1 69.4 %).

    The module docstring gives the block structure.

    # Example
        ```python
        model = reactnet_a(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _reactnet(
        "reactnet_a",
        _model_args(locals()),
        binary_weights=binary_weights,
        reduction_conv="binary",
        reduction_split=reduction_split,
        el=False,
    )


@_documented()
def reactnet_c(
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
    binary_weights: bool = True,
    reduction_split: bool = False,
) -> tf.keras.Model:
    """ReActNet-C: ReActNet-A with real-valued 1x1 convs in the reduction blocks (71.4 %).

    The reduction blocks' 1x1 convs are float convs on the real-valued `out1` (no
    RSign); the rest is ReActNet-A. EL-ReActNet's baseline.

    # Example
        ```python
        model = reactnet_c(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _reactnet(
        "reactnet_c",
        _model_args(locals()),
        binary_weights=binary_weights,
        reduction_conv="float",
        reduction_split=reduction_split,
        el=False,
    )


@_documented(
    """        reduction_conv: `"float"` (ReActNet-C style, the paper's) or `"binary"`
            (ReActNet-A style: RSign and a binary 1x1 conv).
        gamma_trainable: Learn the gammas (default) or keep them at their initial value.
        el_normal: Also put a gamma (init 1) on the normal blocks' identity shortcut of
            the 1x1 conv: `BN(BinConv1x1(x)) + out1 / gamma`.
"""
)
def el_reactnet(
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
    binary_weights: bool = True,
    reduction_split: bool = False,
    reduction_conv: str = "float",
    gamma_trainable: bool = True,
    el_normal: bool = False,
) -> tf.keras.Model:
    """EL-ReActNet: ReActNet-C with Elastic-Link in place of the duplicated shortcut (71.9 %).

    The reduction blocks compute `BN(Conv1x1_{C -> 2C}(x)) + Expand(out1) / gamma`
    (gamma learnable, initialised to 2 by eq. 5) instead of adding `out1` to both
    halves; the normal blocks are ReActNet-C's. This is el-larq's reading of the paper's
    one sentence; the module docstring says why, and the switches give the alternatives.

    # Example
        ```python
        model = el_reactnet(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _reactnet(
        "el_reactnet",
        _model_args(locals()),
        binary_weights=binary_weights,
        reduction_conv=reduction_conv,
        reduction_split=reduction_split,
        el=True,
        gamma_trainable=gamma_trainable,
        el_normal=el_normal,
    )
