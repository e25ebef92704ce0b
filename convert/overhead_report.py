"""What Elastic-Link costs after LCE conversion, and how EL nets compare with float and QuickNet.

    python convert/overhead_report.py [--image_size=224] [--num_runs=30] [--rounds=10]
        [--paths=default,xnnpack] [--models=...] [--json=overhead.json] [--save_dir=DIR]

One run builds the zoo models below at 224 px (ImageNet stem, 1000 classes, BatchNorm
statistics as after training: `el_larq.deploy.profile.as_if_trained`), converts them with LCE
(EL-ResNet50 also with int8 weights in its float layers, as `convert/to_lce.py
--int8_weights` writes it), adds larq-zoo's QuickNets when larq-zoo is installed
(`el_larq.reference`), and prints side by side: FLOPs as in the paper, flatbuffer sizes,
op counts, host latency on each interpreter path from interleaved runs with the same
settings, and for each compared pair its FLOPs, size and latency ratios with the
fast-inference goals (docs/deployment.md).
Host latency is LCE's Python interpreter on this machine, a relative measure; ARM64
numbers need lce_benchmark_model (convert/benchmark.py --device).
`--units` instead times single units of EL-ResNet50's stage 1: with each lowering of the
Expand link, and with and without K.
"""

import dataclasses
import re
import sys
from pathlib import Path

import el_larq  # noqa: F401  (first: selects Keras 2 before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf
from absl import app, flags

from el_larq import cli, io, reference
from el_larq.cli import flag_groups
from el_larq.deploy import profile, rewrites
from el_larq.deploy.census import census
from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import op_counts, size_report, weight_bytes
from el_larq.deploy.host import LATENCY_HEADER, Latency, host_latency, make_interpreter
from el_larq.deploy.int8 import format_quantized, quantize_weights
from el_larq.layers import BinaryConv2D, el_conv
from el_larq.safety import DeploymentError
from el_larq.stats import ratio_interval
from el_larq.summary import model_summary
from el_larq.zoo import get_model

