"""Real-to-Binary family: the Real-to-Binary net and EL-dagger (Table 3's EL and Real-to-Bin rows).

"EL-dagger refers to including Real-to-Bin (Martinez et al., ICLR 2020) in our
proposed EL networks": the EL nets of `el_larq.zoo.resnet` / `.mobilenet` with
Real-to-Binary's channel gating (`el_larq.real_to_binary.ChannelGating`) on every
binary conv, trained with Real-to-Binary's stages. Every builder takes the stage
switches `binary_weights` and `soft_activations` (`el_larq.layers.el_conv`); the
weights are the same for every setting, so each stage loads the previous one's.

* `r2b_resnet18`: the Real-to-Binary net as larq-zoo's `RealToBinaryNet` builds it
  (half block: BN -> binary 3x3 -> gating -> PReLU -> + shortcut), with the layer
  names of `el_resnet18`; `scaling="static"` gives the strong baseline (XNOR-Net++'s
  learned per-channel scale instead of the gating).
* `r2b_resnet26`, `r2b_resnet50`: the same recipe on the bottleneck nets without EL:
  S-ResNet / Bi-Real bottlenecks (`bireal_resnet26/50`) with gating on every binary
  conv, so that `el_r2b_*` and `r2b_*` differ only in the reduce and expand links.
* `el_r2b_resnet18/26/34/50`, `el_r2b_mobilenet`: EL-dagger.

Every block's output is the layer `stage{s}_block{b}_out` (`block{i}_out` in MobileNet),
as in the float twins `resnet18/26/34/50` and `mobilenet`, so attention matching can map a
student to its teacher by block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from el_larq.layers import BinaryConv2D, _batch_norm
from el_larq.real_to_binary import ChannelGating, LearnedRescale, stage_conv_kwargs

# Modules, not names: the builders' `stem` argument would shadow `_common.stem`.
from el_larq.zoo import _common, resnet
from el_larq.zoo.mobilenet import _build as _build_mobilenet

__all__ = [
    "el_r2b_mobilenet",
    "el_r2b_resnet18",
    "el_r2b_resnet26",
    "el_r2b_resnet34",
    "el_r2b_resnet50",
    "r2b_resnet18",
    "r2b_resnet26",
    "r2b_resnet50",
]

SCALINGS = ("gating", "static")


def _half_block(x: tf.Tensor, filters: int, strides: int, opts: dict, name: str) -> tf.Tensor:
    """Real-to-Binary's half block (its Fig. 1): BN -> binary 3x3 -> scale -> PReLU -> + x.

    The shortcut is the identity, or the Bi-Real downsample (average-pool + float 1x1
    conv + BN) where the conv changes the shape, as in larq-zoo.
    """
    skip = _common.shortcut(x, filters, strides, f"{name}_down")
    conv_input = _batch_norm(f"{name}_input_bn")(x)
    conv = BinaryConv2D(
        filters,
        3,
        strides,
        name=f"{name}_conv",
        **stage_conv_kwargs(opts["binary_weights"], opts["soft_activations"]),
    )
    y = conv(conv_input)
    if opts["scaling"] == "gating":
        y = ChannelGating(opts["gating_reduction"], name=f"{name}_gating")([conv_input, y])
    else:
        y = LearnedRescale(name=f"{name}_rescale")(y)
    y = tf.keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(y)
    return tf.keras.layers.Add(name=f"{name}_add")([y, skip])


def r2b_resnet18(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    scaling: str = "gating",
    gating_reduction: int = 8,
    binary_weights: bool = True,
    soft_activations: bool = False,
) -> tf.keras.Model:
    """The Real-to-Binary net (Martinez et al. 2020; ImageNet top-1 65.4 %, Table 3).

    ResNet18-shaped: a float stem (conv, BN, ReLU, max-pool; a ReLU is harmless here
    because every binary conv normalises its input first), four stages of two blocks,
    each block two half blocks `BN -> binary 3x3 -> scale -> PReLU -> + shortcut`
    named `stage{s}_block{b}_conv1/2`, and the classifier on the last block's output
    (no ReLU before the pool, as larq-zoo's `RealToBinaryNet`).

    # Arguments
        input_shape: `(height, width, channels)`, default `(224, 224, 3)`.
        input_tensor: Optional Keras tensor to use as the model input.
        include_top: Add global average pooling and the softmax classifier.
        weights: `None` or the path of a local weights file (nothing is downloaded).
        num_classes: Classes of the classifier.
        width: Channel multiplier (0.25 gives stage widths 16-32-64-128).
        stem: `"imagenet"` (7x7/2 + max-pool), `"small"` (3x3/1) or `None` (small
            for inputs up to 64 px).
        pooling, classifier_activation, include_preprocessing, preprocessing_mean:
            keras-applications' arguments, as for `el_larq.zoo.el_resnet26`.
        scaling: `"gating"` (Real-to-Binary's data-driven channel rescaling) or
            `"static"` (the strong baseline's learned per-channel scale).
        gating_reduction: The gating's hidden-layer reduction `r`.
        binary_weights: False uses the latent real weights (Real-to-Binary's stage 2).
        soft_activations: `tanh` instead of `sign` on the conv inputs (stage 2).

    # Returns
        A `tf.keras.Model`.

    # Example
        ```python
        model = r2b_resnet18(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    if scaling not in SCALINGS:
        raise ValueError(f"r2b_resnet18(): scaling must be one of {SCALINGS}, got {scaling!r}.")
    opts = dict(
        scaling=scaling,
        gating_reduction=gating_reduction,
        binary_weights=binary_weights,
        soft_activations=soft_activations,
    )

    def body(x, stem_, width_):
        # binary=False: keep the stem's ReLU (see above).
        x = _common.stem(x, _common.scaled(64, width_), stem_, 7, pool=True, binary=False)
        stages = zip(resnet.STAGE_BLOCKS[18], resnet.STAGE_FILTERS, strict=True)
        for stage, (blocks, filters) in enumerate(stages, 1):
            for index in range(blocks):
                name = f"stage{stage}_block{index + 1}"
                strides = 2 if stage > 1 and index == 0 else 1
                channels = _common.scaled(filters, width_)
                x = _half_block(x, channels, strides, opts, f"{name}_conv1")
                x = _half_block(x, channels, 1, opts, f"{name}_conv2")
                x = tf.keras.layers.Activation("linear", name=f"{name}_out")(x)
        return x

    return _common.application(
        "r2b_resnet18", body, head_activation=None, **_common.model_args(locals())
    )


_GATING_WITH_K_DOC = """How gating and XNOR-Net's K (on each block's reduce conv) combine is
    not stated in the paper. Default `"both"`: K and the gate scale the conv output
    along different axes (K per position, from the input's local magnitude; the gate
    per channel, from its global average), so neither replaces the other, and EL-dagger
    is then exactly the EL net plus the gating: EL-dagger vs EL measures the gating
    alone (the overhead report's pair). `"gating_only"` drops K, as Real-to-Binary's
    own nets have no analytic scale (and saves K's float ops)."""


def _bottleneck(depth: int, name: str, defaults: dict, args: dict) -> tf.keras.Model:
    """The zoo's bottleneck ResNet with gating, from a public builder's `locals()`."""
    return resnet._bottleneck(depth, name, {**args, **defaults, "gating": True})


def _basic(depth: int, name: str, args: dict) -> tf.keras.Model:
    """The zoo's basic-block ResNet with gating, from a public builder's `locals()`."""
    return resnet._basic(depth, name, {**args, "gating": True})


_ARGS_DOC = """
    # Arguments
        input_shape, input_tensor, include_top, weights, num_classes, width, stem,
            pooling, classifier_activation, include_preprocessing, preprocessing_mean:
            as for `r2b_resnet18`.
        gating_reduction: The gating's hidden-layer reduction `r`.
        binary_weights: False uses the latent real weights (Real-to-Binary's stage 2).
        soft_activations: `tanh` instead of `sign` on the conv inputs (stage 2)."""
_K_ARG_DOC = """
        gating_with_k: `"both"` or `"gating_only"`, see above."""
_RETURNS_DOC = """

    # Returns
        A `tf.keras.Model`.
"""


def r2b_resnet26(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    gating_reduction: int = 8,
    gating_with_k: str = "both",
    binary_weights: bool = True,
    soft_activations: bool = False,
) -> tf.keras.Model:
    return _bottleneck(26, "r2b_resnet26", resnet._BIREAL, locals())


def r2b_resnet50(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    gating_reduction: int = 8,
    gating_with_k: str = "both",
    binary_weights: bool = True,
    soft_activations: bool = False,
) -> tf.keras.Model:
    return _bottleneck(50, "r2b_resnet50", resnet._BIREAL, locals())


def el_r2b_resnet26(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    gating_reduction: int = 8,
    gating_with_k: str = "both",
    binary_weights: bool = True,
    soft_activations: bool = False,
) -> tf.keras.Model:
    return _bottleneck(26, "el_r2b_resnet26", {}, locals())


def el_r2b_resnet50(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    gating_reduction: int = 8,
    gating_with_k: str = "both",
    binary_weights: bool = True,
    soft_activations: bool = False,
) -> tf.keras.Model:
    return _bottleneck(50, "el_r2b_resnet50", {}, locals())


def el_r2b_resnet18(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    gating_reduction: int = 8,
    binary_weights: bool = True,
    soft_activations: bool = False,
) -> tf.keras.Model:
    return _basic(18, "el_r2b_resnet18", locals())


def el_r2b_resnet34(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    gating_reduction: int = 8,
    binary_weights: bool = True,
    soft_activations: bool = False,
) -> tf.keras.Model:
    return _basic(34, "el_r2b_resnet34", locals())


def el_r2b_mobilenet(
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    weights: str | None = None,
    num_classes: int = 1000,
    width: float = 1.0,
    stem: str | None = None,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = False,
    preprocessing_mean: Sequence[float] | str | None = None,
    gating_reduction: int = 8,
    binary_weights: bool = True,
    soft_activations: bool = False,
) -> tf.keras.Model:
    return _build_mobilenet("el_r2b_mobilenet", {**locals(), "gating": True})


def _document(builder: Any, summary: str, k_switch: bool) -> None:
    example = f"""

    # Example
        ```python
        model = {builder.__name__}(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
"""
    k_doc = f"\n\n    {_GATING_WITH_K_DOC}" if k_switch else ""
    arguments = _ARGS_DOC + (_K_ARG_DOC if k_switch else "")
    builder.__doc__ = summary + k_doc + "\n" + arguments + _RETURNS_DOC.rstrip() + example


_document(
    r2b_resnet26,
    "Real-to-Binary on S-ResNet26: `bireal_resnet26` with gating on every binary conv "
    "(Table 3's Real-to-Bin RN26, 64.8 %).",
    True,
)
_document(
    r2b_resnet50,
    "Real-to-Binary on the Bi-Real bottleneck ResNet50: `bireal_resnet50` with gating on "
    "every binary conv (Table 3's Real-to-Bin RN50, 65.9 %).",
    True,
)
_document(
    el_r2b_resnet26,
    "EL-dagger-ResNet26: `el_resnet26` with gating on every binary conv (67.1 %).",
    True,
)
_document(
    el_r2b_resnet50,
    "EL-dagger-ResNet50: `el_resnet50` with gating on every binary conv (68.9 %).",
    True,
)
_document(
    el_r2b_resnet18,
    "EL-dagger-ResNet18: `el_resnet18` with gating on every binary conv (65.7 %).",
    False,
)
_document(
    el_r2b_resnet34,
    "EL-dagger-ResNet34: `el_resnet34` with gating on every binary conv (66.5 %).",
    False,
)
_document(
    el_r2b_mobilenet,
    "EL-dagger-MobileNet: `el_mobilenet` with gating on every binary depthwise and "
    "pointwise conv (61.2 %).",
    False,
)
