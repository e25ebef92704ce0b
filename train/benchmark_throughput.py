"""Training throughput (images/s) of EL-ResNet26 against the same net without EL.

    python train/benchmark_throughput.py [--width 0.25] [--image_size 28] [--batch_size 128]

Both models (default `el_resnet26` and `bireal_resnet26`, which is EL-ResNet26 without
the Squeeze/Expand links) are built at the same width and input size and trained
side by side in one process on the same synthetic batch, in alternating rounds so
that a busy machine slows both alike. It prints each round, the median images/s of
each model and their ratio, and the same per second of process CPU time, which
other programs on a shared machine disturb far less than wall-clock time.

Single rounds of one model vary by +-15 % even on an idle machine, so the verdict
uses paired rounds: each round's EL run is compared with the baseline run next to it
in time, and the script prints the median of those per-round costs, their
interquartile range, and a distribution-free 95 % confidence interval of the median
(order statistics of the binomial). The goal is EL costing at most 10 % of
throughput; it counts as met when the whole confidence interval is within it.
"""

import json
import math
import os
import statistics
import time

from absl import app, flags, logging

import el_larq  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from el_larq import training, zoo

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "el_resnet26", "The model with Elastic-Link.")
flags.DEFINE_string("baseline", "bireal_resnet26", "The same net without Elastic-Link.")
flags.DEFINE_list(
    "model_switches", [], "Builder switches of --model, e.g. k_reduce=false (JSON values)."
)
flags.DEFINE_list(
    "baseline_switches",
    [],
    "Builder switches of --baseline, e.g. k_reduce=false: compares one switch's cost.",
)
flags.DEFINE_float("width", 0.25, "Width multiplier of both models.")
flags.DEFINE_integer("image_size", 28, "Input side.", lower_bound=1)
flags.DEFINE_integer("channels", 1, "Input channels.", lower_bound=1)
flags.DEFINE_integer("num_classes", 10, "Classes.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_integer("steps", 5, "Training steps per round and model.", lower_bound=1)
flags.DEFINE_integer("rounds", 20, "Alternating rounds.", lower_bound=1)
flags.DEFINE_integer(
    "warmup",
    10,
    "Warm-up steps per model, after tracing and again in an untimed round.",
    lower_bound=0,
)
flags.DEFINE_bool("jit_compile", False, "Compile the training steps with XLA.")
flags.DEFINE_float("goal", 0.10, "Largest acceptable throughput cost of Elastic-Link.")


def _switches(items: list[str]) -> dict:
    switches = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise app.UsageError(f"expected KEY=VALUE, got {item!r}")
        try:
            switches[key] = json.loads(value)
        except ValueError:
            switches[key] = value
    return switches


def _model(name: str, switches: dict):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    shape = (FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
    model = zoo.get_model(
        name, input_shape=shape, num_classes=FLAGS.num_classes, width=FLAGS.width, **switches
    )
    training.compile_model(model, 1e-3, jit_compile=FLAGS.jit_compile)
    return model


class _Trainer:
    """A compiled model's own train step, called directly: no per-call `fit` set-up."""

    def __init__(self, model, dataset):
        self.step = model.make_train_function()
        self.iterator = iter(dataset)

    def run(self, steps: int) -> tuple[float, float]:
        """Wall-clock and process CPU seconds of `steps` training steps."""
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            logs = self.step(self.iterator)
        float(logs["loss"])  # wait for the last step
        return time.perf_counter() - wall, time.process_time() - cpu


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shape = (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
    images = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    labels = rng.integers(0, FLAGS.num_classes, FLAGS.batch_size).astype(np.int32)
    # One cached batch: the input pipeline costs nothing and both models see the same data.
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat().prefetch(2)

    builds = {}
    for name, items in (
        (FLAGS.model, FLAGS.model_switches),
        (FLAGS.baseline, FLAGS.baseline_switches),
    ):
        label = " ".join([name, *items])
        builds[label if label not in builds else f"{label} (baseline)"] = (name, _switches(items))
    names = list(builds)
    trainers = {}
    for name in names:
        model = _model(*builds[name])
        trainers[name] = _Trainer(model, dataset)
        trainers[name].run(1 + FLAGS.warmup)  # trace + warm up
        print(f"{name}: {model.count_params()} parameters, {len(model.layers)} layers")
    # One untimed round in the timed order: the first model run after another model's
    # warm-up was measured up to 2x slow (its memory and kernels went cold).
    if FLAGS.warmup:
        for name in names:
            trainers[name].run(FLAGS.warmup)
    images = FLAGS.steps * FLAGS.batch_size
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for round_ in range(FLAGS.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            seconds, cpu_seconds = trainers[name].run(FLAGS.steps)
            wall[name].append(images / seconds)
            cpu[name].append(images / cpu_seconds)
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{n} {wall[n][-1]:.1f} img/s ({cpu[n][-1]:.1f} img/CPU-s)" for n in names)
        )
    print(
        f"\nwidth {FLAGS.width}, input {FLAGS.image_size}x{FLAGS.image_size}x{FLAGS.channels}, "
        f"batch {FLAGS.batch_size}, {FLAGS.rounds} rounds x {FLAGS.steps} steps, "
        f"jit_compile={FLAGS.jit_compile}, TF {tf.__version__}, "
        f"{os.cpu_count()} CPU(s), GPU: {bool(tf.config.list_physical_devices('GPU'))}"
    )
    medians = {name: statistics.median(wall[name]) for name in names}
    cpu_medians = {name: statistics.median(cpu[name]) for name in names}
    for name in names:
        print(
            f"{name:>28}: {medians[name]:8.1f} images/s (median), "
            f"{cpu_medians[name]:8.1f} images per CPU-second"
        )
    name, base = names
    ratio = medians[name] / medians[base]
    cpu_ratio = cpu_medians[name] / cpu_medians[base]
    print(
        f"ratio of medians {name} / {base} = {ratio:.3f} images/s "
        f"(Elastic-Link costs {100 * (1 - ratio):.1f} % of training throughput); "
        f"{cpu_ratio:.3f} per CPU-second ({100 * (1 - cpu_ratio):.1f} %)"
    )
    for unit, series in (("wall-clock", wall), ("CPU-time", cpu)):
        costs = paired_costs(series[name], series[base])
        low, median, high = quartiles(costs)
        ci_low, ci_high = median_interval(costs)
        verdict = "met" if ci_high <= FLAGS.goal else "NOT met"
        print(
            f"paired {unit} cost over {len(costs)} rounds: median {100 * median:.1f} % "
            f"(95 % CI {100 * ci_low:.1f} to {100 * ci_high:.1f} %), interquartile "
            f"{100 * low:.1f} to {100 * high:.1f} %; goal <= {100 * FLAGS.goal:.0f} %: {verdict}"
        )


def paired_costs(model: list[float], baseline: list[float]) -> list[float]:
    """Per round, the share of the baseline's throughput that the model loses."""
    return [1 - m / b for m, b in zip(model, baseline, strict=True)]


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median: order statistics k and n-k+1.

    k is the largest rank with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2; with too
    few values for that the interval is the whole range.
    """
    ordered, n = sorted(values), len(values)
    k, below = 0, 0.0
    while k < n // 2:
        below += math.comb(n, k) / 2**n  # P(Binomial < k + 1)
        if below > (1 - confidence) / 2:
            break
        k += 1
    k = max(k, 1)
    return ordered[k - 1], ordered[n - k]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Lower quartile, median, upper quartile (the median thrice for one value)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


if __name__ == "__main__":
    app.run(main)
