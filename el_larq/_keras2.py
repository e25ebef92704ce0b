"""Make sure TensorFlow runs with Keras 2 (tf-keras) behind `tf.keras`.

larq and Larq Compute Engine are written against Keras 2; with Keras 3 behind
`tf.keras` neither imports nor converts. TensorFlow reads `TF_USE_LEGACY_KERAS`
once, when it is first imported, so the variable must be set before that.
"""

import os
import sys

_HOW_TO_FIX = (
    "el_larq needs Keras 2 (the tf-keras package) behind tf.keras, because larq and "
    "Larq Compute Engine do not work with Keras 3. TensorFlow was already imported with "
    "Keras {version} behind tf.keras. Fix: import el_larq (or larq) before tensorflow, or "
    "set the environment variable TF_USE_LEGACY_KERAS=1 before Python starts, e.g. "
    "`TF_USE_LEGACY_KERAS=1 python your_script.py`, and make sure tf-keras is installed "
    "(pip install tf-keras==2.19.0)."
)


def ensure_legacy_keras() -> None:
    """Select tf-keras for TensorFlow, or fail loudly when it is too late to.

    # Raises
        ImportError: TensorFlow is already imported with Keras 3 behind `tf.keras`.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        return
    # Keras 2 layers live in tf_keras.src, Keras 3 layers in keras.src.
    if not tf.keras.layers.Layer.__module__.startswith("tf_keras"):
        version = getattr(tf.keras, "__version__", "3")
        raise ImportError(_HOW_TO_FIX.format(version=version))
