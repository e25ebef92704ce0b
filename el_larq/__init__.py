"""el_larq: Elastic-Link (Hu et al., AAAI 2022) for Larq binarized networks.

Importing this package selects Keras 2 (tf-keras) for TensorFlow, which larq and
Larq Compute Engine require, and registers el_larq's layers as Keras custom
objects so that plain `tf.keras.models.load_model` can read saved models.
"""

import os
import sys

from el_larq._keras2 import ensure_legacy_keras

# el-larq's own commands (`el-larq ...`; `python -m el_larq...`, whose argv[0] is "-m"
# while the package loads) keep TensorFlow's C++ start-up lines off the terminal, as the
# scripts in convert/ and train/ do. TensorFlow reads this once, so before it loads.
if sys.argv and os.path.basename(sys.argv[0]) in ("el-larq", "-m"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ensure_legacy_keras()

from el_larq import layers, reactnet  # noqa: E402  (must follow the Keras 2 guard)
from el_larq.layers import BinaryConv2D, ElasticLink, el_conv  # noqa: E402

__version__ = "0.1.0"

__all__ = ["BinaryConv2D", "ElasticLink", "el_conv", "layers", "__version__"]
