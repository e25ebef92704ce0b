"""`elasticize`: turn a float Keras CNN into a binarized Elastic-Link network in one call.

The paper says EL "is applicable to any architecture without structural limitations";
this module makes that usable for any functional or Sequential `tf.keras.Model`
(keras-applications models included). It walks the model's functional graph node by
node and rebuilds it: every eligible convolution becomes the zoo's Elastic-Link unit
(`el_larq.layers.el_conv`), every other layer is a clone of the original.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import tensorflow as tf

from el_larq.layers import (
    GAMMA_ON,
    BinaryConv2D,
    BinaryDepthwiseConv2D,
    ElasticLink,
    same_padding,
)

__all__ = [
    "OPTIONS",
    "ElasticizeError",
    "ElasticizeReport",
    "LayerChange",
    "check_options",
    "elasticize",
]

# Layers whose output is >= 0 whatever their input: a sign after them is always +1.
NON_NEGATIVE_ACTIVATIONS = ("relu", "relu6", "sigmoid", "hard_sigmoid", "softmax", "exponential")
# Layers that keep "every value >= 0" when all their inputs have it.
_PASS_THROUGH = (
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.ZeroPadding2D,
    tf.keras.layers.Dropout,
    tf.keras.layers.SpatialDropout2D,
    tf.keras.layers.Concatenate,
    tf.keras.layers.Add,
    tf.keras.layers.Multiply,
    tf.keras.layers.Reshape,
)
_WEIGHTED = (tf.keras.layers.Dense,)


class ElasticizeError(ValueError):
    """A model or a layer that `elasticize` cannot rewrite; the message names it and why."""


# The keyword options of `elasticize` that a recipe or a command line may set (JSON
# values: layer names, not predicates), and what each must be.
OPTIONS = {
    "elastic_link": "true or false",
    "keep_float": "a list of layer names",
    "activation_scaling": "true, false or a list of layer names",
    "gamma_trainable": "true or false",
    "gamma_on": f"one of {', '.join(GAMMA_ON)}",
}


def check_options(options: Any) -> dict[str, Any]:
    """Check `elasticize` options given as data (a recipe's, a command line's).

    # Arguments
        options: A mapping of `OPTIONS` keys to JSON values.

    # Returns
        `options`, for chaining.

    # Raises
        ElasticizeError: one line naming the bad key or value.

    # Example
        ```python
        elasticize(model, **check_options({"elastic_link": False}))
        ```
    """
    if not isinstance(options, dict):
        raise ElasticizeError(f"elasticize options must be a mapping, got {options!r}.")

    def names(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(name, str) for name in value)

    valid = {
        "elastic_link": lambda v: isinstance(v, bool),
        "keep_float": names,
        "activation_scaling": lambda v: isinstance(v, bool) or names(v),
        "gamma_trainable": lambda v: isinstance(v, bool),
        "gamma_on": lambda v: v in GAMMA_ON,
    }
    for key, value in options.items():
        if key not in OPTIONS:
            raise ElasticizeError(
                f"unknown elasticize option {key!r}; valid: {', '.join(OPTIONS)}."
            )
        if not valid[key](value):
            raise ElasticizeError(f"elasticize option {key} must be {OPTIONS[key]}, got {value!r}.")
    return options


@dataclasses.dataclass
class LayerChange:
    """What `elasticize` did with one layer of the float model.

    `action` is `"binarized"`, `"kept float"`, `"absorbed"` (a BatchNorm or padding
    that became part of a binarized conv's unit) or `"unchanged"` (any other layer);
    `link` is the Elastic-Link kind (`"identity"`, `"squeeze"`, `"expand"`, `"none"`,
    or `""` for layers that are not binarized); `gamma` the link's initial gamma (None:
    no gamma); `reason` why, in words.
    """

    name: str
    layer_type: str
    action: str
    link: str = ""
    gamma: float | None = None
    reason: str = ""


@dataclasses.dataclass
class ElasticizeReport:
    """Every layer of the float model and what became of it; `print(report)` is a table.

    # Example
        ```python
        binary, report = elasticize(model)
        print(report)
        print(report.counts())
        ```
    """

    rows: list[LayerChange]

    def counts(self) -> dict[str, int]:
        """Number of layers per `action`."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.action] = counts.get(row.action, 0) + 1
        return counts

    def binarized(self) -> list[str]:
        """Names of the float model's layers that were binarized."""
        return [row.name for row in self.rows if row.action == "binarized"]

    def __str__(self) -> str:
        header = ("layer", "type", "action", "link", "gamma", "reason")
        table = [header] + [
            (
                row.name,
                row.layer_type,
                row.action,
                row.link,
                "" if row.gamma is None else f"{row.gamma:g}",
                row.reason,
            )
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
            + "  "
            + line[-1]
            for line in table
        ]
        lines.insert(1, "-" * len(lines[0]))
        summary = ", ".join(f"{n} {action}" for action, n in self.counts().items())
        return "\n".join(lines + [summary])