# key: (label, zoo builder, switches, paper ImageNet top-1 %)
MODELS = {
    "el_resnet50": ("EL-ResNet50", "el_resnet50", {}, 65.6),
    "el_resnet50_no_k": ("EL-ResNet50 without K", "el_resnet50", {"k_reduce": False}, None),
    "el_resnet50_no_links": (
        "EL-ResNet50 without 1x1 links",
        "el_resnet50",
        {"el_reduce": False, "el_expand": False},
        None,
    ),
    "bireal_resnet50": ("Bi-Real-ResNet50", "bireal_resnet50", {}, 62.7),
    "resnet50": ("ResNet50 (float)", "resnet50", {}, 75.9),
    "el_resnet26": ("EL-ResNet26", "el_resnet26", {}, 64.0),
    "resnet26": ("ResNet26 (float)", "resnet26", {}, 72.5),
    "el_resnet18": ("EL-ResNet18", "el_resnet18", {}, 60.1),
    "el_mobilenet": ("EL-MobileNet", "el_mobilenet", {}, 56.4),
    "mobilenet": ("MobileNet (float)", "mobilenet", {}, 70.6),
    "el_reactnet": ("EL-ReActNet", "el_reactnet", {}, 71.9),
    "reactnet_c": ("ReActNet-C", "reactnet_c", {}, 71.4),
    "el_r2b_resnet50": ("EL†-ResNet50 (gating)", "el_r2b_resnet50", {}, 68.9),
}
INT8 = "EL-ResNet50 int8"
QUICKNET_KEYS = {
    "quicknet_small": "QuickNetSmall",
    "quicknet": "QuickNet",
    "quicknet_large": "QuickNetLarge",
}
PATHS = {"default": False, "xnnpack": True}
# (numerator, denominator, goal: the ratio of median latencies must be <= this, or None)
GOALS = [
    ("EL-ResNet50", "EL-ResNet50 without K", 1.02),
    ("EL-ResNet50", "EL-ResNet50 without 1x1 links", 1.02),
    ("EL-ResNet50", "Bi-Real-ResNet50", 1.02),
    ("EL-ResNet50", "ResNet50 (float)", 0.60),
    ("EL-ResNet26", "ResNet26 (float)", 0.60),
    ("EL-MobileNet", "MobileNet (float)", 0.75),
    (INT8, "EL-ResNet50", None),
    (INT8, "ResNet50 (float)", 0.60),
    ("EL-ReActNet", "ReActNet-C", 1.02),
    # What Real-to-Binary's gating costs on top of EL (EL-dagger keeps K: gating_with_k).
    ("EL†-ResNet50 (gating)", "EL-ResNet50", None),
]

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 224, "Input side in pixels.", lower_bound=32)
flags.DEFINE_integer("num_runs", 30, "Timed runs per model and path (interleaved).", lower_bound=1)
flags.DEFINE_integer("warmup_runs", 3, "Untimed runs per model first.", lower_bound=0)
flags.DEFINE_integer("rounds", 10, "Interleaving rounds.", lower_bound=1)
flags.DEFINE_list(
    "paths",
    list(PATHS),
    "Interpreter paths: default (TFLite's builtin kernels), "
    "xnnpack (float ops through TFLite's XNNPACK delegate).",
)
flags.DEFINE_list(
    "models",
    [*MODELS, *QUICKNET_KEYS],
    f"Models to compare: {', '.join([*MODELS, *QUICKNET_KEYS])} (QuickNets only when "
    "larq-zoo is installed; el_resnet50 brings its int8 twin).",
)
flag_groups.define_interpreter_flags(xnnpack=False)  # --paths picks the XNNPACK settings
flag_groups.define_json_flag("Also write the numbers as JSON to this path.")
flags.DEFINE_string("save_dir", None, "Also keep the .tflite files in this directory.")
flags.DEFINE_bool(
    "units",
    False,
    "Instead of the whole models, time single bottleneck units at ResNet50 stage-1 size "
    "(56x56, 64 <-> 256 channels) with each way of lowering the Expand link (with the block "
    "residual), and the reduce unit with and without K.",
)


def _check_flags() -> None:
    unknown = [m for m in FLAGS.models if m not in MODELS and m not in QUICKNET_KEYS]
    bad_paths = [p for p in FLAGS.paths if p not in PATHS]
    if unknown or bad_paths or not FLAGS.paths or not FLAGS.models:
        raise DeploymentError(
            f"unknown --models {unknown} or --paths {bad_paths}; models: "
            f"{', '.join([*MODELS, *QUICKNET_KEYS])}; paths: {', '.join(PATHS)}"
        )
    if FLAGS.units and (FLAGS.json or FLAGS.save_dir):
        raise DeploymentError("--units writes no files: leave out --json and --save_dir")
    if FLAGS.json:
        io.check_writable(FLAGS.json)
    if FLAGS.save_dir:  # a directory that exists, as for every other output
        io.check_writable(Path(FLAGS.save_dir) / f"el_resnet50_{FLAGS.image_size}.tflite")


def _host_latency(flatbuffers: dict[str, bytes], xnnpack: bool) -> dict[str, Latency]:
    """Interleaved host latency of `flatbuffers` with this script's interpreter flags."""
    return host_latency(
        flatbuffers,
        num_runs=FLAGS.num_runs,
        warmup_runs=FLAGS.warmup_runs,
        num_threads=FLAGS.num_threads,
        kernel=FLAGS.kernel,
        xnnpack=xnnpack,
        rounds=FLAGS.rounds,
    )


def _result(model: tf.keras.Model, flatbuffer: bytes, messages: list[str], top1) -> dict:
    return {
        "flatbuffer": flatbuffer,
        "flops": model_summary(model),
        "size": size_report(model, flatbuffer),
        "census": census(model, flatbuffer, messages),
        "weight_bytes": weight_bytes(flatbuffer),
        "paper_top1": top1,
    }


