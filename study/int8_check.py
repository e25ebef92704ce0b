"""How far int8 weights move trained models: predictions changed and top-1 against Keras.

    python study/int8_check.py runs/a/model.h5 runs/b/model.h5 [--stochastic_seeds=8]
        [--dataset=fashion_mnist] [--noxnnpack] [--json=int8_check.json]

For each model, on the whole evaluation split: the float32 flatbuffer and
`quantize_weights`' default choice in both modes (`dequantize`, `hybrid`), each as the share
of images whose predicted class differs from Keras's and the top-1 change in points. With
`--stochastic_seeds=N`, the default choice's tensors are also rounded stochastically
(N seeds) and to float16, as float32 values in the float flatbuffer: whether a top-1 change
is the luck of one rounding or a loss. The numbers behind docs/deployment.md, section 1.1.
"""

import json
import sys

import el_larq  # noqa: F401  (first: selects Keras 2 before TensorFlow loads)

# isort: split
import numpy as np
from absl import app, flags
from larq_compute_engine.mlir.python import tflite_schema

from el_larq import io
from el_larq.cli import flag_groups
from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import decoded_name, pack
from el_larq.deploy.host import make_interpreter
from el_larq.deploy.int8 import quantize_weights
from el_larq.deploy.loading import load_model
from el_larq.deploy.verification import dataset_examples

FLAGS = flags.FLAGS
flag_groups.define_dataset_flags("fashion_mnist", "Labelled dataset (its evaluation split).")
flags.DEFINE_integer("examples", 10000, "Evaluation images.", lower_bound=1)
flags.DEFINE_integer("stochastic_seeds", 0, "Stochastic roundings of the default's tensors.")
flags.DEFINE_integer(
    "int8_max_binary_after",
    None,
    "The default choice with this limit instead (-1: none, the previous default's choice).",
    lower_bound=-1,
)
flag_groups.define_interpreter_flags()
flag_groups.define_json_flag("Also write the rows as JSON to this path.")


def _rounded(flatbuffer: bytes, names: set[str], seed: int | None) -> bytes:
    """The float flatbuffer with the named weights rounded in place: per-channel int8
    steps, to nearest or stochastically (`seed`), or to float16 (`seed=-1`)."""
    model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(flatbuffer, 0))
    for tensor in model.subgraphs[0].tensors:
        if decoded_name(tensor.name) not in names:
            continue
        buffer = model.buffers[tensor.buffer]
        w = np.frombuffer(bytes(buffer.data), np.float32).reshape(tensor.shape)
        if seed == -1:
            r = w.astype(np.float16).astype(np.float32)
        else:
            scale = np.abs(w).max(axis=tuple(range(1, w.ndim)), keepdims=True) / 127
            scale[scale == 0] = 1
            u = 0.5 if seed is None else np.random.default_rng(seed).random(w.shape)
            r = (np.floor(w / scale + u) * scale).astype(np.float32)
        buffer.data = np.frombuffer(r.tobytes(), np.uint8)
    return pack(model, len(flatbuffer))


def check(path: str) -> dict:
    choice = {}
    if FLAGS.int8_max_binary_after is not None:
        limit = FLAGS.int8_max_binary_after
        choice["max_binary_after"] = None if limit < 0 else limit
    model = load_model(path)
    flatbuffer, _ = convert(model)
    x, y = dataset_examples(model, FLAGS.dataset, FLAGS.examples, data_dir=FLAGS.data_dir)
    keras = model.predict(x, verbose=0, batch_size=500).argmax(-1)
    row = {"model": path, "examples": len(y), "keras_top1": float(np.mean(keras == y))}

    def score(label: str, variant: bytes) -> None:
        predicted = make_interpreter(variant, **flag_groups.interpreter_settings())
        predicted = predicted.predict(x).argmax(-1)
        row[label] = {
            "bytes": len(variant),
            "changed": float(np.mean(predicted != keras)),
            "top1_points": round(100 * float(np.mean(predicted == y) - row["keras_top1"]), 2),
        }
        print(path, label, row[label], flush=True)

    score("float32", flatbuffer)
    for mode in ("dequantize", "hybrid"):
        score(f"default {mode}", quantize_weights(flatbuffer, mode=mode, **choice)[0])
    if FLAGS.stochastic_seeds:
        names = {w.tensor for w in quantize_weights(flatbuffer, **choice)[1] if w.int8}
        score("default float16", _rounded(flatbuffer, names, -1))
        for seed in range(FLAGS.stochastic_seeds):
            score(f"default int8 stochastic {seed}", _rounded(flatbuffer, names, seed))
        points = [
            row[f"default int8 stochastic {s}"]["top1_points"]
            for s in range(FLAGS.stochastic_seeds)
        ]
        row["stochastic_mean_sd"] = [float(np.mean(points)), float(np.std(points, ddof=1))]
        print(path, "stochastic rounding: mean, s.d. (points)", row["stochastic_mean_sd"])
    return row


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        raise app.UsageError("expected Keras model paths")
    rows = [check(path) for path in argv[1:]]
    if FLAGS.json:
        io.write_atomic(FLAGS.json, (json.dumps(rows, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
