"""What Elastic-Link costs after LCE conversion: EL-ResNet50 vs Bi-Real-ResNet50 vs ResNet50.

    python convert/overhead_report.py [--image_size=224] [--num_runs=30] [--num_threads=1]
        [--kernel=indirect_bgemm] [--xnnpack] [--json=overhead.json]

One run builds the three zoo models (identical but for the EL links, and the float twin),
converts them with LCE (EL-ResNet50 also with int8 weights in its float layers, as
`convert/to_lce.py --int8_weights` writes it) and prints, side by side: FLOPs as in the
paper (Bi-Real Net's float MACs + binary MACs / 64, plus EL's element-wise ops),
flatbuffer sizes, op counts by type, and host latencies from interleaved runs with the
same interpreter settings, with the ratios the paper and docs/deployment.md quote (EL over
Bi-Real: FLOPs, latency; float over EL: latency, size). Host latency is LCE's Python
interpreter on this machine, a relative measure; ARM64 numbers need lce_benchmark_model
(convert/benchmark.py).
"""

import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet TensorFlow's C++ logging
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from el_larq import lce  # noqa: E402  (first: selects Keras 2 before TensorFlow loads)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from el_larq.layers import BinaryConv2D  # noqa: E402
from el_larq.summary import model_summary  # noqa: E402
from el_larq.zoo import get_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 224, "Input side in pixels.", lower_bound=32)
flags.DEFINE_integer("num_runs", 30, "Timed runs per model (interleaved).", lower_bound=1)
flags.DEFINE_integer("warmup_runs", 3, "Untimed runs per model first.", lower_bound=0)
flags.DEFINE_integer("rounds", 10, "Interleaving rounds.", lower_bound=1)
flags.DEFINE_integer("num_threads", 1, "Interpreter threads.", lower_bound=1)
flags.DEFINE_enum("kernel", "indirect_bgemm", list(lce.KERNELS), "Binary conv kernel.")
flags.DEFINE_bool("xnnpack", False, "Run float ops through TFLite's XNNPACK delegate.")
flags.DEFINE_string("json", None, "Also write the numbers as JSON to this path.")
flags.DEFINE_string("save_dir", None, "Also keep the .tflite files in this directory.")
flags.DEFINE_bool(
    "units",
    False,
    "Instead of the whole models, time single bottleneck units at ResNet50 stage-1 size "
    "(56x56, 64 <-> 256 channels) with each way of lowering the Expand link.",
)

EL, BIREAL, FP, INT8 = "EL-ResNet50", "Bi-Real-ResNet50", "ResNet50 (float)", "EL-ResNet50 int8"
MODELS = {EL: "el_resnet50", BIREAL: "bireal_resnet50"}
FLOAT = {FP: "resnet50"}


def _host_latency(flatbuffers: dict[str, bytes]) -> dict[str, lce.Latency]:
    """Interleaved host latency of `flatbuffers` with this script's interpreter flags."""
    return lce.host_latency(
        flatbuffers,
        num_runs=FLAGS.num_runs,
        warmup_runs=FLAGS.warmup_runs,
        num_threads=FLAGS.num_threads,
        kernel=FLAGS.kernel,
        xnnpack=FLAGS.xnnpack,
        rounds=FLAGS.rounds,
    )


def _build(name: str):
    size = FLAGS.image_size
    return get_model(name, input_shape=(size, size, 3), num_classes=1000, stem="imagenet")


def _result(model: tf.keras.Model, flatbuffer: bytes, messages: list[str]) -> dict:
    return {
        "flatbuffer": flatbuffer,
        "flops": model_summary(model),
        "size": lce.size_report(model, flatbuffer),
        "census": lce.census(model, flatbuffer, messages),
        "weight_bytes": lce.weight_bytes(flatbuffer),
    }