def _convert(label: str, model: tf.keras.Model, top1) -> dict:
    flatbuffer, messages = convert(profile.as_if_trained(model))
    print(f"converted {label}: {len(flatbuffer)} bytes", flush=True)
    return _result(model, flatbuffer, messages, top1)


def _convert_all() -> dict[str, dict]:
    size = FLAGS.image_size
    results = {}
    for key in FLAGS.models:
        if key in MODELS:
            label, builder, switches, top1 = MODELS[key]
            model = get_model(
                builder, input_shape=(size, size, 3), num_classes=1000, stem="imagenet", **switches
            )
            results[label] = _convert(label, model, top1)
            if key == "el_resnet50":  # the deployable variant: int8 weights in float layers
                small, quantized = quantize_weights(results[label]["flatbuffer"])
                print(f"{INT8}: {format_quantized(quantized)}", flush=True)
                results[INT8] = _result(model, small, [], top1)
            continue
        name = QUICKNET_KEYS[key]
        error = reference.larq_zoo_error()
        if error:
            print(f"skipped {name}: {error}", flush=True)
            continue
        model = reference.quicknet(name, input_shape=(size, size, 3))
        results[f"{name} (larq-zoo)"] = _convert(name, model, reference.QUICKNETS[name])
    return results


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(low: float, high: float, goal: float | None) -> str | None:
    """`met` / `not met` only when the ratio's 95 % interval is on one side of the goal."""
    if goal is None:
        return None
    if high <= goal:
        return "met"
    return "not met" if low > goal else "undecided"


def _ratios(results: dict[str, dict], latency: dict[str, dict[str, Latency]]) -> list[dict]:
    rows = []
    for numerator, denominator, goal in GOALS:
        row = {"ratio": f"{numerator} / {denominator}", "goal": goal}
        if numerator in results and denominator in results:
            num, den = results[numerator], results[denominator]
            row["flops"] = num["flops"]["flops"] / den["flops"]["flops"]
            row["size"] = len(num["flatbuffer"]) / len(den["flatbuffer"])
        for path, times in latency.items():
            if numerator in times and denominator in times:
                num, den = times[numerator], times[denominator]
                row[path] = num.median_ms / den.median_ms
                # Paired by interleaved round: the interval the verdict rests on.
                paired, low, high = ratio_interval(num.round_medians_ms, den.round_medians_ms)
                row[f"{path}_paired"] = paired
                row[f"{path}_interval"] = [low, high] if high < float("inf") else None
                row[f"{path}_verdict"] = _verdict(low, high, goal)
        if any(path in row for path in latency):
            rows.append(row)
    return rows


def _report(results: dict[str, dict], latency: dict[str, dict[str, Latency]]) -> list:
    labels, paths = list(results), list(latency)
    print("\n## Models side by side\n")
    rows = []
    for label in labels:
        r = results[label]
        times = [latency[path][label].median_ms for path in paths]
        best = paths[int(np.argmin(times))]
        top1 = "-" if r["paper_top1"] is None else f"{r['paper_top1']:.1f}"
        ops = r["census"].ops
        rows.append(
            [
                label,
                top1,
                f"{r['flops']['flops'] / 1e6:.0f}",
                f"{len(r['flatbuffer']) / 2**20:.2f}",
                f"{ops['LceBconv2d']} / {sum(ops.values())}",
                *(f"{t:.2f}" for t in times),
                best,
            ]
        )
    header = ["model", "paper ImageNet top-1 %", "MFLOPs", "tflite MiB", "LceBconv2d / ops"]
    print(_table(header + [f"{p} median ms" for p in paths] + ["faster path"], rows))

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

    for path in paths:
        print(f"\n## Host latency, {path} path (interleaved runs, same settings)\n")
        print(LATENCY_HEADER)
        print("\n".join(latency[path][label].row() for label in labels))

    ratios = _ratios(results, latency)
    print(
        "\n## Ratios: FLOPs, flatbuffer size, latency and the latency goals\n\nLatency: "
        "ratio of medians; geometric mean of the per-round ratios (rounds are paired: both "
        "models timed in each) [its 95 % interval]; met / not met only when the interval is "
        "on one side of the goal.\n"
    )

    def cell(row: dict, path: str) -> str:
        if path not in row:
            return "-"
        bounds = row[f"{path}_interval"]  # None from a single round
        paired = f"{row[f'{path}_paired']:.3f}"
        if bounds:
            paired += f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"
        verdict = row[f"{path}_verdict"]
        return f"{row[path]:.3f}; {paired}" + (f" {verdict}" if verdict else "")

    print(
        _table(
            ["ratio", "FLOPs", "size", *paths, "goal"],
            [
                [
                    row["ratio"],
                    *(f"{row[key]:.3f}" if key in row else "-" for key in ("flops", "size")),
                    *(cell(row, path) for path in paths),
                    "-" if row["goal"] is None else f"<= {row['goal']}",
                ]
                for row in ratios
            ],
        )
    )
    return ratios


