"""Top-1/top-5 accuracy of Keras (.h5) and LCE (.tflite) models on the same dataset split.

    python train/evaluate.py --model runs/fmnist/model.h5 --model runs/fmnist/model.tflite \\
        --dataset fashion_mnist

The same as `el-larq evaluate` (`el_larq.cli.evaluate`); see docs/training.md.
"""

import os

# Before `el_larq` imports TensorFlow: quiet its C++ logging unless asked.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from el_larq.cli import evaluate  # noqa: E402

if __name__ == "__main__":
    evaluate.run()
