"""Train an el-larq zoo model with the paper's recipe.

    python train/train.py --model el_resnet26 --width 0.25 --epochs 2 --output_dir runs/fmnist
    python train/train.py --recipe el_resnet26 --dataset imagenet2012 --data_dir ~/tfds \\
        --strategy mirrored --output_dir runs/imagenet

Rerunning the same command after a crash resumes the run. The same as `el-larq train`
(`el_larq.cli.train`); see docs/training.md.
"""

from el_larq.cli import train

if __name__ == "__main__":
    train.run()