def _expand_unit(variant: str) -> tf.keras.Model:
    """BinaryConv2D 64 -> 256 + BN at 56x56, one way of adding the Expand link, the residual.

    Every variant ends with the block residual (a second input), as every expand unit of
    EL-ResNet50 does:

    * `none`: no link (Bi-Real's expand conv);
    * `concat`: `ElasticLink` as it is: CONCATENATION of 4 copies, MUL by 1/gamma, ADD;
    * `scale_first`: MUL by 1/gamma on the 64 input channels, then CONCATENATION, ADD;
    * `broadcast`: MUL on the 64 input channels, then a broadcasting ADD onto the conv
      output viewed as (56, 56, 4, 64), no 256-channel copy at all: `convert`'s own
      rewrite of an Expand link (`el_larq.deploy.rewrites`);
    * `add_n`: as `scale_first`, with the link and the residual added in one ADD_N.

    All but `none` compute the same values: output channel c gets input channel c mod 64.
    """
    inputs = tf.keras.Input((56, 56, 64))
    residual = tf.keras.Input((56, 56, 256))
    y = BinaryConv2D(256, 1)(inputs)
    y = tf.keras.layers.BatchNormalization()(y)
    scale = 0.25  # 1/gamma at its initial value
    if variant == "concat":
        y = y + tf.concat([inputs] * 4, axis=-1) * scale
    elif variant == "scale_first":
        y = y + tf.concat([inputs * scale] * 4, axis=-1)
    elif variant == "broadcast":
        y = rewrites.broadcast_add(1, 4)([y, inputs * scale])
    if variant == "add_n":
        y = tf.add_n([y, tf.concat([inputs * scale] * 4, axis=-1), residual])
    else:
        y = y + residual
    return tf.keras.Model([inputs, residual], y)


def _k_unit(variant: str) -> tf.keras.Model:
    """EL-ResNet50's first reduce unit (BinaryConv2D 256 -> 64 + BN at 56x56, its Squeeze
    link) without K (`none`) and with K (`k`, as `convert` lowers it: docs/deployment.md)."""
    inputs = tf.keras.Input((56, 56, 256))
    y = el_conv(inputs, 64, 1, activation_scaling=variant == "k", name="reduce")
    return profile.as_if_trained(tf.keras.Model(inputs, y))


