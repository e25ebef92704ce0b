"""el_larq: Elastic-Link (Hu et al., AAAI 2022) for Larq binarized networks.

Importing this package selects Keras 2 (tf-keras) for TensorFlow, which larq and
Larq Compute Engine require, and registers el_larq's layers as Keras custom
objects so that plain `tf.keras.models.load_model` can read saved models. Import it
before tensorflow, larq or larq_compute_engine.
"""

import contextlib
import sys

from el_larq._keras2 import ensure_legacy_keras
from el_larq._tf_startup import is_el_larq_command, quiet_tensorflow_import

ensure_legacy_keras()
# el-larq's own commands keep TensorFlow's start-up lines off the terminal; the first
# import of TensorFlow is here, through the layers.
_quiet = is_el_larq_command(sys.argv[0] if sys.argv else "")
with quiet_tensorflow_import() if _quiet else contextlib.nullcontext():
    from el_larq import layers, reactnet  # noqa: F401  (reactnet registers RSign, RPReLU)
from el_larq.layers import BinaryConv2D, ElasticLink, el_conv  # noqa: E402

__version__ = "0.1.0"

__all__ = ["BinaryConv2D", "ElasticLink", "el_conv", "layers", "__version__"]