@dataclasses.dataclass
class _Plan:
    """How one convolution node is rewritten (decided before anything is built)."""

    kind: str  # "conv", "depthwise" or "separable"
    source: Any  # the KerasTensor the binary conv and its link read
    padding_layer: Any = None  # a ZeroPadding2D folded into "same" padding, or kept:
    explicit_padding: Any = None  # its padding, when it is not "same"'s (a "valid" conv)
    batch_norm: Any = None  # the float model's BatchNormalization reused after the conv
    input_norm: bool = False
    activation_scaling: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)


def _matches(selector: Any, layer: tf.keras.layers.Layer) -> bool:
    if callable(selector):
        return bool(selector(layer))
    return bool(selector) and (selector is True or layer.name in selector)


def _check_names(model: tf.keras.Model, what: str, selector: Any) -> Any:
    if selector is None or isinstance(selector, bool) or callable(selector):
        return selector
    if isinstance(selector, str):
        selector = [selector]
    names = {layer.name for layer in model.layers}
    missing = [name for name in selector if name not in names]
    if missing:
        raise ElasticizeError(
            f"elasticize(): {what} names {missing!r}, which model {model.name!r} has no "
            "layer called."
        )
    return frozenset(selector)


def _producer(tensor: Any) -> tuple[tf.keras.layers.Layer, Any]:
    layer, node_index, _ = tensor._keras_history
    return layer, layer._inbound_nodes[node_index]


def _activation_name(layer: tf.keras.layers.Layer) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation)) if activation else "linear"


def _non_negative(tensor: Any, memo: dict[int, bool]) -> bool:
    """Whether every value of `tensor` is >= 0 however the float model's weights are set."""
    key = id(tensor)
    if key not in memo:
        layer, node = _producer(tensor)
        if isinstance(layer, tf.keras.layers.ReLU):
            result = not layer.negative_slope and float(layer.threshold) >= 0
        elif isinstance(layer, _PASS_THROUGH):
            result = all(_non_negative(t, memo) for t in node.keras_inputs)
        elif _activation_name(layer) in NON_NEGATIVE_ACTIVATIONS:
            result = True  # an Activation layer, or a conv/dense with a built-in one
        else:
            result = False
        memo[key] = result
    return memo[key]


