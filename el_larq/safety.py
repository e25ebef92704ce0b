"""Checks on files and arguments from outside, made before anything acts on them.

Everything el_larq reads from a user (or from a stranger who sent the user a file) goes
through here first, so that a hostile or broken file gives a one-line error instead of
running code, crashing the process or destroying data:

* `check_model_config` / `check_model_file`: a saved Keras model's stored config, scanned
  whole (nested models, wrappers, RNN cells, any key at any depth) before it is
  deserialised. Layers that run code stored in the file (`Lambda`, op layers naming
  arbitrary TensorFlow functions, Python bytecode) are refused unless the user trusts
  the file; classes that are neither tf.keras built-ins nor registered custom objects,
  and module names outside Keras, larq and the registered objects' modules (Keras
  imports them), are always refused.
* `validate_flatbuffer` / `read_flatbuffer`: a `.tflite` file's structure, checked
  byte-range by byte-range before the TFLite interpreter (which does not check, and
  crashes on a truncated file) sees it.
* `check_outputs`: no output path is an input or another output.
* `check_ssh_host`, `check_remote_dir`, `remote_name`: values that end up on a device's
  command line.

All failures raise `DeploymentError` with a one-line message naming the file.
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DeploymentError",
    "LCE_CUSTOM_OPS",
    "MAX_CONFIG_DEPTH",
    "check_model_config",
    "check_model_file",
    "check_outputs",
    "check_remote_dir",
    "check_ssh_host",
    "parse_config_json",
    "read_flatbuffer",
    "read_model_config",
    "remote_name",
    "validate_flatbuffer",
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


# ---------------------------------------------------------------- output paths
def _same(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:  # one of them does not exist yet
        return False


def _inside(path: Path, directory: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(directory)
    return real.startswith(base.rstrip(os.sep) + os.sep)


def check_outputs(
    inputs: Iterable[str | os.PathLike], outputs: Mapping[str, str | os.PathLike | None]
) -> None:
    """Refuse output paths that would overwrite an input or each other.

    Paths are compared by their resolved real paths and, when both exist, by
    `os.path.samefile` (symbolic and hard links); an output inside an input directory
    (a SavedModel) is refused too.

    # Arguments
        inputs: The input paths.
        outputs: `{flag: path}` of the outputs (None: not requested).

    # Raises
        DeploymentError: names both flags / the input.

    # Example
        ```python
        check_outputs(["m.h5"], {"-o": "m.tflite", "--json": "report.json"})
        ```
    """
    given = [(flag, Path(path)) for flag, path in outputs.items() if path is not None]
    for flag, out in given:
        for source in map(Path, inputs):
            if _same(out, source) or (source.is_dir() and _inside(out, source)):
                raise DeploymentError(
                    f"{flag} {out} would overwrite the input {source}; choose another path"
                )
    for i, (flag, out) in enumerate(given):
        for other_flag, other in given[:i]:
            if _same(out, other):
                raise DeploymentError(
                    f"{flag} {out} is the same file as {other_flag} {other}; give each output "
                    "its own path"
                )


# ---------------------------------------------------------------- device arguments
# Destinations as ssh and scp both read them without doubt: [user@]host, where host is
# a name, an address or an ssh_config alias. Nothing that starts with '-' (an option),
# contains ':' (scp's host:path separator), '/' (scp: a local path) or whitespace.
_SSH_HOST = re.compile(r"(?:[A-Za-z0-9._+-]+@)?[A-Za-z0-9][A-Za-z0-9._-]*")
# Remote paths that every shell, scp (legacy and SFTP mode) and adb take literally.
_REMOTE_SAFE = re.compile(r"[A-Za-z0-9._/+-]+")


def check_ssh_host(host: str | None) -> str:
    """The ssh destination, if it cannot be read as an option or a path.

    # Raises
        DeploymentError: missing, or anything but `[user@]host` made of letters,
            digits, `.`, `_`, `-` (not first) and `+` in the user name.

    # Example
        ```python
        check_ssh_host("pi@raspberrypi.local")
        ```
    """
    if not host:
        raise DeploymentError("ssh mode needs --host, e.g. --host=pi@raspberrypi.local")
    if not _SSH_HOST.fullmatch(host):
        raise DeploymentError(
            f"--host {host!r} is not [user@]host (letters, digits, '.', '_', '-', not "
            "starting with '-'); use an ssh_config Host alias for ports and other options"
        )
    return host


def check_remote_dir(remote_dir: str) -> str:
    """The device directory, if it is absolute and every shell reads it literally.

    # Raises
        DeploymentError: relative, or characters other than letters, digits, `._/+-`
            (spaces, quotes, `$`, newlines, ... would need a shell's quoting, which scp's
            SFTP mode does not undo).

    # Example
        ```python
        check_remote_dir("/data/local/tmp")
        ```
    """
    if not remote_dir.startswith("/"):
        raise DeploymentError(
            f"--remote_dir {remote_dir!r} must be an absolute path on the device, e.g. /tmp"
        )
    if not _REMOTE_SAFE.fullmatch(remote_dir):
        raise DeploymentError(
            f"--remote_dir {remote_dir!r} may only contain letters, digits and . _ / + -"
        )
    return remote_dir.rstrip("/") or "/"


def remote_name(local: str) -> str:
    """The file name a local file gets on the device: its own, with every character a
    shell or scp might interpret replaced by `_` (and never starting with `-`).

    # Example
        ```python
        assert remote_name("out/my model.tflite") == "my_model.tflite"
        ```
    """
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", Path(local).name) or "model"
    return "_" + name[1:] if name.startswith("-") else name


# ---------------------------------------------------------------- flatbuffers
# The ops LCE's interpreter registers besides TFLite's builtins.
LCE_CUSTOM_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")
_IDENTIFIER = b"TFL3"
_SCHEMA_VERSION = 3
# Bytes per element of the fixed-size tensor types (TensorType values).
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8,
               15: 4, 16: 2}  # fmt: skip
# A tensor larger than this is a corrupt shape, not a model for this tool.
_MAX_TENSOR_BYTES = 1 << 31
# The integer options of LCE's ops (flexbuffer maps): name -> smallest valid value.
_LCE_OPTIONS = {
    "LceBconv2d": {
        "channels_in": 1,
        "dilation_height_factor": 1,
        "dilation_width_factor": 1,
        "stride_height": 1,
        "stride_width": 1,
        "padding": 0,
        "pad_values": 0,
        "fused_activation_function": 0,
    },
    "LceBMaxPool2d": {
        "filter_height": 1,
        "filter_width": 1,
        "stride_height": 1,
        "stride_width": 1,
        "padding": 0,
    },
}


class _Invalid(Exception):
    """Raised inside the walk; turned into one DeploymentError line."""


class _Table:
    """A flatbuffer table whose vtable and object lie inside the buffer."""

    def __init__(self, buf: bytes, pos: int, what: str):
        self.buf, self.pos, self.what = buf, pos, what
        size = len(buf)
        if not 0 <= pos <= size - 4:
            raise _Invalid(f"{what} starts outside the file")
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        if not 0 <= vtable <= size - 4:
            raise _Invalid(f"{what} has its field table outside the file")
        self.vtable_size, self.object_size = struct.unpack_from("<HH", buf, vtable)
        if self.vtable_size < 4 or self.vtable_size % 2 or vtable + self.vtable_size > size:
            raise _Invalid(f"{what} has a corrupt field table")
        if self.object_size < 4 or pos + self.object_size > size:
            raise _Invalid(f"{what} extends past the end of the file")
        self.vtable = vtable

    def _field(self, slot: int, width: int) -> int | None:
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return None
        offset = struct.unpack_from("<H", self.buf, self.vtable + entry)[0]
        if not offset:
            return None
        if offset + width > self.object_size:
            raise _Invalid(f"{self.what} has field {slot} outside the table")
        return self.pos + offset

    def check_fields(self) -> None:
        """Every field of a table whose layout we do not walk lies inside the table."""
        for slot in range((self.vtable_size - 4) // 2):
            self._field(slot, 1)

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        at = self._field(slot, struct.calcsize(fmt))
        return default if at is None else struct.unpack_from("<" + fmt, self.buf, at)[0]

    def _target(self, slot: int, what: str) -> int | None:
        at = self._field(slot, 4)
        if at is None:
            return None
        target = at + struct.unpack_from("<I", self.buf, at)[0]
        if target > len(self.buf) - 4:
            raise _Invalid(f"{self.what}'s {what} points past the end of the file")
        return target

    def table(self, slot: int, what: str) -> _Table | None:
        target = self._target(slot, what)
        return None if target is None else _Table(self.buf, target, f"{self.what}'s {what}")

    def vector(self, slot: int, width: int, what: str) -> tuple[int, int] | None:
        """(start, length) of a vector field, checked to lie inside the file."""
        target = self._target(slot, what)
        if target is None:
            return None
        length = struct.unpack_from("<I", self.buf, target)[0]
        if target + 4 + length * width > len(self.buf):
            raise _Invalid(f"{self.what}'s {what} ({length} entries) runs past the end of the file")
        return target + 4, length

    def ints(self, slot: int, what: str, fmt: str = "i") -> list[int]:
        found = self.vector(slot, struct.calcsize(fmt), what)
        if found is None:
            return []
        start, length = found
        return list(struct.unpack_from(f"<{length}{fmt}", self.buf, start))

    def string(self, slot: int, what: str) -> bytes | None:
        found = self.vector(slot, 1, what)
        if found is None:
            return None
        start, length = found
        if start + length >= len(self.buf) or self.buf[start + length] != 0:
            raise _Invalid(f"{self.what}'s {what} is not a terminated string")
        return self.buf[start : start + length]

    def tables(self, slot: int, what: str) -> list[_Table]:
        found = self.vector(slot, 4, what)
        if found is None:
            return []
        start, length = found
        result = []
        for i in range(length):
            at = start + 4 * i
            target = at + struct.unpack_from("<I", self.buf, at)[0]
            result.append(_Table(self.buf, target, f"{what}[{i}]"))
        return result


@functools.lru_cache(maxsize=1)
def _tensor_types() -> frozenset[int]:
    from larq_compute_engine.mlir.python import tflite_schema

    return frozenset(
        code for name, code in vars(tflite_schema.TensorType).items() if not name.startswith("_")
    )


@functools.lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    from larq_compute_engine.mlir.python import tflite_schema

    return {
        code: name
        for name, code in vars(tflite_schema.BuiltinOperator).items()
        if not name.startswith("_")
    }


def _decode_options(kind: int, table: _Table, second: bool) -> Any:
    """The object-API form of an op's options; reads every vector it holds (each read
    raises, in Python, when it would leave the buffer)."""
    from flatbuffers.table import Table
    from larq_compute_engine.mlir.python import tflite_schema

    table.check_fields()
    creator = (
        tflite_schema.BuiltinOptions2Creator if second else tflite_schema.BuiltinOptionsCreator
    )
    try:
        return creator(kind, Table(table.buf, table.pos))
    except (struct.error, IndexError, ValueError, TypeError) as error:
        raise _Invalid(f"{table.what} are corrupt ({type(error).__name__})") from None


def _check_subgraph_refs(options: Any, subgraphs: int, what: str) -> None:
    # Control-flow ops (IF, WHILE, CALL_ONCE, ...) name other subgraphs by index.
    for key, value in getattr(options, "__dict__", {}).items():
        if "subgraph" in key.lower() and isinstance(value, int) and not 0 <= value < subgraphs:
            raise _Invalid(f"{what} refers to subgraph {value} of {subgraphs}")


def _check_lce_options(name: str, op: _Table, what: str) -> None:
    from flatbuffers import flexbuffers

    wanted = _LCE_OPTIONS.get(name)
    if wanted is None:
        return
    found = op.vector(5, 1, "custom options")
    if found is None:
        raise _Invalid(f"{what} ({name}) has no options")
    start, length = found
    try:
        options = flexbuffers.Loads(bytearray(op.buf[start : start + length]))
    except Exception as error:  # flexbuffers raises whatever its reads raise
        raise _Invalid(f"{what} ({name}) has corrupt options ({type(error).__name__})") from None
    if not isinstance(options, dict):
        raise _Invalid(f"{what} ({name}) options are not a map")
    for key, smallest in wanted.items():
        value = options.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not smallest <= value < 1 << 16:
            raise _Invalid(f"{what} ({name}) has option {key}={value!r}")


def _walk(buf: bytes) -> list[str]:
    """Check every structure the interpreter reads; return the main subgraph's op names."""
    builtin_names = _builtin_names()
    custom_code = next(code for code, name in builtin_names.items() if name == "CUSTOM")
    root = struct.unpack_from("<I", buf, 0)[0]
    model = _Table(buf, root, "model")
    version = model.scalar(0, "I")
    if version != _SCHEMA_VERSION:
        raise _Invalid(f"schema version {version}, expected {_SCHEMA_VERSION}")

    op_names, unknown = [], []
    for code in model.tables(1, "operator codes"):
        builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))
        custom = code.string(1, "custom code")
        if builtin == custom_code:
            name = (custom or b"").decode(errors="replace")
            if name not in LCE_CUSTOM_OPS:
                unknown.append(f"custom op {name!r}")
        else:
            name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
            if builtin not in builtin_names:
                unknown.append(f"builtin op code {builtin}")
        op_names.append(name)
    if unknown:
        raise _Invalid(
            f"it uses ops this interpreter does not know: {', '.join(unknown)} (it runs TFLite "
            f"builtins and {', '.join(LCE_CUSTOM_OPS)})"
        )

    buffer_sizes = []
    for i, buffer in enumerate(model.tables(4, "buffers")):
        data = buffer.vector(0, 1, "data")
        offset, size = buffer.scalar(1, "Q"), buffer.scalar(2, "Q")
        if offset > 1 and offset + size > len(buf):
            raise _Invalid(f"buffers[{i}] ({size} bytes at {offset}) lies past the end of the file")
        buffer_sizes.append(size if offset > 1 else (data[1] if data else 0))

    subgraphs = model.tables(2, "subgraphs")
    if not subgraphs:
        raise _Invalid("it has no subgraph")
    tensor_counts = []
    model.string(3, "description")
    for s, graph in enumerate(subgraphs):
        graph.string(4, f"subgraphs[{s}].name")
        tensors = graph.tables(0, f"subgraphs[{s}].tensors")
        tensor_counts.append(len(tensors))
        for t, tensor in enumerate(tensors):
            _check_tensor(tensor, f"subgraphs[{s}].tensors[{t}]", buffer_sizes)
        for io in (1, 2):
            for index in graph.ints(io, "inputs/outputs"):
                if not 0 <= index < len(tensors):
                    raise _Invalid(
                        f"subgraphs[{s}] has input/output tensor {index} of {len(tensors)}"
                    )
        for j, op in enumerate(graph.tables(3, f"subgraphs[{s}].operators")):
            what = f"subgraphs[{s}].operators[{j}]"
            opcode = op.scalar(0, "I")
            if opcode >= len(op_names):
                raise _Invalid(f"{what} has op code index {opcode} of {len(op_names)}")
            for slot in (1, 2, 8):  # inputs, outputs, intermediates; -1: optional, absent
                for index in op.ints(slot, "tensor indices"):
                    if not -1 <= index < len(tensors):
                        raise _Invalid(f"{what} refers to tensor {index} of {len(tensors)}")
            op.vector(7, 1, "mutating variable inputs")
            if op.scalar(6, "b") != 0:
                raise _Invalid(f"{what} has custom options in an unknown format")
            large_offset, large_size = op.scalar(9, "Q"), op.scalar(10, "Q")
            if large_offset > 1 and large_offset + large_size > len(buf):
                raise _Invalid(f"{what}'s custom options lie past the end of the file")
            for type_slot, table_slot, second in ((3, 4, False), (11, 12, True)):
                options = op.table(table_slot, "options")
                if options is not None:
                    decoded = _decode_options(op.scalar(type_slot, "B"), options, second)
                    _check_subgraph_refs(decoded, len(subgraphs), what)
            _check_lce_options(op_names[opcode], op, what)

    for index in model.ints(5, "metadata buffer indices"):
        if not 0 <= index < len(buffer_sizes):
            raise _Invalid(f"metadata refers to buffer {index} of {len(buffer_sizes)}")
    for i, entry in enumerate(model.tables(6, "metadata")):
        entry.string(0, "name")
        if entry.scalar(1, "I") >= len(buffer_sizes):
            raise _Invalid(f"metadata[{i}] refers to a missing buffer")
    for i, signature in enumerate(model.tables(7, "signature defs")):
        s = signature.scalar(4, "I")
        if s >= len(subgraphs):
            raise _Invalid(f"signature_defs[{i}] refers to subgraph {s} of {len(subgraphs)}")
        signature.string(2, "signature key")
        for slot in (0, 1):
            for tensor_map in signature.tables(slot, f"signature_defs[{i}] tensors"):
                tensor_map.string(0, "name")
                if tensor_map.scalar(1, "I") >= tensor_counts[s]:
                    raise _Invalid(f"signature_defs[{i}] refers to a missing tensor")

    # A second, independent reading: the schema's object API decodes every field it
    # knows, each read bounds-checked by Python, so a field the walk above skips cannot
    # point outside the file either.
    from larq_compute_engine.mlir.python import tflite_schema

    try:
        tflite_schema.ModelT.InitFromPackedBuf(buf, 0)
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise _Invalid(f"a field lies outside the file ({type(error).__name__})") from None
    main = subgraphs[0]
    return [op_names[op.scalar(0, "I")] for op in main.tables(3, "operators")]


