"""Model zoo: EL-ResNet18/26/34/50, EL-MobileNet, their baselines and ablations.

Every model is built by one of two stack builders, `_resnet` (basic or
bottleneck blocks) and `_mobilenet`, out of `el_larq.layers.el_conv` units; the
public functions only choose defaults, in the style of keras-applications:

    from el_larq.zoo import el_resnet50
    model = el_resnet50(input_shape=(224, 224, 3), num_classes=1000)

Architecture (DESIGN.md section 3, the paper's "Instantiations" and Fig. 3):

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
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from el_larq.layers import el_conv

# Introspection lives in el_larq.summary (which does not import the zoo); re-exported here
# because zoo users reach for it.
from el_larq.summary import gamma_report, model_summary, plot_gamma_report

__all__ = [
    "MODELS",
    "gamma_report",
    "model_summary",
    "plot_gamma_report",
    "summary_table",
    "bireal_resnet18",
    "bireal_resnet26",
    "bireal_resnet34",
    "bireal_resnet50",
    "binary_mobilenet",
    "el_mobilenet",
    "el_resnet18",
    "el_resnet26",
    "el_resnet34",
    "el_resnet50",
    "get_model",
    "mobilenet",
    "resnet18",
    "resnet26",
    "resnet34",
    "resnet50",
]

STAGE_BLOCKS = {18: [2, 2, 2, 2], 26: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}
STAGE_FILTERS = [64, 128, 256, 512]
BOTTLENECK_EXPANSION = 4
# MobileNet v1: (pointwise filters, depthwise stride) for the 13 separable blocks.
MOBILENET_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
MOBILENET_BLOCKS += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
SMALL_INPUT_MAX = 64
REDUCE_CONV_MODES = ("binary", "float", "none")


def _scaled(channels: int, width: float) -> int:
    """Channels times `width`, rounded to a multiple of 8 (LCE bitpacks in words of 32)."""
    return max(8, int(round(channels * width / 8)) * 8)


def _inputs(input_shape, input_tensor) -> tuple[tf.Tensor, tf.Tensor]:
    if input_tensor is not None:
        if tf.keras.backend.is_keras_tensor(input_tensor):
            return input_tensor, input_tensor
        tensor = tf.keras.Input(tensor=input_tensor)
        return tensor, tensor
    if input_shape is None:
        input_shape = (224, 224, 3)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}.")
    inputs = tf.keras.Input(tuple(input_shape))
    return inputs, inputs


def _pick_stem(stem: str | None, inputs: tf.Tensor) -> str:
    if stem is None:
        sizes = [size for size in inputs.shape[1:3] if size is not None]
        return "small" if sizes and max(sizes) <= SMALL_INPUT_MAX else "imagenet"
    if stem not in ("imagenet", "small"):
        raise ValueError(f"stem must be 'imagenet', 'small' or None (auto), got {stem!r}.")
    return stem


def _stem(
    x: tf.Tensor, filters: int, stem: str, kernel_imagenet: int, pool: bool, binary: bool
) -> tf.Tensor:
    imagenet = stem == "imagenet"
    x = tf.keras.layers.Conv2D(
        filters,
        kernel_imagenet if imagenet else 3,
        strides=2 if imagenet else 1,
        padding="same",
        use_bias=False,
        name="stem_conv",
    )(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem_bn")(x)
    if not binary:
        # Not before a binary net: a ReLU would make every sign of the first binary conv +1.
        x = tf.keras.layers.Activation("relu", name="stem_relu")(x)
    if imagenet and pool:
        x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
    return x


def _head(x, inputs, include_top: bool, num_classes: int, name: str, weights) -> tf.keras.Model:
    x = tf.keras.layers.Activation("relu", name="head_relu")(x)
    if include_top:
        x = tf.keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
        x = tf.keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    model = tf.keras.Model(inputs, x, name=name)
    if weights is not None:
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"weights={weights!r} is not a file. el_larq downloads nothing: pass None or "
                "the path of a weights file saved with model.save_weights / model.save."
            )
        model.load_weights(weights)
    return model


def _downsample(x: tf.Tensor, filters: int, strides: int, name: str) -> tf.Tensor:
    """Bi-Real shortcut: 2x2 average-pool (when strided) + full-precision 1x1 conv + BN."""
    if strides > 1:
        x = tf.keras.layers.AveragePooling2D(strides, strides, padding="same", name=f"{name}_pool")(
            x
        )
    x = tf.keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def _shortcut(x: tf.Tensor, filters: int, strides: int, name: str) -> tf.Tensor:
    if strides == 1 and x.shape[-1] == filters:
        return x
    return _downsample(x, filters, strides, name)


def _bottleneck_block(x: tf.Tensor, filters: int, strides: int, opts: dict, name: str):
    """EL-Bottleneck (Fig. 3 left): reduce 1x1, spatial 3x3, expand 1x1, block residual."""
    out_filters = filters * BOTTLENECK_EXPANSION
    shortcut = _shortcut(x, out_filters, strides, f"{name}_down") if opts["residual"] else None

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
            activation=None if opts["binary"] or last else "relu",
            name=f"{name}_{position}",
        )

    y = unit(x, "reduce", filters, 1)
    y = unit(y, "spatial", filters, 3, strides)
    y = unit(y, "expand", out_filters, 1, last=True)
    if shortcut is not None:
        y = tf.keras.layers.Add(name=f"{name}_residual")([y, shortcut])
    if not opts["binary"]:
        y = tf.keras.layers.Activation("relu", name=f"{name}_out")(y)
    return y


def _basic_unit(x: tf.Tensor, filters: int, strides: int, opts: dict, name: str) -> tf.Tensor:
    """One binary 3x3 conv of a basic block with its Bi-Real shortcut.

    Where the conv keeps the shape the shortcut is an identity Elastic-Link; where it
    changes shape it is the full-precision downsample shortcut (Bi-Real Net, DESIGN.md 3).
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
        name=name,
    )
    if reshaping:
        shortcut = _downsample(x, filters, strides, f"{name}_down")
        y = tf.keras.layers.Add(name=f"{name}_residual")([y, shortcut])
    return y


