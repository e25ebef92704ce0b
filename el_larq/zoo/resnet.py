"""ResNet family: EL-ResNet18/26/34/50, Bi-Real / S-ResNet baselines, float twins, ablations.

The public builders, in the style of keras-applications and larq-zoo: explicit
keyword-only signatures with keras-applications' arguments first, then every switch of
the family with its default (so `inspect.signature` and `help` show them all). The
blocks and the stack are in `_resnet_stack`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from el_larq.zoo._common import MODEL_ARGS, model_args
from el_larq.zoo._resnet_stack import (  # noqa: F401  (real_to_binary uses them from here)
    _BIREAL,
    _BIREAL_QUANTIZERS,
    STAGE_BLOCKS,
    STAGE_FILTERS,
    _bottleneck_opts,
    _resnet,
)

__all__ = [
    "bireal_resnet18",
    "bireal_resnet26",
    "bireal_resnet34",
    "bireal_resnet50",
    "el_resnet18",
    "el_resnet26",
    "el_resnet34",
    "el_resnet50",
    "resnet18",
    "resnet26",
    "resnet34",
    "resnet50",
]

_MODEL_DOC = """
    # Arguments
        input_shape: `(height, width, channels)`, default `(224, 224, 3)`.
        input_tensor: Optional Keras tensor to use as the model input.
        include_top: Add global average pooling and the classifier.
        weights: `None` or the path of a local weights file (nothing is downloaded).
        num_classes: Classes of the classifier.
        width: Channel multiplier (0.25 gives stage widths 16-32-64-128 for CPUs).
        stem: `"imagenet"` (7x7/2 + max-pool), `"small"` (3x3/1) or `None` (small
            for inputs up to 64 px).
        pooling: With `include_top=False`: `None` (the last feature map), `"avg"` or
            `"max"` (global pooling to a vector), as in keras-applications.
        classifier_activation: Activation of the classifier (`"softmax"`; `None`
            gives logits).
        include_preprocessing: The model takes raw pixels in [0, 255] and scales them
            itself (`el_larq.zoo.preprocessing`): a deployed `.tflite` needs no
            preprocessing code.
        preprocessing_mean: Per-channel means of the preprocessing, or a dataset name
            (`"fashion_mnist"`); None: ImageNet's for 3 channels, 0.5 otherwise.