def _convert_all() -> dict[str, dict]:
    results = {}
    for label, name in {**MODELS, **FLOAT}.items():
        model = _build(name)
        flatbuffer, messages = lce.convert(model)
        results[label] = _result(model, flatbuffer, messages)
        print(f"converted {label}: {len(flatbuffer)} bytes", flush=True)
        if label == EL:  # the deployable variant: float layers with int8 weights
            small, quantized = lce.quantize_weights(flatbuffer)
            int8 = _result(model, small, messages)
            print(f"{INT8}: {lce.format_quantized(quantized)}", flush=True)
    return {**results, INT8: int8}


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _report(results: dict[str, dict], latency: dict[str, lce.Latency]) -> dict:
    labels = list(results)
    print("\n## Compute and size\n")
    rows = []
    for label in labels:
        f, s = results[label]["flops"], results[label]["size"]
        rows.append(
            [
                label,
                f"{f['binary_macs'] / 1e6:.1f}",
                f"{f['float_macs'] / 1e6:.1f}",
                f"{f['el_ops'] / 1e6:.2f}",
                f"{f['flops'] / 1e6:.1f}",
                s["flatbuffer_bytes"],
                f"{s['float32_bytes'] / 2**20:.1f}",
            ]
        )
    header = ["model", "binary MMACs", "float MMACs", "EL MOPs", "MFLOPs", "tflite bytes"]
    print(_table(header + ["float32 weights MiB"], rows))

    print("\n## Ops by type\n")
    names = sorted(set().union(*(results[label]["census"].ops for label in labels)))
    print(
        _table(
            ["op", *labels], [[n, *(results[x]["census"].ops[n] for x in labels)] for n in names]
        )
    )

    print("\n## Constant (weight) bytes by the op type that reads them\n")
    names = sorted(set().union(*(results[label]["weight_bytes"] for label in labels)))
    rows = [[n, *(results[x]["weight_bytes"][n] for x in labels)] for n in names]
    print(_table(["op", *labels], rows))

    print("\n## Host latency (interleaved runs, same interpreter settings)\n")
    print(lce.LATENCY_HEADER)
    print("\n".join(latency[label].row() for label in labels))

    ratios = {
        "flops_el_over_bireal": results[EL]["flops"]["flops"] / results[BIREAL]["flops"]["flops"],
        "latency_el_over_bireal": latency[EL].median_ms / latency[BIREAL].median_ms,
        # CPU time hardly moves when other jobs share the cores; wall time does.
        "cpu_el_over_bireal": latency[EL].cpu_median_ms / latency[BIREAL].cpu_median_ms,
        "cpu_float_over_el": latency[FP].cpu_median_ms / latency[EL].cpu_median_ms,
        "size_el_over_bireal": len(results[EL]["flatbuffer"]) / len(results[BIREAL]["flatbuffer"]),
        "latency_float_over_el": latency[FP].median_ms / latency[EL].median_ms,
        "size_float_over_el": len(results[FP]["flatbuffer"]) / len(results[EL]["flatbuffer"]),
        "cpu_float_over_el_int8": latency[FP].cpu_median_ms / latency[INT8].cpu_median_ms,
        "size_float_over_el_int8": len(results[FP]["flatbuffer"])
        / len(results[INT8]["flatbuffer"]),
    }
    print("\n## Ratios\n")
    print(
        _table(
            ["ratio", "measured", "paper / goal"],
            [
                ["EL / Bi-Real FLOPs", f"{ratios['flops_el_over_bireal']:.4f}", "1.026 (paper)"],
                [
                    "EL / Bi-Real median latency",
                    f"{ratios['latency_el_over_bireal']:.4f}",
                    "1.032 (paper, BMXNet x86); goal <= 1.02",
                ],
                [
                    "EL / Bi-Real median CPU time",
                    f"{ratios['cpu_el_over_bireal']:.4f}",
                    "goal <= 1.02",
                ],
                ["EL / Bi-Real tflite size", f"{ratios['size_el_over_bireal']:.4f}", "-"],
                [
                    "float / EL median latency",
                    f"{ratios['latency_float_over_el']:.2f}",
                    "goal >= 1.5",
                ],
                [
                    "float / EL median CPU time",
                    f"{ratios['cpu_float_over_el']:.2f}",
                    "goal >= 1.5",
                ],
                ["float / EL tflite size", f"{ratios['size_float_over_el']:.2f}", "goal >= 8"],
                [
                    "float / EL int8 median CPU time",
                    f"{ratios['cpu_float_over_el_int8']:.2f}",
                    "goal >= 1.5",
                ],
                [
                    "float / EL int8 tflite size",
                    f"{ratios['size_float_over_el_int8']:.2f}",
                    "goal >= 8",
                ],
            ],
        )
    )
    return ratios


