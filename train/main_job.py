"""The main job: train an EL model on Fashion-MNIST, convert it to LCE, verify, benchmark.

    ./run.sh demo                                  # set-up, data, then this script
    python train/main_job.py --model el_resnet26 --width 0.25 --epochs 1

The same as `el-larq demo` (`el_larq.cli.demo`): each step is a real run of el-larq's
commands; outputs go to `--output_dir` (default `runs/main_job/...` in the current
directory) and a summary to `<output_dir>/summary.json`.
"""

from el_larq.cli import demo

if __name__ == "__main__":
    demo.run()