def _basic_block(x: tf.Tensor, filters: int, strides: int, opts: dict, name: str):
    """Basic block. Binary: two 3x3 units, each with its own shortcut (Bi-Real Net).

    Full precision: the classic block, conv-BN-ReLU, conv-BN, + residual, ReLU.
    """
    if opts["binary"]:
        y = _basic_unit(x, filters, strides, opts, f"{name}_conv1")
        return _basic_unit(y, filters, 1, opts, f"{name}_conv2")
    shortcut = _shortcut(x, filters, strides, f"{name}_down")
    fp = dict(binary=False, elastic_link=False)
    y = el_conv(x, filters, 3, strides, activation="relu", name=f"{name}_conv1", **fp)
    y = el_conv(y, filters, 3, name=f"{name}_conv2", **fp)
    y = tf.keras.layers.Add(name=f"{name}_residual")([y, shortcut])
    return tf.keras.layers.Activation("relu", name=f"{name}_out")(y)


def _application(
    name: str,
    body: Callable[[tf.keras.layers.Layer, str, float], tf.Tensor],
    *,
    input_shape=None,
    input_tensor=None,
    include_top: bool = True,
    num_classes: int = 1000,
    weights: str | None = None,
    width: float = 1.0,
    stem: str | None = None,
) -> tf.keras.Model:
    """The keras-applications scaffolding around a stack: input, `body`, head, weights."""
    inputs, x = _inputs(input_shape, input_tensor)
    return _head(
        body(x, _pick_stem(stem, x), width), inputs, include_top, num_classes, name, weights
    )


def _resnet(depth: int, bottleneck: bool, name: str, model_args: dict, **opts: Any):
    """The one ResNet stack builder: stem, four stages of blocks, classifier."""
    block = _bottleneck_block if bottleneck else _basic_block

    def body(x, stem, width):
        x = _stem(x, _scaled(64, width), stem, 7, pool=True, binary=opts["binary"])
        stages = zip(STAGE_BLOCKS[depth], STAGE_FILTERS, strict=True)
        for stage, (blocks, filters) in enumerate(stages, 1):
            for index in range(blocks):
                strides = 2 if stage > 1 and index == 0 else 1
                name_ = f"stage{stage}_block{index + 1}"
                x = block(x, _scaled(filters, width), strides, opts, name_)
        return x

    return _application(name, body, **model_args)