def _check_tensor(tensor: _Table, what: str, buffer_sizes: list[int]) -> None:
    shape = tensor.ints(0, "shape")
    if any(not 0 <= dim < 1 << 31 for dim in shape):
        raise _Invalid(f"{what} has shape {shape}")
    signature = tensor.ints(7, "shape signature")
    if any(dim < -1 for dim in signature):
        raise _Invalid(f"{what} has shape signature {signature}")
    kind = tensor.scalar(1, "b")
    if kind not in _tensor_types():
        raise _Invalid(f"{what} has unknown type {kind}")
    buffer = tensor.scalar(2, "I")
    if buffer >= len(buffer_sizes):
        raise _Invalid(f"{what} refers to buffer {buffer} of {len(buffer_sizes)}")
    tensor.string(3, "name")
    elements = 1
    for dim in shape:
        elements *= dim
    width = _TYPE_BYTES.get(kind)
    if width is not None:
        if elements * width > _MAX_TENSOR_BYTES:
            raise _Invalid(f"{what} would need {elements * width} bytes (shape {shape})")
        if buffer_sizes[buffer] and buffer_sizes[buffer] != elements * width:
            raise _Invalid(
                f"{what} has {buffer_sizes[buffer]} bytes of data for shape {shape} "
                f"({elements * width} bytes)"
            )
    quantization = tensor.table(4, "quantization")
    if quantization is not None:
        scales = quantization.vector(2, 4, "scales")
        zero_points = quantization.vector(3, 8, "zero points")
        quantization.vector(0, 4, "min")
        quantization.vector(1, 4, "max")
        n_scales = scales[1] if scales else 0
        n_zero = zero_points[1] if zero_points else 0
        if n_scales and n_zero and n_scales != n_zero:
            raise _Invalid(f"{what} has {n_scales} scales but {n_zero} zero points")
        axis = quantization.scalar(6, "i")
        if n_scales > 1 and not (0 <= axis < len(shape) and shape[axis] == n_scales):
            raise _Invalid(f"{what} has {n_scales} scales along axis {axis} of shape {shape}")
        details = quantization.table(5, "quantization details")
        if details is not None:
            details.check_fields()
            details.vector(0, 1, "custom quantization")
    if tensor.table(6, "sparsity") is not None:
        raise _Invalid(f"{what} is a sparse tensor, which this tool does not support")
    for k, variant in enumerate(tensor.tables(9, "variant tensors")):
        variant.ints(0, f"variant_tensors[{k}].shape")


