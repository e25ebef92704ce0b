"""Checks on saved Keras models from outside, made before anything deserialises them.

Everything el_larq loads from a user (or from a stranger who sent the user a file) goes
through here first, so that a hostile or broken file gives a one-line error instead of
running code or crashing the process:

* `check_model_config` / `check_model_file`: a saved Keras model's stored config, scanned
  whole (nested models, wrappers, RNN cells, any key at any depth) before it is
  deserialised. Layers that run code stored in the file (`Lambda`, op layers naming
  arbitrary TensorFlow functions, Python bytecode) are refused unless the user trusts
  the file; classes that are neither tf.keras built-ins nor registered custom objects,
  and module names outside Keras, larq and the registered objects' modules (Keras
  imports them), are always refused.
* `read_model_config`: the config itself, read without TensorFlow deserialising it.

The other checks on outside input live with the job they guard: `.tflite` files in
`el_larq.deploy.validation`, output paths in `el_larq.io.check_outputs`, device command
lines in `el_larq.deploy.device`. All failures raise `DeploymentError` with a one-line
message naming the file.
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DeploymentError",
    "MAX_CONFIG_DEPTH",
    "check_model_config",
    "check_model_file",
    "parse_config_json",
    "read_model_config",
]


class DeploymentError(Exception):
    """A problem with the user's model, data or paths, explained in one line."""


# ---------------------------------------------------------------- model configs
# A real config nests a few levels per nested model; thousands of levels only serve to
# exhaust the recursion of whatever walks it (json, Keras' deserialiser).
MAX_CONFIG_DEPTH = 100
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
# Layers whose stored config is code: Lambda's Python bytecode, TensorFlowOpLayer's
# graph node (any TensorFlow op, file writes included), Keras' serialised lambdas.
_CODE_CLASSES = ("Lambda", "TensorFlowOpLayer", "__lambda__")
# Keys under which Keras stores Python bytecode (`func_dump`) or its kind.
_CODE_KEYS = ("function", "function_type", "output_shape_type", "mask_type")
# Op layers (`x * 2`, `tf.reshape(x)` on Keras tensors) store the name of a public
# TensorFlow function that Keras looks up and calls; only pure tensor maths is allowed
# (`io.write_file`, `py_function`, ... are public symbols too).
_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
_PURE_OP_PREFIXES = ("math.", "nn.", "linalg.", "__operators__.", "image.resize")
_PURE_OPS = frozenset(
    "reshape concat stack unstack transpose expand_dims squeeze identity cast shape split "
    "pad tile gather gather_nd clip_by_value where zeros_like ones_like broadcast_to reverse "
    "slice strided_slice einsum matmul sign abs maximum minimum reduce_sum reduce_mean "
    "reduce_max reduce_min add multiply subtract divide sqrt square".split()
)
# Serialisation helpers that Keras writes in place of plain values.
_STRUCTURE_CLASSES = frozenset(
    "__tuple__ __tensor__ __numpy__ __bytes__ __typespec__ __ellipsis__ __slice__ "
    "TensorShape TypeSpec TensorSpec InputSpec Functional Sequential Model function "
    "Policy DTypePolicy".split()
)
_TRUSTED_MODULE_ROOTS = ("builtins", "keras", "tf_keras", "larq", "el_larq")


def _class_names(module: Any) -> set[str]:
    names = set()
    for name in dir(module):
        if not name.startswith("_") and isinstance(getattr(module, name, None), type):
            names.add(name)
    return names


def _keras_names() -> tuple[frozenset[str], dict[str, Any]]:
    """(tf.keras built-in class names, registered custom objects): known to Keras."""
    import tensorflow as tf

    return _builtin_keras_names(), dict(tf.keras.utils.get_custom_objects())


@functools.lru_cache(maxsize=1)
def _builtin_keras_names() -> frozenset[str]:
    import tensorflow as tf

    keras = tf.keras
    names: set[str] = set()
    for module in (
        keras.layers,
        keras.initializers,
        keras.regularizers,
        keras.constraints,
        keras.optimizers,
        keras.optimizers.schedules,
        keras.losses,
        keras.metrics,
        keras.mixed_precision,
        keras.activations,
    ):
        names |= _class_names(module)
    for name in dir(keras.activations):  # activations are functions, named in configs
        if not name.startswith("_"):
            names.add(name)
    return frozenset(names)


def _trusted_module(module: str, registered: Mapping[str, Any]) -> bool:
    root = module.split(".")[0]
    if root in _TRUSTED_MODULE_ROOTS:
        return True
    # Modules that define a registered custom object were imported by the user already.
    modules = {getattr(obj, "__module__", None) for obj in registered.values()}
    return module in modules


