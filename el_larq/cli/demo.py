"""The main job: train an EL model on Fashion-MNIST, convert it to LCE, verify, benchmark.

    el-larq demo --model el_resnet26 --width 0.25 --epochs 1
    ./run.sh demo                   # in a checkout: set-up, data, then train/main_job.py

Each step is a real run of el-larq's commands (their progress shows as they go):

1. `el-larq train`      trains the model (resumes after a crash; a finished run in
                        the same output folder is reused unless --retrain),
2. `el-larq convert`    writes `model.tflite`, checks the op census and verifies
                        it against Keras on real test images; then again with
                        `--int8_weights`: `model_int8.tflite`, whose largest float
                        layer (the last downsample shortcut) keeps int8 weights,
                        verified with labels on 1,000 test images,
3. `el-larq evaluate`   top-1/top-5 of `model.h5` (Keras) and both flatbuffers (LCE
                        interpreter) on the whole Fashion-MNIST test set,
4. `el-larq benchmark`  host latency of both flatbuffers in LCE's interpreter,

then prints a summary and writes it to `<output_dir>/summary.json`. Outputs go to
`--output_dir`, by default `runs/main_job/<model>_w<width>_e<epochs>` in the current
directory.
"""

import json
import os
import subprocess
import sys
import time

from absl import flags

from el_larq import io
from el_larq.cli import run_tool