class _Graph:
    """The float model's nodes in topological order, with consumers and conv positions."""

    def __init__(self, model: tf.keras.Model) -> None:
        if not isinstance(model, tf.keras.Model):
            raise ElasticizeError(
                f"elasticize(): expects a tf.keras.Model, got {type(model).__name__}."
            )
        if not getattr(model, "_is_graph_network", False):
            raise ElasticizeError(
                f"elasticize(): model {model.name!r} ({type(model).__name__}) is not a "
                "functional or Sequential model with known inputs (a subclassed model, or a "
                "Sequential model without an Input): its layers cannot be rewired."
            )
        self.model = model
        self.nodes = [
            node
            for depth in sorted(model._nodes_by_depth, reverse=True)
            for node in model._nodes_by_depth[depth]
            if not isinstance(node.layer, tf.keras.layers.InputLayer)
        ]
        for node in self.nodes:
            if isinstance(node.layer, tf.keras.Model):
                raise ElasticizeError(
                    f"elasticize(): layer {node.layer.name!r} is a nested model; elasticize "
                    "rewrites flat graphs only (build the model from the sub-model's layers)."
                )
        self.consumers: dict[int, list[Any]] = {}
        for node in self.nodes:
            for tensor in node.keras_inputs:
                self.consumers.setdefault(id(tensor), []).append(node)
        for tensor in model.outputs:  # a model output counts as a consumer
            self.consumers.setdefault(id(tensor), []).append(None)
        self.weighted_before = self._weighted(self.nodes, lambda n: n.keras_inputs, self._source)
        self.weighted_after = self._weighted(
            self.nodes[::-1], lambda n: tf.nest.flatten(n.outputs), self._users
        )

    def _source(self, tensor: Any) -> list[Any]:
        layer, node = _producer(tensor)
        return [] if isinstance(layer, tf.keras.layers.InputLayer) else [node]

    def _users(self, tensor: Any) -> list[Any]:
        return [node for node in self.consumers.get(id(tensor), []) if node is not None]

    @staticmethod
    def _weighted(order, tensors, neighbours) -> dict[int, bool]:
        """Per node: is a conv or dense layer on some path before (or after) it?"""
        result: dict[int, bool] = {}
        for node in order:
            result[id(node)] = any(
                isinstance(other.layer, _CONV_TYPES + _WEIGHTED) or result.get(id(other), False)
                for tensor in tensors(node)
                for other in neighbours(tensor)
            )
        return result

    def sole_consumer(self, tensor: Any) -> Any:
        users = self.consumers.get(id(tensor), [])
        return users[0] if len(users) == 1 else None


_CONV_TYPES = (tf.keras.layers.Conv1D, tf.keras.layers.Conv2D, tf.keras.layers.Conv3D)
_CONV_TYPES += (tf.keras.layers.DepthwiseConv2D, tf.keras.layers.SeparableConv2D)
_KINDS = {
    tf.keras.layers.Conv2D: "conv",
    tf.keras.layers.DepthwiseConv2D: "depthwise",
    tf.keras.layers.SeparableConv2D: "separable",
}