def parse_config_json(text: str | bytes, source: str) -> Any:
    """Parse a stored model config, with a one-line error for bad or absurd JSON.

    # Arguments
        text: The JSON text.
        source: What it came from, for the message (e.g. the file name).

    # Returns
        The parsed value.

    # Raises
        DeploymentError: not UTF-8, not JSON, or nested deeper than `MAX_CONFIG_DEPTH`.

    # Example
        ```python
        config = parse_config_json('{"class_name": "Functional"}', "model.h5")
        ```
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text)
    except RecursionError:
        raise DeploymentError(
            f"{source}: the stored model config is nested too deeply to be a model"
        ) from None
    except (UnicodeDecodeError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DeploymentError(
            f"{source}: the stored model config is not valid JSON ({reason})"
        ) from None
    _check_depth(value, source)
    return value


def _check_depth(value: Any, source: str) -> None:
    # Iterative, so that the check itself cannot run out of stack.
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise DeploymentError(
                f"{source}: the stored model config is nested more than {MAX_CONFIG_DEPTH} "
                "levels deep; refusing it (no real model needs that)"
            )
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _objects(config: Any) -> Iterator[tuple[dict, list[str]]]:
    """Every serialised object (a dict with a `class_name`) at any depth, with the
    names of the layers it sits in."""
    stack: list[tuple[Any, list[str]]] = [(config, [])]
    while stack:
        item, parents = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str):
                yield item, parents
                inner = item.get("config")
                name = inner.get("name") if isinstance(inner, dict) else None
                if isinstance(name, str):
                    parents = [*parents, name]
            stack.extend((value, parents) for value in reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend((value, parents) for value in reversed(item))


def _runs_code(obj: dict) -> str | None:
    """Why `obj` runs code stored in the file, or None."""
    class_name = obj["class_name"]
    if class_name in _CODE_CLASSES:
        return ""
    config = obj.get("config")
    if not isinstance(config, dict):
        return None
    if class_name in _OP_LAYERS:
        symbol = config.get("function")
        pure = isinstance(symbol, str) and (
            symbol in _PURE_OPS or symbol.startswith(_PURE_OP_PREFIXES)
        )
        return None if pure else f"calls tf.{symbol}"
    # Any other class that stores bytecode or a function kind (a Lambda subclass, ...).
    for key in _CODE_KEYS:
        value = config.get(key)
        if value is not None and not isinstance(value, (str, int, float, bool)):
            return f"stores code under '{key}'"
        if key.endswith("_type") and value in ("lambda", "raw"):
            return f"stores code ('{key}': {value})"
    return None


def check_model_config(config: Any, *, source: str, allow_unsafe: bool = False) -> None:
    """Refuse a stored Keras model config that would run code or use unknown classes.

    Every serialised object at any depth is looked at (nested models, `TimeDistributed`
    / `Bidirectional` wrappers, RNN cells, initializers, quantizers, ...), before anything
    is deserialised.

    # Arguments
        config: The parsed config (`read_model_config`).
        source: The file it came from, for the messages.
        allow_unsafe: Accept layers that run code stored in the file (files you trust).
            Unknown classes and untrusted modules are refused even then.

    # Raises
        DeploymentError: a layer that runs stored code, an unknown class, a module
            outside Keras / larq / registered objects, or absurd nesting.

    # Example
        ```python
        check_model_config(read_model_config("model.h5"), source="model.h5")
        ```
    """
    _check_depth(config, source)
    builtins, registered = _keras_names()
    code: dict[str, list[str]] = {}
    for obj, parents in _objects(config):
        class_name = obj["class_name"]
        inner = obj.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        # The outermost model's name says nothing; inner wrappers and models do.
        inside = "/".join(parents[1:])
        if isinstance(name, str):
            where = f"{name} in {inside}" if inside else name
        else:
            where = inside or "the top level"
        registered_name = obj.get("registered_name")
        known = (
            class_name in builtins
            or class_name in _STRUCTURE_CLASSES
            or class_name in _CODE_CLASSES
            or class_name in _OP_LAYERS
            or class_name in registered
            or (isinstance(registered_name, str) and registered_name in registered)
        )
        if not known:
            raise DeploymentError(
                f"{source} uses an unknown layer class '{class_name}' (at {where}). "
                f"Registered custom layers: {', '.join(sorted(registered))} (plus every "
                "tf.keras layer); import the module that defines it before converting"
            )
        module = obj.get("module")
        if module is not None and (
            not isinstance(module, str) or not _trusted_module(module, registered)
        ):
            raise DeploymentError(
                f"{source}: '{class_name}' at {where} names the Python module {module!r}, "
                "which is neither Keras, larq, el_larq nor a registered layer's module; "
                "refusing to import it"
            )
        if class_name == "function" and not (
            isinstance(inner, str) and (inner in builtins or inner in registered)
        ):
            # Keras would look the name up in whatever module the file names.
            raise DeploymentError(
                f"{source}: function {inner!r} at {where} is neither a Keras activation nor "
                "a registered custom object; refusing it"
            )
        why = _runs_code(obj)
        if why is not None:
            label = class_name if class_name != "__lambda__" else "serialised lambda"
            entry = where + (f" ({why})" if why else "")
            if entry not in code.setdefault(label, []):  # SavedModels list layers twice
                code[label].append(entry)
    if code and not allow_unsafe:
        found = "; ".join(f"{cls} layer(s) {', '.join(names)}" for cls, names in code.items())
        raise DeploymentError(
            f"{source} contains {found}, which run code stored in the file; refusing to "
            "load it. Pass --allow_unsafe only if you trust the file"
        )


# ---------------------------------------------------------------- reading configs
def _h5_config(path: Path) -> Any:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DeploymentError(
            f"{path} is not a readable HDF5 file (corrupt or truncated?): {reason}"
        ) from None
    if raw is None:
        raise DeploymentError(
            f"{path} holds no Keras model config (a weights-only file?); save the whole model "
            "with model.save(path)"
        )
    if not isinstance(raw, (str, bytes)):
        raise DeploymentError(f"{path}: the stored model config is not text")
    return parse_config_json(raw, str(path))


def _keras_zip_config(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read("config.json")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise DeploymentError(f"{path} is not a valid .keras archive: {error}") from None
    return parse_config_json(raw, str(path))


def _saved_model_config(path: Path) -> Any:
    from tf_keras.protobuf import saved_metadata_pb2

    metadata_file = path / "keras_metadata.pb"
    if not metadata_file.exists():
        raise DeploymentError(
            f"{path} is a SavedModel without Keras metadata (keras_metadata.pb); save it with "
            "tf.keras model.save(path, save_format='tf')"
        )
    metadata = saved_metadata_pb2.SavedMetadata()
    try:
        metadata.ParseFromString(metadata_file.read_bytes())
    except Exception as error:  # protobuf raises its own DecodeError
        raise DeploymentError(f"{path}/keras_metadata.pb is corrupt: {error}") from None
    nodes = [
        parse_config_json(node.metadata, f"{path}/keras_metadata.pb") for node in metadata.nodes
    ]
    # Flat list of every object's metadata: the same shape as a config's "layers".
    return {"layers": [node for node in nodes if isinstance(node, dict) and "class_name" in node]}


def read_model_config(path: str | os.PathLike) -> Any:
    """A saved Keras model's config, read without deserialising (so without running) it.

    The format is decided exactly as tf.keras' `load_model` decides it (a directory is a
    SavedModel, a zip archive named `*.keras` a Keras archive, anything else HDF5), so
    the config read here is the one Keras would build.

    # Arguments
        path: A `.h5`/`.hdf5` file, a `.keras` archive or a SavedModel directory.

    # Returns
        The config as parsed JSON.

    # Raises
        DeploymentError: missing path, not a model, a corrupt file or config.

    # Example
        ```python
        config = read_model_config("model.h5")
        ```
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise DeploymentError(f"{path}: no such file or directory")
    if path.is_dir():
        if not any((path / name).exists() for name in _SAVED_MODEL_FILES):
            raise DeploymentError(f"{path} is a directory but not a SavedModel (no saved_model.pb)")
        return _saved_model_config(path)
    if not path.is_file():
        raise DeploymentError(f"{path} is not a regular file")
    is_zip = zipfile.is_zipfile(path)
    if path.name.endswith(".keras") and is_zip:
        return _keras_zip_config(path)
    if is_zip:
        raise DeploymentError(
            f"{path} is a zip archive; a Keras archive must be named *.keras to load"
        )
    if path.suffix in (".h5", ".hdf5", ".hdf", ".keras") or h5py.is_hdf5(path):
        return _h5_config(path)
    raise DeploymentError(
        f"{path} is not a Keras model: expected a .h5 file, a .keras archive or a SavedModel "
        "directory"
    )


def check_model_file(path: str | os.PathLike, *, allow_unsafe: bool = False) -> Any:
    """Read and check a saved Keras model's config before anything loads the model.

    Call this before `tf.keras.models.load_model` or `model.load_weights` on a file from
    a user (teacher models, initial weights, ...): `el_larq.deploy.loading.load_model` does.

    # Arguments
        path: A `.h5` file, a `.keras` archive or a SavedModel directory.
        allow_unsafe: Accept layers that run code stored in the file.

    # Returns
        The parsed config.

    # Raises
        DeploymentError: see `read_model_config` and `check_model_config`.

    # Example
        ```python
        check_model_file("teacher.h5")
        teacher = tf.keras.models.load_model("teacher.h5", compile=False)
        ```
    """
    config = read_model_config(path)
    check_model_config(config, source=str(path), allow_unsafe=allow_unsafe)
    return config
