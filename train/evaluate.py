"""Top-1/top-5 accuracy of Keras (.h5) and LCE (.tflite) models on the same dataset split.

    python train/evaluate.py --model runs/fmnist/model.h5 --model runs/fmnist/model.tflite \\
        --dataset fashion_mnist

The same as `el-larq evaluate` (`el_larq.cli.evaluate`); see docs/training.md.
"""

from el_larq.cli import evaluate

if __name__ == "__main__":
    evaluate.run()
