"""Helpers shared by several test files (test files import from here, not from each other).

Models "as if trained" come from the library: `el_larq.deploy.profile.as_if_trained`.
"""

import os

import numpy as np

from el_larq import data

__all__ = ["make_idx_dataset"]


def make_idx_dataset(directory, train=48, test=20, size=28, seed=0):
    """Fashion-MNIST-like IDX files: class c has brightness ~ c, so a net can learn it."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, size, size)) + labels[:, None, None] * 20
        data.write_idx(f"{directory}/{prefix}-images-idx3-ubyte.gz", images.astype(np.uint8))
        data.write_idx(f"{directory}/{prefix}-labels-idx1-ubyte.gz", labels)
    return str(directory)
