"""Why a binarized MobileNetV2 does not learn: the measurements behind
docs/results/mobilenetv2/README.md, reproducible in one command.

    .venv/bin/python study/mobilenetv2_diagnostics.py \\
        --out docs/results/mobilenetv2/diagnostics.json

Two measurements on keras-applications MobileNetV2 (alpha 0.35, 32 px, Fashion-MNIST,
BatchNorm momentum 0.9, seed 0), each for the float net, `elasticize` with links and
`elasticize(elastic_link=False)`:

1. **Sign balance of the residual stream** at initialisation (training mode, one batch of
   64): the fraction of positive values at every `block_*_add` (the linear bottleneck
   stream that the next block's expand conv binarizes). A sign that is +1 for nearly every
   value carries almost no information.
2. **Fitting one batch**: 100 Adam steps (lr 1e-3) on one fixed batch of 64 images; the
   loss and accuracy on that batch at the end. A trainable network drives it to ~0. Done
   for the whole net and for nets where only some convs are binarized (the others kept
   float with `keep_float`), to see where fitting stops working.

3. **Short training on real data** (160 steps of 64, Adam 1e-3, training mode): the
   training top-1 of the last 40 steps, for elasticized MobileNetV2 and MobileNet v1
   (alpha 0.35) at 32 and 64 px (at 32 px both end at 1x1 feature maps).

Results are written as JSON (and printed); every number is measured when it runs.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from absl import app, flags

import el_larq  # noqa: F401  (Keras 2 before TensorFlow)
from el_larq.data import load_split
from el_larq.io import write_atomic
from el_larq.zoo import get_model

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "JSON file to write.")
flags.DEFINE_integer("steps", 100, "Adam steps on the one batch.")
flags.DEFINE_integer("seed", 0, "Seed of weights and data.")
flags.mark_flag_as_required("out")

# (name, elastic_link, which convs are binarized: None = every eligible one)
FIT_CASES = [
    ("float", None, None),
    ("el: all", True, None),
    ("no links: all", False, None),
    ("el: only block_16_project", True, ("block_16_project",)),
    ("el: only block_8_project", True, ("block_8_project",)),
    ("el: only expanded_conv_project", True, ("expanded_conv_project",)),
    ("el: projects of blocks 4-9", True, tuple(f"block_{i}_project" for i in (4, 5, 7, 8, 9))),
    ("el: every project", True, ("_project",)),
    ("el: every expand", True, ("_expand",)),
    ("el: every depthwise", True, ("_depthwise",)),
    ("no links: every project", False, ("_project",)),
]


TRAIN_CASES = [
    ("MobileNetV2", 32),
    ("MobileNetV2", 64),
    ("MobileNet", 32),
    ("MobileNet", 64),
]


def _model(elastic_link, only, application="MobileNetV2", size=32):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(FLAGS.seed)
    options = None if elastic_link is None else {"elastic_link": elastic_link}
    if only is not None:  # binarize only layers whose name has one of these parts
        options["keep_float"] = lambda layer: not any(part in layer.name for part in only)
    return get_model(
        f"keras:{application}",
        input_shape=(size, size, 1),
        num_classes=10,
        width=0.35,
        batch_norm_momentum=0.9,
        elasticize=options,
    )


def _sign_balance(model, images) -> dict[str, float]:
    import tensorflow as tf

    names = [layer.name for layer in model.layers if layer.name.endswith("_add")]
    names = [name for name in names if name.count("_") == 2 and name.startswith("block_")]
    probe = tf.keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    outputs = probe(images, training=True)
    return {
        name: round(float(np.mean(out.numpy() > 0)), 3)
        for name, out in zip(names, outputs, strict=True)
    }


def _fit_one_batch(model, images, labels) -> dict[str, float]:
    import tensorflow as tf

    optimizer = tf.keras.optimizers.Adam(1e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        hits = tf.equal(tf.argmax(probabilities, -1), tf.cast(labels, tf.int64))
        return loss, tf.reduce_mean(tf.cast(hits, tf.float32))

    losses = []
    for _ in range(FLAGS.steps):
        loss, accuracy = step()
        losses.append(float(loss))
    return {
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
        "min_loss": round(min(losses), 4),
        "last_batch_accuracy": round(float(accuracy), 4),
    }


def _train(model, size) -> dict[str, float]:
    import tensorflow as tf

    data = load_split("fashion_mnist", "train", training=True, batch_size=64, image_size=size,
                      seed=FLAGS.seed)  # fmt: skip
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(data.dataset, steps_per_epoch=40, epochs=4, verbose=0).history
    return {
        "last_40_steps_top1": round(history["accuracy"][-1], 4),
        "last_40_steps_loss": round(history["loss"][-1], 4),
    }


def main(argv):
    del argv
    data = load_split("fashion_mnist", "train", training=True, batch_size=64, image_size=32,
                      seed=FLAGS.seed)  # fmt: skip
    images, labels = next(iter(data.dataset))
    result = {"command": " ".join(sys.argv), "steps": FLAGS.steps, "seed": FLAGS.seed}
    result["sign_balance"] = {
        name: _sign_balance(_model(link, None), images)
        for name, link in (("float", None), ("el", True), ("no links", False))
    }
    result["fit_one_batch"] = {}
    for name, link, only in FIT_CASES:
        result["fit_one_batch"][name] = _fit_one_batch(_model(link, only), images, labels)
        print(name, result["fit_one_batch"][name], flush=True)
    result["train_160_steps"] = {}
    for application, size in TRAIN_CASES:
        name = f"el {application} {size} px"
        result["train_160_steps"][name] = _train(_model(True, None, application, size), size)
        print(name, result["train_160_steps"][name], flush=True)
    for name, balance in result["sign_balance"].items():
        mean = round(float(np.mean(list(balance.values()))), 3)
        print(name, "mean fraction > 0 of block_*_add:", mean)
    write_atomic(FLAGS.out, (json.dumps(result, indent=1) + "\n").encode())
    print(f"-> {FLAGS.out}")


if __name__ == "__main__":
    sys.exit(app.run(main))
