"""Loading trained Keras models with el_larq's layers, after the safety checks.

Reading and checking stored configs lives in `el_larq.safety` (no TensorFlow needed to
read them); `read_model_config` stays importable from here.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf

from el_larq import safety
from el_larq.safety import DeploymentError, read_model_config

__all__ = ["DeploymentError", "load_model", "read_model_config"]


def _known_custom_objects() -> list[str]:
    return sorted(tf.keras.utils.get_custom_objects())


def load_model(path: str | os.PathLike, *, allow_unsafe: bool = False) -> tf.keras.Model:
    """Load a Keras model that uses el_larq's (and larq's) layers, safely.

    The whole stored config is checked before anything is deserialised
    (`el_larq.safety.check_model_config`): layers that run code stored in the file
    (`Lambda`, also inside wrappers, RNN cells or nested models) are refused unless
    `allow_unsafe=True`; unknown classes, foreign module names, corrupt or absurdly
    nested configs are always refused.

    # Arguments
        path: A `.h5` file, a `.keras` archive or a SavedModel directory.
        allow_unsafe: Load models with `Lambda` layers (only for files you trust).

    # Returns
        The `tf.keras.Model`, not compiled.

    # Raises
        DeploymentError: missing or corrupt file, not a model, a layer that runs stored
            code, or a layer class that is not registered (the message lists the
            registered ones).

    # Example
        ```python
        model = load_model("el_resnet18.h5")
        ```
    """
    safety.check_model_file(path, allow_unsafe=allow_unsafe)
    try:
        model = tf.keras.models.load_model(
            os.fspath(path), compile=False, safe_mode=not allow_unsafe
        )
    except RecursionError:  # not reachable through a checked config; never a traceback
        raise DeploymentError(f"cannot load {path}: its config is nested too deeply") from None
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        unknown = re.search(r"Unknown (?:layer|object|class)\w*: '?([\w.]+)'?", message)
        if unknown:
            raise DeploymentError(
                f"{path} uses an unknown layer class '{unknown.group(1)}'. Registered custom "
                f"layers: {', '.join(_known_custom_objects())} (plus every tf.keras layer); "
                "import the module that defines it before converting"
            ) from None
        raise DeploymentError(f"cannot load {path}: {message}") from None
    if not isinstance(model, tf.keras.Model):
        raise DeploymentError(f"{path} did not load as a Keras model (got {type(model)})")
    return model