def _mobilenet(
    name: str,
    model_args: dict,
    binary: bool = True,
    el_depthwise: bool = True,
    el_pointwise: bool = True,
    gamma_trainable: bool = True,
    relu_position: str = "after_sum",
    input_norm: bool = True,
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

    def body(x, stem, width):
        x = _stem(x, _scaled(32, width), stem, 3, pool=False, binary=binary)
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
                _scaled(filters, width),
                1,
                elastic_link=link,
                name=f"block{index}_pointwise",
                **unit,
            )
        return x

    return _application(name, body, **model_args)


def _split_model_args(kwargs: dict) -> tuple[dict, dict]:
    """(keras-applications arguments, stack switches) of a builder's keyword arguments."""
    model_args = {k: kwargs.pop(k) for k in list(kwargs) if k in _MODEL_ARGS}
    return model_args, kwargs


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
) -> dict:
    if reduce_conv not in REDUCE_CONV_MODES:
        raise ValueError(f"reduce_conv must be one of {REDUCE_CONV_MODES}, got {reduce_conv!r}.")
    if reduce_conv == "none" and not el_reduce:
        raise ValueError("reduce_conv='none' (EL-minus) keeps only the link: needs el_reduce=True.")
    if not binary:  # full-precision twin: plain ResNet, no links, no scaling
        k_reduce = k_spatial = k_expand = el_reduce = el_spatial = el_expand = False
        weight_scaling = False
    return dict(locals())


_BOTTLENECK_DOC = """
    # Arguments
        input_shape: `(height, width, channels)`, default `(224, 224, 3)`.
        input_tensor: Optional Keras tensor to use as the model input.
        include_top: Add global average pooling and the softmax classifier.
        num_classes: Classes of the classifier.
        weights: `None` or the path of a local weights file (nothing is downloaded).
        width: Channel multiplier (0.25 gives stage widths 16-32-64-128 for CPUs).
        stem: `"imagenet"` (7x7/2 + max-pool), `"small"` (3x3/1) or `None` (small
            for inputs up to 64 px).
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

    # Returns
        A `tf.keras.Model`.
"""


def _bottleneck_model(depth: int, name: str, defaults: dict, doc: str) -> Callable:
    def builder(**kwargs: Any) -> tf.keras.Model:
        model_args, switches = _split_model_args(kwargs)
        opts = _bottleneck_opts(**{**defaults, **switches})
        return _resnet(depth, True, name, model_args, **opts)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc + _BOTTLENECK_DOC
    return builder


_MODEL_ARGS = (
    "input_shape",
    "input_tensor",
    "include_top",
    "num_classes",
    "weights",
    "width",
    "stem",
)
# S-ResNet: a Bi-Real (average-pooled identity) shortcut on the 3x3 conv only.
_BIREAL = dict(el_reduce=False, el_expand=False, spatial_pool="avg")

el_resnet26 = _bottleneck_model(
    26,
    "el_resnet26",
    {},
    "EL-ResNet26 (Table 2's EL6: K_s, EL on all three convs, residual, "
    "learnable gamma; ImageNet top-1 64.0 %).",
)
el_resnet50 = _bottleneck_model(
    50, "el_resnet50", {}, "EL-ResNet50 (EL-Bottleneck, as EL-ResNet26; ImageNet top-1 65.6 %)."
)
bireal_resnet26 = _bottleneck_model(
    26,
    "bireal_resnet26",
    _BIREAL,
    "S-ResNet26 / Bi-Real bottleneck ResNet26: EL-ResNet26 without "
    "the reduce and expand links (K_s kept; Table 2 baseline, 59.8 %).",
)
bireal_resnet50 = _bottleneck_model(
    50,
    "bireal_resnet50",
    _BIREAL,
    "Bi-Real bottleneck ResNet50: EL-ResNet50 without the reduce "
    "and expand links (identical otherwise; the paper's overhead baseline).",
)
resnet26 = _bottleneck_model(26, "resnet26", {"binary": False}, "Full-precision ResNet26 (72.5 %).")
resnet50 = _bottleneck_model(50, "resnet50", {"binary": False}, "Full-precision ResNet50 (75.9 %).")

