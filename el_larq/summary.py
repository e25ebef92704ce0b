"""Introspection of el_larq models: layer and MAC counts, and the gamma report (Fig. 4).

Its plot is `el_larq.plots.plot_gamma_report` (also importable from here).
"""

from __future__ import annotations

from typing import Any

import larq as lq
import numpy as np
import tensorflow as tf

from el_larq.layers import ElasticLink

# The plots live in el_larq.plots; these names stay importable from here.
from el_larq.plots import MATPLOTLIB_MISSING, plot_gamma_report
from el_larq.real_to_binary import scaling_ops

__all__ = ["MATPLOTLIB_MISSING", "gamma_report", "model_summary", "plot_gamma_report"]

# Bi-Real Net's FLOPs convention, which the paper uses: a binary MAC costs 1/64 FLOP.
BINARY_MACS_PER_FLOP = 64


def _pixels(layer: tf.keras.layers.Layer) -> int:
    return int(np.prod(layer.output_shape[1:-1]))


def _link_ops(link: ElasticLink) -> tuple[int, int]:
    """(paper-counted ops, Squeeze's chunk sums) of one link.

    The paper counts the EL add and the 1/gamma multiply (if any) per output value and calls
    Squeeze/Expand "address mapping"; Squeeze's g - 1 adds per output are real float
    work all the same, so they are counted, separately.
    """
    outputs = _pixels(link) * link.filters
    paper = outputs * (1 if link.gamma is None else 2)
    return paper, (link.groups - 1) * outputs if link.kind == "squeeze" else 0


def model_summary(model: tf.keras.Model) -> dict[str, Any]:
    """Counts of an el_larq model: binarized convs, EL modules, gamma, parameters, MACs.

    MACs come from `larq.models.ModelProfile` (convs and dense layers). `el_ops`
    counts the element-wise work the paper charges to Elastic-Link (the add and the
    1/gamma multiply per output value), `squeeze_ops` Squeeze's chunk sums,
    `scaling_ops` the float work of Real-to-Binary's gating
    (`el_larq.real_to_binary.scaling_ops`); `flops` follows Bi-Real Net's convention
    (binary MACs / 64 + float MACs + `el_ops` + `scaling_ops`), as the paper's
    "+2.6 %" does. Layer kinds are `el_larq.deploy.kinds.layer_kind`'s: how LCE
    will treat each layer.

    # Arguments
        model: A built `tf.keras.Model`.

    # Returns
        A dict with `binary_convs`, `binary_depthwise_convs` (not accelerated by
        LCE), `float_convs`, `el_modules` (by kind), `gammas`, `params`,
        `binary_macs`, `float_macs`, `binary_mac_ratio`, `el_ops`, `squeeze_ops`,
        `scaling_ops`, `flops`.

    # Example
        ```python
        from el_larq.zoo import el_resnet26
        print(model_summary(el_resnet26())["gammas"])
        ```
    """
    from el_larq.deploy.kinds import layer_kind, walk_layers

    layers = list(walk_layers(model))
    kinds = [layer_kind(layer) for layer in layers]
    links = [layer for layer in layers if isinstance(layer, ElasticLink)]
    profile = lq.models.ModelProfile(model)
    binary_macs = profile.op_count("mac", 1)
    float_macs = profile.op_count("mac") - binary_macs
    link_ops = [_link_ops(link) for link in links]
    el_ops = sum(paper for paper, _ in link_ops)
    scaling = sum(scaling_ops(layer) for layer in layers)
    float_convs = [
        layer
        for layer, kind in zip(layers, kinds, strict=True)
        if kind == "float" and not isinstance(layer, tf.keras.layers.Dense)
    ]
    return {
        "name": model.name,
        "binary_convs": kinds.count("binary"),
        "binary_depthwise_convs": kinds.count("binary_depthwise"),
        "float_convs": len(float_convs),
        "el_modules": {
            kind: sum(link.kind == kind for link in links)
            for kind in ("squeeze", "expand", "identity")
        },
        "gammas": sum(link.gamma is not None for link in links),
        "params": model.count_params(),
        "binary_macs": binary_macs,
        "float_macs": float_macs,
        "binary_mac_ratio": binary_macs / max(binary_macs + float_macs, 1),
        "el_ops": el_ops,
        "squeeze_ops": sum(squeeze for _, squeeze in link_ops),
        "scaling_ops": scaling,
        "flops": binary_macs / BINARY_MACS_PER_FLOP + float_macs + el_ops + scaling,
    }


def gamma_report(model: tf.keras.Model) -> list[dict[str, Any]]:
    """Every gamma of a model: its layer, block, kind, initial and current value.

    # Arguments
        model: A model with `ElasticLink` layers (built by `el_larq.zoo` or not).

    # Returns
        A list of dicts with keys `layer`, `block` (the layer-name prefix before the
        conv position, e.g. `stage2_block1`), `kind` (`"squeeze"` / `"expand"`),
        `initial` (`g`, eq. 5), `value` (current), `change` (`value - initial`),
        `trainable`, in model order.

    # Example
        ```python
        for row in gamma_report(model):
            print(row["block"], row["kind"], row["initial"], row["value"])
        ```
    """
    report = []
    from el_larq.deploy.kinds import walk_layers

    for layer in walk_layers(model):
        if isinstance(layer, ElasticLink) and layer.gamma is not None:
            value = float(layer.gamma.numpy())
            report.append(
                {
                    "layer": layer.name,
                    "block": layer.name.rsplit("_", 2)[0],
                    "kind": layer.kind,
                    "initial": float(layer.groups),
                    "value": value,
                    "change": value - layer.groups,
                    "trainable": layer.gamma_trainable,
                }
            )
    return report


if __name__ == "__main__":
    # `python -m el_larq.summary`: the zoo's table (the zoo imports this module, not the
    # other way round).
    from el_larq.zoo import summary_table

    print(summary_table())