def _time_units(name: str, models: dict[str, tf.keras.Model], inputs: list[np.ndarray]) -> None:
    """Convert `models` (variant `none` first), check each flatbuffer against its Keras
    model on `inputs`, time them side by side and print what each variant adds to `none`."""
    flatbuffers = {}
    for variant, model in models.items():
        flatbuffers[variant], _ = convert(model)
        interpreter = make_interpreter(flatbuffers[variant], num_threads=1)
        # The flatbuffer's inputs need not be in the Keras model's order; here no two
        # inputs have the same shape.
        by_shape = {x.shape: x for x in inputs}
        ordered = [by_shape[tuple(shape)] for shape in interpreter.input_shapes]
        np.testing.assert_allclose(
            interpreter.predict(ordered if len(ordered) > 1 else ordered[0]),
            model(inputs, training=False),
            rtol=1e-4,
            atol=1e-4,
        )
        print(f"{name} {variant}: {dict(op_counts(flatbuffers[variant]))}")
    for path in FLAGS.paths:
        latency = _host_latency(flatbuffers, PATHS[path])
        print(f"\n{name}, {path} path:\n{LATENCY_HEADER}")
        print("\n".join(row.row() for row in latency.values()))
        for statistic in ("cpu_min_ms", "cpu_median_ms"):
            base = getattr(latency["none"], statistic)
            for variant in list(models)[1:]:
                extra = getattr(latency[variant], statistic) - base
                print(
                    f"{name} {variant}: adds {extra:.3f} ms ({extra / base:+.1%} of the unit), "
                    f"{statistic.replace('_ms', '').replace('_', ' ')}"
                )


def _units() -> None:
    """Time the Expand link's lowerings and K in single units of EL-ResNet50's stage 1."""
    variants = ("none", "concat", "scale_first", "broadcast", "add_n")
    models = {variant: _expand_unit(variant) for variant in variants}
    reference = models["concat"]
    rng = np.random.default_rng(0)
    x = [rng.uniform(-1, 1, (1, 56, 56, channels)).astype(np.float32) for channels in (64, 256)]
    for variant in variants[2:]:
        models[variant].set_weights(reference.get_weights())
        np.testing.assert_allclose(models[variant](x), reference(x), rtol=1e-5, atol=1e-5)
    _time_units("expand link", models, x)
    models = {variant: _k_unit(variant) for variant in ("none", "k")}
    _time_units("K", models, [rng.normal(size=(1, 56, 56, 256)).astype(np.float32)])


def _report_models() -> None:
    """Build, convert and time the models of --models; print the tables, write --json."""
    print(
        f"settings: {FLAGS.image_size} px, batch 1, {FLAGS.num_threads} thread(s), kernel "
        f"{FLAGS.kernel}, paths {', '.join(FLAGS.paths)}, {FLAGS.num_runs} runs in "
        f"{FLAGS.rounds} interleaved rounds, LCE Python interpreter",
        flush=True,
    )
    results = _convert_all()
    if FLAGS.save_dir:
        for label, result in results.items():
            stem = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")  # resnet50_float
            path = Path(FLAGS.save_dir) / f"{stem}_{FLAGS.image_size}.tflite"
            io.write_atomic(path, result["flatbuffer"])
    flatbuffers = {label: result["flatbuffer"] for label, result in results.items()}
    latency = {path: _host_latency(flatbuffers, PATHS[path]) for path in FLAGS.paths}
    ratios = _report(results, latency)
    if FLAGS.json:
        payload = {
            "settings": {
                key: FLAGS[key].value
                for key in ("image_size", "num_runs", "rounds", "num_threads", "kernel", "paths")
            },
            "ratios": ratios,
            "models": {
                label: {
                    "paper_top1": result["paper_top1"],
                    "flops": result["flops"],
                    "size": result["size"],
                    "ops": dict(result["census"].ops),
                    "weight_bytes": dict(result["weight_bytes"]),
                    "latency": {path: dataclasses.asdict(latency[path][label]) for path in latency},
                }
                for label, result in results.items()
            },
        }
        io.write_atomic(FLAGS.json, (io.json_dumps(payload) + "\n").encode())


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        _check_flags()
        if FLAGS.units:
            _units()
        else:
            _report_models()
    except DeploymentError as error:  # bad flags, or an output that cannot be written
        print(f"overhead_report: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("overhead_report"))
