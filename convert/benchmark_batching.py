"""Images/s of LCE's host interpreter: one image per call against batched calls.

    python convert/benchmark_batching.py [--model=el_resnet26] [--image_size=28]
        [--channels=1] [--width=0.25] [--batch_sizes=4,8,16,32] [--images=256]
        [--rounds=5] [--num_threads=1] [--json=batching.json]

Builds a zoo model with the statistics of a trained one (`as_if_trained`), converts it
with LCE, and times `el_larq.deploy.batching.BatchPredictor` at each batch size on the
same random images in interleaved rounds (`batching_speed`): what `el-larq evaluate
--interpreter_batch` gains or loses on this host. Batch 1 is the one-by-one baseline.
"""

import platform
import sys

from absl import app, flags

from el_larq import io
from el_larq.cli import flag_groups, flags_parser
from el_larq.deploy import batching, conversion, profile
from el_larq.zoo import get_model

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "el_resnet26", "Zoo model.")
flags.DEFINE_integer("image_size", 28, "Input side in pixels.", lower_bound=8)
flags.DEFINE_integer("channels", 1, "Input channels.", lower_bound=1)
flags.DEFINE_integer("num_classes", 10, "Classes.", lower_bound=2)
flags.DEFINE_float("width", 0.25, "Width multiplier.")
flags.DEFINE_list("batch_sizes", ["4", "8", "16", "32"], "Batched settings besides 1.")
flags.DEFINE_integer("images", 256, "Images per timed run.", lower_bound=1)
flags.DEFINE_integer("rounds", 5, "Interleaved rounds.", lower_bound=1)
flag_groups.define_interpreter_flags()
flag_groups.define_json_flag()

PROG = "benchmark_batching.py"


def main(argv: list[str]) -> int:
    del argv
    try:
        sizes = tuple(int(size) for size in FLAGS.batch_sizes)
    except ValueError:
        sizes = (0,)
    if min(sizes, default=1) < 1:
        sys.exit(f"{PROG}: error: --batch_sizes must be integers >= 1, got {FLAGS.batch_sizes}")
    flag_groups.check_json_flag(PROG)
    shape = (FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
    model = get_model(
        FLAGS.model, input_shape=shape, num_classes=FLAGS.num_classes, width=FLAGS.width
    )
    flatbuffer, _ = conversion.convert(profile.as_if_trained(model))
    rows = batching.batching_speed(
        flatbuffer,
        batch_sizes=sizes,
        images=FLAGS.images,
        rounds=FLAGS.rounds,
        **flag_groups.interpreter_settings(),
    )
    settings = flag_groups.interpreter_settings()
    print(f"{FLAGS.model} {shape} width {FLAGS.width}, {FLAGS.images} images x {FLAGS.rounds}")
    print(f"rounds, {platform.machine()}, interpreter {settings}")
    print("| batch | batched | images/s | CPU images/s | speed-up | CPU speed-up | identical |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['batch_size']} | {r['batched']} | {r['images_per_s']:.1f} "
            f"| {r['cpu_images_per_s']:.1f} | {r['speedup']:.2f}x | {r['cpu_speedup']:.2f}x "
            f"| {r['identical']} |"
        )
    if FLAGS.json:
        report = {
            "model": FLAGS.model,
            "input_shape": shape,
            "width": FLAGS.width,
            "images": FLAGS.images,
            "rounds": FLAGS.rounds,
            "machine": platform.machine(),
            "interpreter": settings,
            "rows": rows,
        }
        io.write_atomic(FLAGS.json, (io.json_dumps(report) + "\n").encode())
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(PROG))