"""
_BOTTLENECK_DOC = """\
        binary: False builds the full-precision twin (no links, ReLU, float convs).
        k_reduce, k_spatial, k_expand: XNOR-Net activation scaling K on the reduce
            (1x1), spatial (3x3) or expand (1x1) conv of each block (Table 1).
        el_reduce, el_spatial, el_expand: Elastic-Link on that conv (Table 2).
        residual: Keep the block residual (Table 2's "Id." column).
        gamma_trainable: Learn gamma (Table 2's gamma_l column) or freeze it.
        reduce_conv: `"binary"`, `"float"` (full-precision 1x1) or `"none"` (the
            conv removed; with `el_reduce` this is Table 4's EL-minus).
        weight_scaling: XNOR-Net's alpha on every binary kernel.
        spatial_pool: Pooling of the 3x3 conv's link in strided blocks: `"max"`
            (Elastic-Link, EL_i) or `"avg"` (S-ResNet's Bi-Real shortcut).
        gamma_on: Which links carry a gamma: `"squeeze_expand"` (eq. 5, the default:
            EL-ResNet26 has 15, the first block's 64 -> 64 reduce link being an
            Identity), `"pointwise"` (the link of every 1x1 conv, an Identity one
            initialised to 1: the 16 gammas of the paper's Fig. 4, "all 16 gamma across 8
            EL-Bottleneck blocks"), `"all"` (the 3x3 conv's Identity links too) or `"none"`.
        stride_on: Where a strided block downsamples: `"spatial"` (the 3x3 conv,
            torchvision's ResNet) or `"reduce"` (the reduce 1x1 conv, Caffe's ResNet,
            which the paper's "channel-reduction convolutions in which downsampling
            occurred" implies); a strided 1x1 conv's link max-pools before its Squeeze.
            `"spatial"` is the default because study v2 found no gain from the other
            (docs/design.md §3).
        binary_weights, soft_activations: Real-to-Binary's stage switches on every
            binary conv (`el_larq.layers.el_conv`); the weights are the same for every
            setting.
        gating, gating_reduction: Real-to-Binary's channel gating on every binary
            conv, with hidden-layer reduction `r` (EL-dagger, `el_larq.zoo.real_to_binary`).
        gating_with_k: With gating, `"both"` keeps K where the net has it,
            `"gating_only"` drops it.
"""
_BASIC_DOC = """\
        weight_scaling: XNOR-Net's alpha on every binary kernel.
        binary_weights, soft_activations: Real-to-Binary's stage switches on every
            binary conv (`el_larq.layers.el_conv`); the weights are the same for every
            setting.
        gating, gating_reduction: Real-to-Binary's channel gating on every binary
            conv (EL-dagger, `el_larq.zoo.real_to_binary`).
"""
_RETURNS = """
    # Returns
        A `tf.keras.Model`.
"""


_STRIDE_ON_DOC = """
        stride_on: Where a strided block downsamples, as for `el_resnet26` (a float
            twin matching an EL net built with `stride_on="reduce"`).
"""


def _documented(switches: str = ""):
    """Append the shared argument docs (and the family's switches) to a builder's docstring."""

    def decorate(builder: Callable) -> Callable:
        summary, example = builder.__doc__.split("    # Example", 1)
        arguments = _MODEL_DOC + switches + _RETURNS
        builder.__doc__ = f"{summary.rstrip()}\n{arguments}\n    # Example{example}"
        return builder

    return decorate


def _named(name: str, build: Callable[[], tf.keras.Model]) -> tf.keras.Model:
    """`build()`, with a switch's ValueError naming the public function."""
    try:
        return build()
    except ValueError as error:
        message = str(error)
        named = message if message.startswith(f"{name}()") else f"{name}(): {message}"
        raise ValueError(named) from None


def _bottleneck(depth: int, name: str, args: dict) -> tf.keras.Model:
    """A bottleneck ResNet from a public builder's `locals()`."""
    switches = {key: value for key, value in args.items() if key not in MODEL_ARGS}
    return _named(
        name,
        lambda: _resnet(depth, True, name, model_args(args), **_bottleneck_opts(**switches)),
    )


def _basic(
    depth: int, name: str, args: dict, *, binary: bool = True, conv_kwargs: dict | None = None
) -> tf.keras.Model:
    """A basic-block ResNet from a public builder's `locals()`."""
    switches = {key: value for key, value in args.items() if key not in MODEL_ARGS}
    opts = dict(binary=binary, conv_kwargs=conv_kwargs, weight_scaling=False)
    opts.update(binary_weights=True, soft_activations=False, gating=False, gating_reduction=8)
    opts.update(switches)
    return _named(name, lambda: _resnet(depth, False, name, model_args(args), **opts))


@_documented(_BOTTLENECK_DOC)
def el_resnet26(
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
) -> tf.keras.Model:
    """EL-ResNet26 (Table 2's EL6: K_s, EL on all three convs, residual, learnable
    gamma; ImageNet top-1 64.0 %).

    # Example
        ```python
        model = el_resnet26(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _bottleneck(26, "el_resnet26", locals())


@_documented(_BOTTLENECK_DOC)
def el_resnet50(
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
) -> tf.keras.Model:
    """EL-ResNet50 (EL-Bottleneck, as EL-ResNet26; ImageNet top-1 65.6 %).

    # Example
        ```python
        model = el_resnet50(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _bottleneck(50, "el_resnet50", locals())


@_documented(_BOTTLENECK_DOC)
def bireal_resnet26(
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
    k_reduce: bool = True,
    k_spatial: bool = False,
    k_expand: bool = False,
    el_reduce: bool = False,
    el_spatial: bool = True,
    el_expand: bool = False,
    residual: bool = True,
    gamma_trainable: bool = True,
    reduce_conv: str = "binary",
    weight_scaling: bool = False,
    spatial_pool: str = "avg",
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
    gating_with_k: str = "both",
    gamma_on: str = "squeeze_expand",
    stride_on: str = "spatial",
) -> tf.keras.Model:
    """S-ResNet26 / Bi-Real bottleneck ResNet26: EL-ResNet26 without the reduce and
    expand links (K_s kept; Table 2 baseline, 59.8 %).

    # Example
        ```python
        model = bireal_resnet26(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _bottleneck(26, "bireal_resnet26", locals())


@_documented(_BOTTLENECK_DOC)
def bireal_resnet50(
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
    k_reduce: bool = True,
    k_spatial: bool = False,
    k_expand: bool = False,
    el_reduce: bool = False,
    el_spatial: bool = True,
    el_expand: bool = False,
    residual: bool = True,
    gamma_trainable: bool = True,
    reduce_conv: str = "binary",
    weight_scaling: bool = False,
    spatial_pool: str = "avg",
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
    gating_with_k: str = "both",
    gamma_on: str = "squeeze_expand",
    stride_on: str = "spatial",
) -> tf.keras.Model:
    """Bi-Real bottleneck ResNet50: EL-ResNet50 without the reduce and expand links
    (identical otherwise; the paper's overhead baseline).

    # Example
        ```python
        model = bireal_resnet50(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _bottleneck(50, "bireal_resnet50", locals())


@_documented(_STRIDE_ON_DOC)
def resnet26(
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
    stride_on: str = "spatial",
) -> tf.keras.Model:
    """Full-precision ResNet26 (72.5 %): the bottleneck stack with float convs and ReLUs.

    # Example
        ```python
        model = resnet26(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _bottleneck(26, "resnet26", {**locals(), "binary": False})


@_documented(_STRIDE_ON_DOC)
def resnet50(
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
    stride_on: str = "spatial",
) -> tf.keras.Model:
    """Full-precision ResNet50 (75.9 %).

    # Example
        ```python
        model = resnet50(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _bottleneck(50, "resnet50", {**locals(), "binary": False})


@_documented(_BASIC_DOC)
def el_resnet18(
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
    weight_scaling: bool = False,
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
) -> tf.keras.Model:
    """EL-ResNet18: basic blocks with identity EL (= Bi-Real shortcuts), STE, trained
    from scratch (60.1 %).

    # Example
        ```python
        model = el_resnet18(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _basic(18, "el_resnet18", locals())


@_documented(_BASIC_DOC)
def el_resnet34(
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
    weight_scaling: bool = False,
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
) -> tf.keras.Model:
    """EL-ResNet34 (63.2 %): EL-ResNet18's blocks, [3, 4, 6, 3] per stage.

    # Example
        ```python
        model = el_resnet34(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _basic(34, "el_resnet34", locals())


@_documented(_BASIC_DOC)
def bireal_resnet18(
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
    weight_scaling: bool = False,
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
) -> tf.keras.Model:
    """Bi-Real-ResNet18: EL-ResNet18 with Bi-Real's ApproxSign and magnitude-aware
    weights (56.4 % with Bi-Real's fine-tuning).

    # Example
        ```python
        model = bireal_resnet18(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _basic(18, "bireal_resnet18", locals(), conv_kwargs=_BIREAL_QUANTIZERS)


@_documented(_BASIC_DOC)
def bireal_resnet34(
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
    weight_scaling: bool = False,
    binary_weights: bool = True,
    soft_activations: bool = False,
    gating: bool = False,
    gating_reduction: int = 8,
) -> tf.keras.Model:
    """Bi-Real-ResNet34 (62.2 %).

    # Example
        ```python
        model = bireal_resnet34(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _basic(34, "bireal_resnet34", locals(), conv_kwargs=_BIREAL_QUANTIZERS)


@_documented()
def resnet18(
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
    """Full-precision ResNet18 (69.3 %).

    # Example
        ```python
        model = resnet18(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _basic(18, "resnet18", locals(), binary=False)


@_documented()
def resnet34(
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
    """Full-precision ResNet34 (71.5 %).

    # Example
        ```python
        model = resnet34(input_shape=(32, 32, 3), num_classes=10, width=0.25)
        ```
    """
    return _basic(34, "resnet34", locals(), binary=False)
