"""How long `el_larq.elasticize.elasticize` takes on a big keras-applications CNN.

    python train/benchmark_elasticize.py [--application=DenseNet121] [--image_size=224]
        [--channels=3] [--num_classes=1000] [--rounds=3] [--goal=10] [--json=out.json]

Builds the float model once (`weights=None`, offline), then calls `elasticize` on it
`--rounds` times in this process. The first call is what a user meets (a fresh process);
later calls show the steady cost. Wall-clock and process CPU seconds are printed for
each, with the float model's own build time for scale, and the verdict compares the
first call with `--goal` seconds. Run it on an idle machine: other work on the CPUs
lengthens the wall-clock times.
"""

import platform
import statistics
import sys
import time

from absl import app, flags

from el_larq import io
from el_larq.cli import flag_groups, flags_parser

FLAGS = flags.FLAGS
flags.DEFINE_string("application", "DenseNet121", "tf.keras.applications builder.")
flags.DEFINE_integer("image_size", 224, "Input side in pixels.", lower_bound=32)
flags.DEFINE_integer("channels", 3, "Input channels.", lower_bound=1)
flags.DEFINE_integer("num_classes", 1000, "Classes.", lower_bound=2)
flags.DEFINE_integer("rounds", 3, "elasticize calls.", lower_bound=1)
flags.DEFINE_float("goal", 10.0, "Seconds the first call may take.", lower_bound=0)
flag_groups.define_json_flag()

PROG = "benchmark_elasticize.py"


def _timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str]) -> int:
    del argv
    from el_larq.elasticize import elasticize
    from el_larq.zoo import keras_application

    flag_groups.check_json_flag(PROG)
    shape = (FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
    try:
        model, build_s, build_cpu = _timed(
            lambda: keras_application(
                FLAGS.application, input_shape=shape, num_classes=FLAGS.num_classes
            )
        )
    except ValueError as error:
        sys.exit(f"{PROG}: error: {error}")
    print(f"{FLAGS.application} {shape}: {len(model.layers)} layers, built in {build_s:.2f} s")
    rounds = []
    for index in range(FLAGS.rounds):
        (binary, report), wall, cpu = _timed(lambda: elasticize(model))
        counts = report.counts()
        rounds.append({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)})
        print(
            f"elasticize call {index + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU -> "
            f"{len(binary.layers)} layers ({counts})",
            flush=True,
        )
    first = rounds[0]["wall_s"]
    later = [r["wall_s"] for r in rounds[1:]]
    if later:
        print(f"later calls: median {statistics.median(later):.2f} s wall")
    verdict = "MET" if first < FLAGS.goal else "NOT MET"
    print(f"first call {first:.2f} s vs goal < {FLAGS.goal:g} s: {verdict}")
    if FLAGS.json:
        record = {
            "application": FLAGS.application,
            "input_shape": shape,
            "machine": platform.machine(),
            "float_build_s": round(build_s, 3),
            "float_build_cpu_s": round(build_cpu, 3),
            "rounds": rounds,
            "goal_s": FLAGS.goal,
            "met": first < FLAGS.goal,
        }
        io.write_atomic(FLAGS.json, (io.json_dumps(record) + "\n").encode())
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(PROG))