_BASIC_DOC = """
    # Arguments
        input_shape, input_tensor, include_top, num_classes, weights, width, stem:
            as for `el_resnet26`.
        weight_scaling: XNOR-Net's alpha on every binary kernel.

    # Returns
        A `tf.keras.Model`.
"""
_BIREAL_QUANTIZERS = {"input_quantizer": "approx_sign", "kernel_quantizer": "magnitude_aware_sign"}


def _basic_model(depth: int, name: str, binary: bool, conv_kwargs: dict | None, doc: str):
    def builder(weight_scaling: bool = False, **kwargs: Any) -> tf.keras.Model:
        model_args, unknown = _split_model_args(kwargs)
        if unknown:
            raise TypeError(f"{name}() got unexpected keyword arguments {sorted(unknown)}")
        opts = dict(binary=binary, weight_scaling=weight_scaling, conv_kwargs=conv_kwargs)
        return _resnet(depth, False, name, model_args, **opts)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc + _BASIC_DOC
    return builder


el_resnet18 = _basic_model(
    18,
    "el_resnet18",
    True,
    None,
    "EL-ResNet18: basic blocks with "
    "identity EL (= Bi-Real shortcuts), STE, trained from scratch (60.1 %).",
)
el_resnet34 = _basic_model(34, "el_resnet34", True, None, "EL-ResNet34 (63.2 %).")
bireal_resnet18 = _basic_model(
    18,
    "bireal_resnet18",
    True,
    _BIREAL_QUANTIZERS,
    "Bi-Real-ResNet18: "
    "the same net with Bi-Real's ApproxSign and magnitude-aware "
    "weights (56.4 % with Bi-Real's fine-tuning).",
)
bireal_resnet34 = _basic_model(
    34, "bireal_resnet34", True, _BIREAL_QUANTIZERS, "Bi-Real-ResNet34 (62.2 %)."
)
resnet18 = _basic_model(18, "resnet18", False, None, "Full-precision ResNet18 (69.3 %).")
resnet34 = _basic_model(34, "resnet34", False, None, "Full-precision ResNet34 (71.5 %).")


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

    # Returns
        A `tf.keras.Model`.

    # Example
        ```python
        model = el_mobilenet(input_shape=(28, 28, 1), num_classes=10, width=0.25)
        ```
    """
    model_args, switches = _split_model_args(kwargs)
    return _mobilenet("el_mobilenet", model_args, **switches)


def binary_mobilenet(**kwargs: Any) -> tf.keras.Model:
    """Binarized MobileNet without EL on the pointwise convs (the paper: does not converge).

    As the paper's attempt, the depthwise convs keep their identity shortcut; it is
    `el_mobilenet(el_pointwise=False)`, so the two differ only in the pointwise links.
    Arguments as `el_mobilenet`.
    """
    model_args, switches = _split_model_args(kwargs)
    switches = {"el_pointwise": False, **switches}
    return _mobilenet("binary_mobilenet", model_args, **switches)


def mobilenet(**kwargs: Any) -> tf.keras.Model:
    """Full-precision MobileNet v1 (70.6 %). Arguments as `el_mobilenet`."""
    model_args, switches = _split_model_args(kwargs)
    return _mobilenet("mobilenet", model_args, **{**switches, "binary": False})


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
    )
}


def get_model(name: str, **kwargs: Any) -> tf.keras.Model:
    """Build the zoo model `name` with builder keyword arguments `kwargs`.

    # Arguments
        name: A key of `MODELS`, e.g. `"el_resnet26"`.
        **kwargs: Passed to the builder (`input_shape`, `num_classes`, `width`, switches).

    # Returns
        A `tf.keras.Model`.

    # Raises
        ValueError: `name` is not a zoo model (the message lists the valid names).

    # Example
        ```python
        model = get_model("el_resnet26", input_shape=(28, 28, 1), num_classes=10, width=0.25)
        ```
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Valid models: {', '.join(sorted(MODELS))}.")
    return MODELS[name](**kwargs)


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