# The name in messages: `main job` (the script), `el-larq demo` (the command).
PROG = "main job"
FLAGS = flags.FLAGS
flags.DEFINE_string("model", "el_resnet26", "Zoo model to train (see el_larq.zoo.MODELS).")
flags.DEFINE_float("width", 0.25, "Channel width multiplier (0.25: stage widths 16-32-64-128).")
flags.DEFINE_integer("epochs", 1, "Training epochs over the 60,000 Fashion-MNIST images.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("steps_per_epoch", None, "Limit the steps per epoch (default: a full pass).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX folder (default: the Debian package's).")
flags.DEFINE_string(
    "output_dir", None, "Output folder (default: runs/main_job/<model>_w<width>_e<epochs>)."
)
flags.DEFINE_bool("retrain", False, "Train again even if the output folder holds a finished run.")
flags.DEFINE_integer("num_threads", 1, "Interpreter threads for evaluation and benchmark.")


class StepFailed(RuntimeError):
    pass


def _step(title: str, command: str, args: list[str]) -> None:
    print(f"\n==> {title}", flush=True)
    # `python -m el_larq`: the installed package this process runs, wherever it is.
    argv = [sys.executable, "-m", "el_larq", command, *args]
    print("    $ el-larq " + " ".join(argv[4:]), flush=True)
    if subprocess.run(argv).returncode != 0:
        raise StepFailed(f"{title} failed (command above); the files so far are kept.")


def _read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _run_job(out: str) -> dict:
    data = [f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []
    h5, tflite = os.path.join(out, "model.h5"), os.path.join(out, "model.tflite")
    int8 = os.path.join(out, "model_int8.tflite")
    start = time.time()
    if os.path.exists(h5) and not os.path.isdir(os.path.join(out, "backup")) and not FLAGS.retrain:
        print(f"\n==> 1/4 training: reusing the finished run in {out} (--retrain to train again)")
    else:
        args = [
            f"--model={FLAGS.model}",
            f"--width={FLAGS.width}",
            f"--epochs={FLAGS.epochs}",
            f"--batch_size={FLAGS.batch_size}",
            f"--seed={FLAGS.seed}",
            f"--output_dir={out}",
            "--dataset=fashion_mnist",
            *data,
        ]
        if FLAGS.steps_per_epoch:
            args.append(f"--steps_per_epoch={FLAGS.steps_per_epoch}")
        if FLAGS.retrain:
            args.append("--overwrite")
        _step("1/4 training on Fashion-MNIST", "train", args)
    train_seconds = time.time() - start
    _step(
        "2/4 converting to LCE, op census and verification on test images",
        "convert",
        [
            h5,
            "-o",
            tflite,
            "--dataset=fashion_mnist",
            *data,
            "--samples=256",
            f"--json={os.path.join(out, 'convert.json')}",
        ],
    )
    # int8 weights flip single predictions of a BNN, so beside the per-image checks the
    # gate is the labelled top-1 on 1,000 test images (docs/deployment.md, 1.1); step 3
    # then scores it on all of them.
    _step(
        "2/4 converting again with int8 weights in the float layers, verified on labels",
        "convert",
        [h5, "-o", int8, "--int8_weights", "--dataset=fashion_mnist", *data, "--samples=1000"]
        + [f"--json={os.path.join(out, 'convert_int8.json')}"],
    )
    _step(
        "3/4 test-set accuracy: Keras model.h5 vs LCE model.tflite and model_int8.tflite",
        "evaluate",
        [
            f"--model={h5}",
            f"--model={tflite}",
            f"--model={int8}",
            "--dataset=fashion_mnist",
            *data,
            f"--num_threads={FLAGS.num_threads}",
            f"--json={os.path.join(out, 'evaluate.json')}",
        ],
    )
    _step(
        "4/4 host latency in the LCE interpreter",
        "benchmark",
        [
            tflite,
            int8,
            f"--num_threads={FLAGS.num_threads}",
            "--num_runs=50",
            f"--json={os.path.join(out, 'benchmark.json')}",
        ],
    )
    return _summary(out, train_seconds)


def _summary(out: str, train_seconds: float) -> dict:
    keras, lite, lite8 = _read(os.path.join(out, "evaluate.json"))
    convert = _read(os.path.join(out, "convert.json"))
    convert8 = _read(os.path.join(out, "convert_int8.json"))
    bench, bench8 = _read(os.path.join(out, "benchmark.json"))
    summary = {
        "model": FLAGS.model,
        "width": FLAGS.width,
        "epochs": FLAGS.epochs,
        "train_seconds": round(train_seconds, 1),
        "test_examples": keras["examples"],
        "keras_top1": keras["top1"],
        "lce_top1": lite["top1"],
        "keras_top5": keras["top5"],
        "lce_top5": lite["top5"],
        "lce_int8_top1": lite8["top1"],
        "lce_int8_top5": lite8["top5"],
        "tflite_bytes": convert["size"]["flatbuffer_bytes"],
        "tflite_int8_bytes": convert8["size"]["flatbuffer_bytes"],
        "float32_bytes": convert["size"]["float32_bytes"],
        "latency_ms_median": bench["median_ms"],
        "latency_int8_ms_median": bench8["median_ms"],
        "latency_threads": bench["num_threads"],
        "kernel": bench.get("kernel"),
        "files": {
            "keras": os.path.join(out, "model.h5"),
            "tflite": os.path.join(out, "model.tflite"),
            "tflite_int8": os.path.join(out, "model_int8.tflite"),
        },
    }
    io.write_atomic(
        os.path.join(out, "summary.json"), (json.dumps(summary, indent=1) + "\n").encode()
    )
    return summary


def main(argv):
    del argv
    out = FLAGS.output_dir or os.path.join(
        "runs", "main_job", f"{FLAGS.model}_w{FLAGS.width:g}_e{FLAGS.epochs}"
    )
    try:
        s = _run_job(out)
    except StepFailed as error:
        print(f"\n{PROG}: {error}", file=sys.stderr)
        return 1
    differ = round(abs(s["keras_top1"] - s["lce_top1"]) * s["test_examples"])
    print(
        "\n==> summary\n"
        f"  model            {s['model']} (width {s['width']:g}), "
        f"{s['epochs']} epoch{'s' * (s['epochs'] != 1)}, "
        f"trained in {s['train_seconds']:.0f} s\n"
        f"  test top-1       Keras {100 * s['keras_top1']:.2f} %   LCE {100 * s['lce_top1']:.2f} %"
        f"   LCE int8 {100 * s['lce_int8_top1']:.2f} %"
        f"   (Keras and LCE {differ} of {s['test_examples']} images apart)\n"
        f"  test top-5       Keras {100 * s['keras_top5']:.2f} %"
        f"   LCE {100 * s['lce_top5']:.2f} %   LCE int8 {100 * s['lce_int8_top5']:.2f} %\n"
        f"  size             {s['tflite_bytes'] / 1024:.0f} KiB flatbuffer, "
        f"{s['tflite_int8_bytes'] / 1024:.0f} KiB with int8 weights, vs "
        f"{s['float32_bytes'] / 1024:.0f} KiB float32 "
        f"({s['float32_bytes'] / s['tflite_bytes']:.1f}x and "
        f"{s['float32_bytes'] / s['tflite_int8_bytes']:.1f}x smaller)\n"
        f"  host latency     {s['latency_ms_median']:.2f} ms median, int8 "
        f"{s['latency_int8_ms_median']:.2f} ms, {s['latency_threads']} thread "
        f"(LCE Python interpreter, x86 kernels: {s['kernel']}; ARM64 needs lce_benchmark_model)\n"
        f"  files            {s['files']['keras']}\n"
        f"                   {s['files']['tflite']}\n"
        f"                   {s['files']['tflite_int8']}\n"
        f"                   {os.path.join(out, 'summary.json')}"
    )
    return 0


def run(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Run the main job on `argv` (default `sys.argv`) and exit with its status.

    # Arguments
        argv: The command line, program name first.
        prog: The name in messages.

    # Example
        ```python
        run(["el-larq demo", "--epochs", "1", "--output_dir", "demo"])
        ```
    """
    run_tool(__name__, main, argv, prog)


if __name__ == "__main__":
    run()