def validate_flatbuffer(flatbuffer: bytes, source: str = "the model") -> list[str]:
    """Check a TFLite flatbuffer before an interpreter sees it.

    TFLite's interpreter trusts its input: a truncated file makes it read past the end
    and crash the process. This walks every table, vector and string the interpreter
    reads and checks that it lies inside the file; that tensor, buffer, op code and
    subgraph indices are in range; that constant data matches its tensor's shape; and
    that every op is one LCE's interpreter knows (TFLite builtins and `LCE_CUSTOM_OPS`,
    whose options are checked too).

    # Arguments
        flatbuffer: The bytes of a `.tflite` file.
        source: What they came from, for the message.

    # Returns
        The op names of the main subgraph, in order.

    # Raises
        DeploymentError: one line saying what is wrong.

    # Example
        ```python
        ops = validate_flatbuffer(Path("m.tflite").read_bytes(), "m.tflite")
        ```
    """
    prefix = f"{source} is not a valid TFLite flatbuffer"
    if not isinstance(flatbuffer, (bytes, bytearray, memoryview)):
        raise DeploymentError(f"{prefix}: expected bytes, got {type(flatbuffer).__name__}")
    buf = bytes(flatbuffer)
    if not buf:
        raise DeploymentError(f"{prefix}: it is empty")
    if len(buf) < 8 or buf[4:8] != _IDENTIFIER:
        raise DeploymentError(f"{prefix}: no 'TFL3' identifier (not a .tflite file?)")
    try:
        return _walk(buf)
    except _Invalid as error:
        raise DeploymentError(f"{prefix} (corrupt or truncated?): {error}") from None
    except struct.error as error:  # a read the walk did not guard: still not a crash
        raise DeploymentError(f"{prefix} (corrupt or truncated?): {error}") from None


def read_flatbuffer(path: str | os.PathLike) -> bytes:
    """Read and validate a `.tflite` file.

    # Returns
        Its bytes, checked by `validate_flatbuffer`.

    # Raises
        DeploymentError: missing, not a regular file, unreadable or invalid.

    # Example
        ```python
        interpreter = lce.make_interpreter(read_flatbuffer("m.tflite"))
        ```
    """
    path = Path(path)
    if not path.exists():
        raise DeploymentError(f"{path}: no such file")
    if not path.is_file():
        raise DeploymentError(f"{path} is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DeploymentError(f"cannot read {path}: {error.strerror}") from None
    validate_flatbuffer(data, str(path))
    return data
