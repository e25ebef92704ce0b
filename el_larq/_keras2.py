"""Make sure TensorFlow runs with Keras 2 (tf-keras) behind `tf.keras`.

larq and Larq Compute Engine are written against Keras 2; with Keras 3 behind
`tf.keras` neither imports nor converts. TensorFlow reads `TF_USE_LEGACY_KERAS`
once, when it is first imported, so the variable must be set before that: setting
it later (or importing larq first, which imports TensorFlow itself) is too late.
"""

import importlib.util
import os
import sys

_HOW_TO_FIX = (
    "el_larq needs Keras 2 (tf-keras) behind tf.keras, but TensorFlow was already imported "
    "with Keras {version}, and TensorFlow chooses its Keras once, at its first import. "
    "Fix: make `import el_larq` the first import of your program, before tensorflow, larq "
    "or larq_compute_engine, and start Python again (in a notebook, restart the kernel)."
)
_NO_TF_KERAS = "el_larq needs the tf-keras package for Keras 2: pip install tf-keras"


def ensure_legacy_keras() -> None:
    """Select tf-keras for TensorFlow, or fail with the fix when it is too late to.

    # Raises
        ImportError: tf-keras is not installed, or TensorFlow is already imported with
            Keras 3 behind `tf.keras`.

    # Example
        ```python
        ensure_legacy_keras()  # before the first `import tensorflow`
        import tensorflow as tf  # tf.keras is tf-keras
        ```
    """
    if importlib.util.find_spec("tf_keras") is None:
        raise ImportError(_NO_TF_KERAS)
    tf = sys.modules.get("tensorflow")
    if tf is None:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        return
    # Keras 2 layers live in tf_keras.src, Keras 3 layers in keras.src.
    if not tf.keras.layers.Layer.__module__.startswith("tf_keras"):
        version = getattr(tf.keras, "__version__", "3")
        raise ImportError(_HOW_TO_FIX.format(version=version))
