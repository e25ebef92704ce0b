"""Reference binary networks from larq-zoo, for side-by-side latency and size comparisons.

larq-zoo (PyPI `larq-zoo`) builds QuickNet and other published BNNs with `weights=None`.
It is not a dependency of el-larq: its metadata pins larq < 0.13.2 and protobuf < 3.20,
which the rest of this stack cannot use, and it imports Keras through the `keras`
package, which is Keras 3 next to TensorFlow 2.19. Installed without its dependencies
(`pip install --no-deps larq-zoo==2.3.2 zookeeper==1.4.0 click 'typeguard>=4'`), its model
builders work with tf-keras once the two Keras 2 modules it imports are pointed at
tf-keras's copies, which `quicknet` does.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["QUICKNETS", "larq_zoo_error", "quicknet"]

# Published ImageNet top-1 of larq-zoo's pretrained weights (its model docstrings).
QUICKNETS = {"QuickNetSmall": 59.4, "QuickNet": 63.3, "QuickNetLarge": 66.9}

# larq-zoo imports these Keras 2 modules by their old top-level names.
_KERAS2_MODULES = {
    "keras.applications.imagenet_utils": "tf_keras.src.applications.imagenet_utils",
    "keras.engine.keras_tensor": "tf_keras.src.engine.keras_tensor",
}


def _import_larq_zoo() -> Any:
    import el_larq  # noqa: F401  (Keras 2 before TensorFlow)

    for old, new in _KERAS2_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))
    import larq_zoo

    return larq_zoo


def larq_zoo_error() -> str | None:
    """Why larq-zoo's models cannot be built here, or None when they can."""
    try:
        _import_larq_zoo()
    except Exception as error:  # ImportError, or larq-zoo failing on its own imports
        return f"larq-zoo is not usable ({type(error).__name__}: {error})"
    return None


def quicknet(name: str, *, input_shape: tuple[int, int, int] = (224, 224, 3)) -> Any:
    """Build larq-zoo's `QuickNetSmall`, `QuickNet` or `QuickNetLarge` with `weights=None`.

    # Arguments
        name: One of `QUICKNETS`.
        input_shape: Image shape.

    # Returns
        The untrained `tf.keras.Model` (1000 classes).

    # Raises
        ValueError: unknown name. ImportError: larq-zoo not installed (see module docs).

    # Example
        ```python
        model = quicknet("QuickNet")
        ```
    """
    if name not in QUICKNETS:
        raise ValueError(f"unknown QuickNet {name!r}; known: {', '.join(QUICKNETS)}")
    larq_zoo = _import_larq_zoo()
    return getattr(larq_zoo.sota, name)(weights=None, input_shape=input_shape)