def _expand_unit(variant: str) -> tf.keras.Model:
    """BinaryConv2D 64 -> 256 + BN at 56x56, plus one way of adding the Expand link.

    * `none`: no link (Bi-Real's expand conv);
    * `concat`: `ElasticLink` as it is: CONCATENATION of 4 copies, MUL by 1/gamma, ADD;
    * `scale_first`: MUL by 1/gamma on the 64 input channels, then CONCATENATION, ADD;
    * `broadcast`: MUL on the 64 input channels, then a broadcasting ADD onto the conv
      output viewed as (56, 56, 4, 64): no 256-channel copy at all.

    All but `none` compute the same values: output channel c gets input channel c mod 64.
    """
    inputs = tf.keras.Input((56, 56, 64))
    y = BinaryConv2D(256, 1)(inputs)
    y = tf.keras.layers.BatchNormalization()(y)
    scale = 0.25  # 1/gamma at its initial value
    if variant == "concat":
        y = y + tf.concat([inputs] * 4, axis=-1) * scale
    elif variant == "scale_first":
        y = y + tf.concat([inputs * scale] * 4, axis=-1)
    elif variant == "broadcast":
        grouped = tf.reshape(y, (-1, 56, 56, 4, 64)) + tf.reshape(
            inputs * scale, (-1, 56, 56, 1, 64)
        )
        y = tf.reshape(grouped, (-1, 56, 56, 256))
    return tf.keras.Model(inputs, y)


def _units() -> None:
    variants = ("none", "concat", "scale_first", "broadcast")
    models = {variant: _expand_unit(variant) for variant in variants}
    reference = models["concat"]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 56, 56, 64)).astype(np.float32)
    for variant in variants[2:]:
        models[variant].set_weights(reference.get_weights())
        np.testing.assert_allclose(models[variant](x), reference(x), rtol=1e-6, atol=1e-6)
    flatbuffers = {}
    for variant, model in models.items():
        flatbuffers[variant], _ = lce.convert(model)
        print(f"{variant}: {dict(lce.op_counts(flatbuffers[variant]))}")
    latency = _host_latency(flatbuffers)
    print(lce.LATENCY_HEADER)
    print("\n".join(row.row() for row in latency.values()))
    base = latency["none"].cpu_median_ms
    for variant in variants[1:]:
        extra = latency[variant].cpu_median_ms - base
        print(f"{variant}: link costs {extra:.3f} ms CPU ({extra / base:+.1%} of the unit)")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.units:
        _units()
        return 0
    if FLAGS.json:
        lce.check_writable(FLAGS.json)
    print(
        f"settings: {FLAGS.image_size} px, batch 1, {FLAGS.num_threads} thread(s), kernel "
        f"{FLAGS.kernel}, xnnpack {FLAGS.xnnpack}, {FLAGS.num_runs} runs in {FLAGS.rounds} "
        "interleaved rounds, LCE Python interpreter",
        flush=True,
    )
    results = _convert_all()
    if FLAGS.save_dir:
        stems = {**MODELS, **FLOAT, INT8: "el_resnet50_int8"}
        for label, result in results.items():
            path = Path(FLAGS.save_dir) / f"{stems[label]}_{FLAGS.image_size}.tflite"
            lce.write_atomic(path, result["flatbuffer"])
    latency = _host_latency({label: result["flatbuffer"] for label, result in results.items()})
    ratios = _report(results, latency)
    if FLAGS.json:
        payload = {
            "settings": {
                key: FLAGS[key].value
                for key in ("image_size", "num_runs", "rounds", "num_threads", "kernel", "xnnpack")
            },
            "ratios": ratios,
            "models": {
                label: {
                    "flops": result["flops"],
                    "size": result["size"],
                    "ops": dict(result["census"].ops),
                    "weight_bytes": dict(result["weight_bytes"]),
                    "latency": dataclasses.asdict(latency[label]),
                }
                for label, result in results.items()
            },
        }
        lce.write_atomic(FLAGS.json, (lce.json_dumps(payload) + "\n").encode())
    return 0


if __name__ == "__main__":
    app.run(main)