def _same_shape(tensor: Any, strides: int) -> tuple:
    return tuple(None if s is None else -(-s // strides) for s in tensor.shape[1:3])


def _same_padding(tensor: Any, conv: tf.keras.layers.Layer) -> tuple:
    """((top, bottom), (left, right)): what `"same"` pads on `tensor` for `conv`."""
    return tuple(
        same_padding(
            tensor.shape[1 + axis],
            conv.kernel_size[axis],
            conv.strides[axis],
            conv.dilation_rate[axis],
        )
        for axis in range(2)
    )


def _plan(graph: _Graph, node: Any, keep_float: Any, scaling: Any, memo: dict) -> _Plan | str:
    """The rewrite of one conv node, or the reason it stays float."""
    layer = node.layer
    kind = _KINDS.get(type(layer))
    if kind is None:
        return f"{type(layer).__name__} is not a 2D convolution elasticize binarizes"
    if _matches(keep_float, layer):
        return "named in keep_float"
    if not graph.weighted_before[id(node)]:
        return "first convolution (stem): its input is the image"
    if not graph.weighted_after[id(node)]:
        return "output layer (classifier): no convolution or dense layer after it"
    if len(layer._inbound_nodes) != 1:
        return "shared layer (called more than once)"
    if layer.data_format != "channels_last":
        return "channels_first data format (LCE runs channels_last)"
    if getattr(layer, "groups", 1) != 1:
        return f"grouped convolution (groups={layer.groups}): kept float"
    strides = tuple(layer.strides)
    if strides[0] != strides[1]:
        return f"unequal strides {strides}: the max-pooled link needs a square stride"
    if tuple(layer.dilation_rate) != (1, 1) and strides != (1, 1):
        return "dilated and strided"
    source = node.keras_inputs[0]
    output = tf.nest.flatten(node.outputs)[0]
    plan = _Plan(kind, source)
    if layer.padding == "valid" and tuple(layer.kernel_size) != (1, 1):
        # keras-applications pad explicitly and then convolve "valid" (MobileNetV2's
        # correct_pad, ResNetV2): together that is a "same" conv when the sizes agree.
        padding_layer, padding_node = _producer(source)
        folded = (
            isinstance(padding_layer, tf.keras.layers.ZeroPadding2D)
            and graph.sole_consumer(source) is node
            and len(padding_layer._inbound_nodes) == 1
            and None not in output.shape[1:3]
            and _same_shape(padding_node.keras_inputs[0], strides[0]) == tuple(output.shape[1:3])
        )
        if not folded:
            return (
                f"'valid' padding shrinks the output to {tuple(output.shape[1:3])}: no "
                "Elastic-Link can be added to it"
            )
        plan.padding_layer = padding_layer
        plan.source = padding_node.keras_inputs[0]
        same = _same_padding(plan.source, layer)
        if tuple(map(tuple, padding_layer.padding)) == same:
            plan.notes.append(f"{padding_layer.name} folded into 'same' padding (pad value 1)")
        else:  # e.g. ResNetV2's 1 + 1 before a 3x3/2 conv, where "same" pads 0 + 1
            plan.explicit_padding = padding_layer.padding
            plan.notes.append(
                f"{padding_layer.name} kept before the 'valid' binary conv (pads {same} as "
                "'same' would read a window one pixel off; zeros binarize to +1)"
            )
    consumer = graph.sole_consumer(output)
    if (
        consumer is not None
        and isinstance(consumer.layer, tf.keras.layers.BatchNormalization)
        and _activation_name(layer) == "linear"
        and len(consumer.layer._inbound_nodes) == 1
        and tuple(np.atleast_1d(consumer.layer.axis)) in ((-1,), (3,))
    ):
        plan.batch_norm = consumer.layer
        plan.notes.append(f"{consumer.layer.name} reused")
    else:
        plan.notes.append("BatchNormalization inserted")
    plan.input_norm = _non_negative(plan.source, memo)
    if plan.input_norm:
        plan.notes.append("input >= 0: BatchNormalization before the sign")
    plan.activation_scaling = kind == "conv" and _matches(scaling, layer)
    if plan.activation_scaling:
        plan.notes.append("K")
    return plan


class _Builder:
    """Rebuilds the graph; remembers which new layer takes which float weights."""

    def __init__(self, model: tf.keras.Model, options: dict) -> None:
        self.options = options
        self.used = {layer.name for layer in model.layers}
        self.clones: dict[int, tf.keras.layers.Layer] = {}
        self.units: dict[str, dict[str, Any]] = {}

    def name(self, base: str) -> str:
        name, index = base, 1
        while name in self.used:
            name, index = f"{base}_{index}", index + 1
        self.used.add(name)
        return name

    def clone(self, layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
        if id(layer) not in self.clones:
            self.clones[id(layer)] = type(layer).from_config(layer.get_config())
        return self.clones[id(layer)]

    def batch_norm(self, name: str) -> tf.keras.layers.BatchNormalization:
        return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=self.name(name))

    def unit(self, x: Any, conv: tf.keras.layers.Layer, plan: _Plan, stem: str, float_bn) -> Any:
        """`[BN ->] binary conv -> BN -> + ElasticLink(x)`: `el_larq.layers.el_conv`'s wiring."""
        conv_input = self.batch_norm(f"{stem}_input_bn")(x) if plan.input_norm else x
        if plan.explicit_padding is not None:
            padding = tf.keras.layers.ZeroPadding2D(
                plan.explicit_padding, name=self.name(f"{stem}_pad")
            )
            conv_input = padding(conv_input)
        y = conv(conv_input)
        if float_bn is not None:  # not via self.clone: _copy_unit sets its weights
            bn = type(float_bn).from_config(float_bn.get_config())
        else:
            bn = self.batch_norm(f"{stem}_bn")
        y = bn(y)
        link = None
        if self.options["elastic_link"]:
            link = ElasticLink(
                y.shape[-1],
                conv.strides[0],
                self.options["gamma_trainable"],
                gamma_on=self.options["gamma_on"],
                name=self.name(f"{stem}_el"),
            )
            y = tf.keras.layers.Add(name=self.name(f"{stem}_add"))([y, link(x)])
        return y, bn, link

    def rewrite(self, layer: tf.keras.layers.Layer, plan: _Plan, x: Any) -> tuple[Any, list]:
        """The binarized unit(s) of one conv; returns the output and the links made."""
        padding = "same" if plan.explicit_padding is None else "valid"
        common = dict(padding=padding, name=layer.name)
        record: dict[str, Any] = {"plan": plan}
        links = []
        if plan.kind == "separable":
            depthwise = BinaryDepthwiseConv2D(
                layer.kernel_size,
                strides=layer.strides,
                depth_multiplier=layer.depth_multiplier,
                dilation_rate=layer.dilation_rate,
                padding=padding,
                name=self.name(f"{layer.name}_depthwise"),
            )
            depthwise_plan = dataclasses.replace(plan, kind="depthwise")
            x, record["depthwise_bn"], link = self.unit(
                x, depthwise, depthwise_plan, depthwise.name, None
            )
            links.append(link)
            record["depthwise"] = depthwise
            plan = dataclasses.replace(plan, input_norm=False, explicit_padding=None)
            conv = BinaryConv2D(layer.filters, 1, name=layer.name)
        elif plan.kind == "depthwise":
            conv = BinaryDepthwiseConv2D(
                layer.kernel_size,
                strides=layer.strides,
                depth_multiplier=layer.depth_multiplier,
                dilation_rate=layer.dilation_rate,
                **common,
            )
        else:
            conv = BinaryConv2D(
                layer.filters,
                layer.kernel_size,
                strides=layer.strides,
                dilation_rate=layer.dilation_rate,
                activation_scaling=plan.activation_scaling,
                **common,
            )
        y, record["bn"], link = self.unit(x, conv, plan, layer.name, plan.batch_norm)
        links.append(link)
        record["conv"] = conv
        self.units[layer.name] = record
        if _activation_name(layer) != "linear":  # after the sum, as EL-MobileNet's ReLU
            activation = tf.keras.activations.serialize(layer.activation)
            y = tf.keras.layers.Activation(activation, name=self.name(f"{layer.name}_act"))(y)
        return y, links


def _copy_unit(float_layer: tf.keras.layers.Layer, record: dict[str, Any]) -> None:
    """Latent weights and BatchNorm statistics of one rewritten conv from the float one."""
    plan = record["plan"]
    if plan.kind == "separable":
        record["depthwise"].set_weights([float_layer.depthwise_kernel.numpy()])
        record["conv"].set_weights([float_layer.pointwise_kernel.numpy()])
    elif plan.kind == "depthwise":
        record["conv"].set_weights([float_layer.depthwise_kernel.numpy()])
    else:
        record["conv"].set_weights([float_layer.kernel.numpy()])
    bn = record["bn"]
    if plan.batch_norm is not None:
        bn.set_weights(plan.batch_norm.get_weights())
    if float_layer.use_bias:
        bias = float_layer.bias.numpy()
        if plan.batch_norm is not None:  # BN(conv + b) == BN'(conv), BN' with mean - b
            bn.moving_mean.assign(bn.moving_mean.numpy() - bias)
        elif bn.center:  # a fresh BN is the identity at init: beta carries the bias
            bn.beta.assign(bias)


def elasticize(
    model: tf.keras.Model,
    *,
    keep_float: Iterable[str] | Callable[[tf.keras.layers.Layer], bool] | None = None,
    elastic_link: bool = True,
    activation_scaling: bool | Iterable[str] | Callable[[tf.keras.layers.Layer], bool] = False,
    gamma_trainable: bool = True,
    gamma_on: str = "squeeze_expand",
    copy_weights: bool = True,
    name: str | None = None,
) -> tuple[tf.keras.Model, ElasticizeReport]:
    """Binarize a float Keras CNN with Elastic-Link (Hu et al., AAAI 2022) in one call.

    Every eligible convolution becomes the zoo's EL unit (`el_larq.layers.el_conv`):

        x -> BinaryConv2D -> BatchNorm -> + ElasticLink(x) [-> the conv's activation]

    * `Conv2D` -> `BinaryConv2D` (LCE's `LceBconv2d`), `"same"` padding with pad value 1.
      The link is Identity, Squeeze or Expand from the channel counts; a strided conv's
      link max-pools first (`ElasticLink`). A `BatchNormalization` directly after the
      conv (its only consumer) is reused; otherwise one is inserted. A conv bias is
      absorbed: into the reused BatchNorm's moving mean, or the inserted one's beta.
    * `DepthwiseConv2D` -> `BinaryDepthwiseConv2D` with an Identity link (Expand with
      a depth multiplier > 1). LCE runs it in float on +-1 values.
    * `SeparableConv2D` -> two units, as EL-MobileNet: binary depthwise (Identity link)
      then binary pointwise 1x1 (Squeeze / Identity / Expand link); the pointwise conv
      keeps the layer's name.
    * Dilated convs (stride 1) are binarized: `"same"` padding keeps the link's shape.
    * `"valid"` padding: a 1x1 conv is binarized (same size as `"same"`). A k x k conv
      whose only input is a `ZeroPadding2D` (keras-applications' explicit padding)
      is binarized when the output size is that of a `"same"` conv on the unpadded
      input: with `"same"` padding (pad value 1) when the padding is `"same"`'s, else
      (ResNetV2's 1 + 1 before a 3x3/2 conv, where `"same"` pads 0 + 1) with the
      padding kept in front of a `"valid"` binary conv, so it reads the windows the
      float conv read (the zeros binarize to +1). Any other `"valid"` k x k conv
      shrinks its output, so no link can be added: kept float.
    * Kept float, with the reason in the report: the first conv(s) (no conv before
      them), the output layer (no conv or dense layer after it: the classifier),
      every `Dense` (LCE has no binary dense kernel), layers named in `keep_float`,
      grouped convs (LCE needs >= 32 channels per group or silently falls back),
      `Conv1D`/`Conv3D`/transposed convs, channels_first, unequal strides, and
      layers called more than once.

    Rule for activations in front of a sign: if a binarized conv's input is >= 0 by
    construction (a ReLU, ReLU6, sigmoid, softmax, ..., also through pooling, padding,
    dropout, concatenation and sums of such tensors), every sign would be +1. As in
    EL-MobileNet (`input_norm`), a BatchNormalization is put in front of that conv's
    sign, and the link carries the un-normalised input. An activation built into a
    conv (`Conv2D(..., activation="relu")`) is applied after the EL sum.

    Every other layer is a clone of the original (same config and name).

    # Arguments
        model: A functional or Sequential `tf.keras.Model` with known inputs.
        keep_float: Names of more layers to keep in full precision, or a predicate
            on the float model's layers. E.g. the zoo's ResNets keep their downsample
            shortcut convs float: `keep_float=lambda l: l.name.endswith("_down_conv")`.
        elastic_link: False binarizes the same convs without links (the ablation).
        activation_scaling: XNOR-Net's K on binarized standard convs: True for all,
            or names / a predicate (the paper puts K on each bottleneck's reduce 1x1).
        gamma_trainable: Learn the links' gamma or keep it at its initial value.
        gamma_on: Which links carry a gamma (`ElasticLink`'s `gamma_on`).
        copy_weights: Start from the float model's weights: latent real weights of
            the binarized convs, BatchNorm statistics, every other layer's weights
            (the "binarize my trained model" workflow). False: fresh initialisation.
        name: Name of the new model (default: the float model's + `"_el"`).

    # Returns
        `(binary_model, report)`: the new `tf.keras.Model` and an `ElasticizeReport`.

    # Raises
        ElasticizeError (a `ValueError`): a subclassed model, a nested sub-model, or a
            `keep_float` / `activation_scaling` name that is not a layer of the model.

    # Example
        ```python
        float_model = tf.keras.applications.MobileNetV2(
            weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10
        )
        binary_model, report = elasticize(float_model)
        print(report)
        ```
    """
    graph = _Graph(model)
    keep_float = _check_names(model, "keep_float", keep_float)
    scaling = _check_names(model, "activation_scaling", activation_scaling)
    if gamma_on not in GAMMA_ON:
        raise ElasticizeError(
            f"elasticize(): gamma_on must be one of {GAMMA_ON}, got {gamma_on!r}."
        )

    memo: dict[int, bool] = {}
    plans: dict[int, _Plan] = {}
    reasons: dict[str, str] = {}
    skipped: set[int] = set()  # the folded paddings and reused BatchNorms
    for node in graph.nodes:
        layer = node.layer
        if isinstance(layer, _CONV_TYPES):
            plan = _plan(graph, node, keep_float, scaling, memo)
            if isinstance(plan, str):
                reasons[layer.name] = plan
                continue
            plans[id(node)] = plan
            absorbed = (plan.padding_layer, plan.batch_norm)
            skipped.update(id(other) for other in absorbed if other is not None)
        elif isinstance(layer, _WEIGHTED):
            reasons[layer.name] = "dense layer (LCE has no binary dense kernel)"

    options = dict(elastic_link=elastic_link, gamma_trainable=gamma_trainable, gamma_on=gamma_on)
    builder = _Builder(model, options)
    tensors: dict[int, Any] = {}
    for tensor in model.inputs:
        layer = tensor._keras_history.layer
        tensors[id(tensor)] = tf.keras.Input(
            batch_shape=tensor.shape, dtype=tensor.dtype, name=layer.name
        )
    links: dict[str, list] = {}
    for node in graph.nodes:
        layer = node.layer
        if id(layer) in skipped:
            continue
        plan = plans.get(id(node))
        if plan is not None:
            outputs, links[layer.name] = builder.rewrite(layer, plan, tensors[id(plan.source)])
            last = plan.batch_norm._inbound_nodes[0] if plan.batch_norm is not None else node
            tensors[id(tf.nest.flatten(last.outputs)[0])] = outputs
            continue

        def new(value: Any) -> Any:
            return tensors[id(value)] if tf.keras.backend.is_keras_tensor(value) else value

        args = tf.nest.map_structure(new, node.call_args)
        kwargs = tf.nest.map_structure(new, node.call_kwargs)
        outputs = builder.clone(layer)(*args, **kwargs)
        for old, value in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(outputs), strict=True):
            tensors[id(old)] = value

    binary = tf.keras.Model(
        [tensors[id(t)] for t in model.inputs],
        [tensors[id(t)] for t in model.outputs],
        name=name or f"{model.name}_el",
    )
    if copy_weights:
        for layer in model.layers:
            if id(layer) in builder.clones:
                builder.clones[id(layer)].set_weights(layer.get_weights())
            elif layer.name in builder.units:
                _copy_unit(layer, builder.units[layer.name])
    return binary, _report(model, reasons, builder.units, links)


def _report(model, reasons: dict, units: dict, links: dict) -> ElasticizeReport:
    rows = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.InputLayer):
            continue
        row = LayerChange(layer.name, type(layer).__name__, "unchanged")
        if layer.name in reasons:
            row.action, row.reason = "kept float", reasons[layer.name]
        elif layer.name in units:
            made = [link for link in links[layer.name] if link is not None]
            row.action = "binarized"
            row.link = "+".join(link.kind for link in made) or "none"
            gammas = [float(link.groups) for link in made if link.gamma is not None]
            row.gamma = gammas[-1] if gammas else None
            plan = units[layer.name]["plan"]
            row.reason = "; ".join([f"{plan.kind} EL unit"] + plan.notes)
        rows.append(row)
    # Layers absorbed into a unit say so.
    absorbed = {
        other.name: owner
        for owner, record in units.items()
        for other in (record["plan"].padding_layer, record["plan"].batch_norm)
        if other is not None
    }
    for row in rows:
        if row.name in absorbed:
            row.action, row.reason = "absorbed", f"part of {absorbed[row.name]}'s EL unit"
    return ElasticizeReport(rows)
