"""Helpers shared by several test files (test files import from here, not from each other).

Models "as if trained" come from the library: `el_larq.deploy.profile.as_if_trained`.
"""

import os

import numpy as np
import tensorflow as tf

from el_larq import data
from el_larq.deploy.profile import as_if_trained
from el_larq.deploy.verification import verify
from el_larq.layers import BinaryConv2D, el_conv

__all__ = ["RECORDED_OUTPUT", "assert_most_inputs_agree", "make_idx_dataset", "mixed_model"]


# Output of `lce_benchmark_model --graph=quicknet.tflite --num_threads=1 --num_runs=50`
# in the format of TensorFlow Lite's benchmark_model, which lce_benchmark_model is built
# on (BenchmarkLoggingListener::OnBenchmarkEnd, Stat::OutputToStream).
RECORDED_OUTPUT = """\
STARTING!
Log parameter values verbosely: [0]
Min num runs: [50]
Num threads: [1]
Graph: [/data/local/tmp/quicknet.tflite]
#threads used for CPU inference: [1]
Loaded model /data/local/tmp/quicknet.tflite
INFO: Initialized TensorFlow Lite runtime.
The input model file size (MB): 4.42532
Initialized session in 3.207ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if \
exceeding 150 seconds.
count=11 first=47818 curr=45239 min=45123 max=47818 avg=45512.4 std=763

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if \
exceeding 150 seconds.
count=50 first=45301 curr=45012 min=44876 max=46020 avg=45210.5 std=210

Inference timings in us: Init: 3207, First inference: 47818, Warmup (avg): 45512.4, \
Inference (avg): 45210.5
Note: as the benchmark tool itself affects memory footprint, the following is only \
APPROXIMATE to the actual memory footprint of the model at runtime. Take the information \
at your discretion.
Memory footprint delta from the start of the tool (MB): init=6.91797 overall=13.5547
"""


def make_idx_dataset(directory, train=48, test=20, size=28, seed=0):
    """Fashion-MNIST-like IDX files: class c has brightness ~ c, so a net can learn it."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, size, size)) + labels[:, None, None] * 20
        data.write_idx(f"{directory}/{prefix}-images-idx3-ubyte.gz", images.astype(np.uint8))
        data.write_idx(f"{directory}/{prefix}-labels-idx1-ubyte.gz", labels)
    return str(directory)


def mixed_model() -> tf.keras.Model:
    """Every kind of conv the census tells apart, at 16 px."""
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(64, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = el_conv(x, 16, 1, activation_scaling=True, name="reduce")  # Squeeze + K
    x = el_conv(x, 16, 3, strides=2, name="spatial")  # Identity
    # 16 input channels per group (< 32): LCE cannot make this an LceBconv2d.
    x = BinaryConv2D(32, 3, groups=2, name="grouped")(x)
    x = el_conv(x, 64, 1, name="expand")  # Expand
    x = el_conv(x, None, 3, depthwise=True, activation="relu", name="dw")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, name="classifier")(x)
    return as_if_trained(tf.keras.Model(inputs, outputs))


def assert_most_inputs_agree(model, flatbuffer, inputs, *, min_share=0.5):
    """Keras and LCE's interpreter give the same outputs for most of `inputs`.

    For an untrained deep BNN `verify`'s gates are a coin toss that depends on the CPU:
    Keras and TFLite round float ops differently (~1e-7), an activation that close to
    zero takes different signs, and in a random deep net the flip moves that image's
    whole output (seen: r2b_resnet50 and el_r2b_mobilenet at 32 px, 3 of 16 images by
    0.12-0.70 of the output scale on an AVX2 host; the other 13 within 2e-5). A wrong
    conversion moves every image. So: at least `min_share` of the inputs agree
    (`Verification.inputs_agreeing`).
    """
    check = verify(model, flatbuffer, inputs)
    assert check.inputs_agreeing >= min_share * len(inputs), check.summary()
