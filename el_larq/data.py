"""Input pipelines: ImageNet and other TFDS image datasets, and offline Fashion-MNIST.

Every pipeline is `tf.data`: shuffle, parallel `map` of the preprocessing, batch and
prefetch; nothing loops over examples in Python.

* `imagenet2012` (and any TFDS dataset with images larger than 64 px) is
  preprocessed as in the paper's "Training Details": the shorter edge is resized to
  256, a random 224x224 crop is taken and flipped at random; evaluation resizes to
  256 and takes the centre 224x224 crop. Pixels are scaled to [0, 1] and the
  per-channel mean is subtracted ("mean channel subtraction"); the 1/255 scaling is
  only a choice of unit, the full-precision stem and its BatchNorm absorb it.
* Small images (Fashion-MNIST, CIFAR, ...) keep their size: training pads by 1/8 of
  the side, takes a random crop of the original size and flips (except for digit
  and character datasets); evaluation uses the image as is. The mean is subtracted
  in the same way.
* `fashion_mnist`, the offline default, is read from its IDX files (Debian's
  `dataset-fashion-mnist` installs them in `/usr/share/datasets/fashion-mnist/`),
  from `data_dir` or `$EL_LARQ_FASHION_MNIST_DIR`, and falls back to TFDS when
  TFDS can download it.
"""

from __future__ import annotations

import dataclasses
import difflib
import gzip
import math
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

__all__ = [
    "DataError",
    "Split",
    "default_eval_split",
    "load_eval_split_for",
    "load_split",
    "preprocess_imagenet",
    "preprocess_small",
    "read_idx",
    "write_idx",
]

FASHION_MNIST = "fashion_mnist"
FASHION_MNIST_ENV = "EL_LARQ_FASHION_MNIST_DIR"
FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = 10
IMAGENET = "imagenet2012"
SMALL_IMAGE_MAX = 64
# Paper: shorter edge 256, crop 224; other crop sizes keep the same 256/224 ratio.
IMAGENET_RESIZE_RATIO = 256 / 224
# Per-channel means in [0, 1] for "mean channel subtraction"; 0.5 for unknown data.
CHANNEL_MEANS = {
    IMAGENET: (0.485, 0.456, 0.406),
    FASHION_MNIST: (0.2860,),
    "mnist": (0.1307,),
    "cifar10": (0.4914, 0.4822, 0.4465),
    "cifar100": (0.5071, 0.4865, 0.4409),
}
# Mirrored digits and characters are other classes (or none): no random flips.
NO_FLIP = {"mnist", "emnist", "kmnist", "svhn_cropped", "binarized_mnist"}
# Small in-memory datasets are cached after decoding when they fit this budget.
CACHE_BYTES = 2 << 30

_HOW_TO_GET_FASHION_MNIST = (
    "Fashion-MNIST not found: looked for its IDX files ({files}) in {dirs}, and TFDS could not "
    "provide `fashion_mnist` ({reason}). Get it with one of: `sudo apt-get install "
    "dataset-fashion-mnist` (Debian/Ubuntu, installs {default}); or download the four .gz files "
    "from https://github.com/zalandoresearch/fashion-mnist (data/fashion) into a directory and "
    "pass it as --data_dir or set ${env}; or run once with internet access so that TFDS "
    "downloads `fashion_mnist`."
)


class DataError(ValueError):
    """A dataset that cannot be found, read or used; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Split:
    """One preprocessed, batched split of a dataset.

    # Attributes
        dataset: `tf.data.Dataset` of `(images, labels)` batches; images are float32
            `(batch, height, width, channels)`, labels int.
        num_examples: Examples in the split (before batching).
        num_classes: Number of classes.
        input_shape: `(height, width, channels)` of the preprocessed images.
        source: Where the data came from, e.g. `idx:/usr/share/datasets/fashion-mnist`.
    """

    dataset: tf.data.Dataset
    num_examples: int
    num_classes: int
    input_shape: tuple[int, int, int]
    source: str


# IDX files ---------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped when its name ends in `.gz`.

    # Arguments
        path: Path of the file.

    # Returns
        A numpy array with the file's shape and type (uint8 for (Fashion-)MNIST).

    # Raises
        DataError: the file is not a valid IDX file.

    # Example
        ```python
        labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
        ```
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number).")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{path} is truncated: its header announces {ndim} dimensions.")
    dims = [int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4)]
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    # Python integers: a hostile header must not overflow into a matching size.
    if len(data) - offset != math.prod(dims) * dtype.itemsize:
        raise DataError(f"{path} is truncated or corrupt: header says shape {tuple(dims)}.")
    return np.frombuffer(data, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, gzipped when `path` ends in `.gz`.

    Useful to feed your own small image dataset through the Fashion-MNIST reader.

    # Arguments
        path: Destination path.
        array: uint8 array, e.g. `(n, 28, 28)` images or `(n,)` labels.

    # Example
        ```python
        write_idx("data/train-labels-idx1-ubyte.gz", np.zeros(100, np.uint8))
        ```
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _idx_file(directory: str, stem: str) -> str | None:
    for name in (f"{stem}.gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _fashion_mnist_dirs(data_dir: str | None) -> list[str]:
    if data_dir:
        return [
            data_dir,
            os.path.join(data_dir, "fashion-mnist"),
            os.path.join(data_dir, "fashion"),
        ]
    env = os.environ.get(FASHION_MNIST_ENV)
    return ([env] if env else []) + [FASHION_MNIST_DEFAULT_DIR]


def _fashion_mnist_idx(split: str, data_dir: str | None):
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DataError(f"Fashion-MNIST has the splits 'train' and 'test', not {split!r}.")
    for directory in _fashion_mnist_dirs(data_dir):
        images = _idx_file(directory, f"{prefix}-images-idx3-ubyte")
        labels = _idx_file(directory, f"{prefix}-labels-idx1-ubyte")
        if images and labels:
            x, y = read_idx(images), read_idx(labels)
            if x.ndim != 3 or y.shape != (x.shape[0],):
                raise DataError(
                    f"{images} / {labels}: expected (n, h, w) images and (n,) labels, got "
                    f"{x.shape} and {y.shape}."
                )
            _check_idx_values(x, y, images, labels)
            return x[..., np.newaxis], y.astype(np.int32), directory
    return None


def _check_idx_values(
    images: np.ndarray, labels: np.ndarray, images_path: str, labels_path: str
) -> None:
    # Out-of-range labels would train against nothing (sparse cross-entropy gives NaN or
    # an opaque kernel error) and score as wrong; other pixel types break the 1/255 scale.
    if images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: images must be unsigned bytes (IDX type 0x08), got {images.dtype}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{labels_path}: labels must be integers, got {labels.dtype}.")
    if images.shape[0] == 0 or min(images.shape[1:]) < 1:
        raise DataError(f"{images_path}: no images (shape {images.shape}).")
    bad = np.flatnonzero((labels < 0) | (labels >= FASHION_MNIST_CLASSES))
    if bad.size:
        raise DataError(
            f"{labels_path}: {bad.size} label(s) outside the {FASHION_MNIST_CLASSES} classes "
            f"0..{FASHION_MNIST_CLASSES - 1}, the first {int(labels[bad[0]])} at index "
            f"{int(bad[0])}."
        )


# Preprocessing ---------------------------------------------------------------------


def _normalize(image: tf.Tensor, mean: Sequence[float]) -> tf.Tensor:
    image = tf.cast(image, tf.float32) / 255.0
    return image - tf.constant(mean, tf.float32)


def _resize_shorter_edge(image: tf.Tensor, size: int) -> tf.Tensor:
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = size / tf.minimum(height, width)
    # The shorter edge becomes exactly `size`; rounding only touches the longer one.
    new_height = tf.maximum(size, tf.cast(tf.round(height * scale), tf.int32))
    new_width = tf.maximum(size, tf.cast(tf.round(width * scale), tf.int32))
    return tf.image.resize(image, tf.stack([new_height, new_width]), method="bilinear")


def preprocess_imagenet(
    image: tf.Tensor,
    training: bool,
    image_size: int = 224,
    resize_size: int | None = None,
    mean: Sequence[float] = CHANNEL_MEANS[IMAGENET],
) -> tf.Tensor:
    """The paper's ImageNet preprocessing of one image.

    Training: resize the shorter edge to `resize_size` (256), random
    `image_size` x `image_size` (224) crop, random horizontal flip. Evaluation: the
    same resize and the centre crop. Both scale pixels to [0, 1] and subtract the
    per-channel `mean`.

    # Arguments
        image: uint8 (or float in [0, 255]) image `(height, width, channels)`.
        training: Random crop and flip (True) or centre crop (False).
        image_size: Side of the square crop.
        resize_size: Shorter edge after resizing; `round(image_size * 256 / 224)` when None.
        mean: Per-channel mean in [0, 1].

    # Returns
        float32 tensor `(image_size, image_size, channels)`.

    # Example
        ```python
        ds = ds.map(lambda x, y: (preprocess_imagenet(x, training=True), y))
        ```
    """
    if resize_size is None:
        resize_size = int(round(image_size * IMAGENET_RESIZE_RATIO))
    if resize_size < image_size:
        raise ValueError(f"resize_size {resize_size} is smaller than image_size {image_size}.")
    channels = image.shape[-1]
    image = _resize_shorter_edge(image, resize_size)
    if training:
        image = tf.image.random_crop(image, [image_size, image_size, channels])
        image = tf.image.random_flip_left_right(image)
    else:
        shape = tf.shape(image)
        top = (shape[0] - image_size) // 2
        left = (shape[1] - image_size) // 2
        image = tf.image.crop_to_bounding_box(image, top, left, image_size, image_size)
    image = tf.ensure_shape(image, [image_size, image_size, channels])
    return _normalize(image, mean)


def preprocess_small(
    image: tf.Tensor,
    training: bool,
    image_size: int | None = None,
    mean: Sequence[float] = (0.5,),
    flip: bool = True,
) -> tf.Tensor:
    """Preprocessing for small images (28-64 px: Fashion-MNIST, CIFAR, ...).

    Training: zero-pad by `image_size // 8` on each side, random crop back to
    `image_size`, random horizontal flip when `flip`. Evaluation: the image as is.
    Both scale to [0, 1] and subtract the per-channel `mean`.

    # Arguments
        image: uint8 image `(height, width, channels)`.
        training: Apply the random augmentation.
        image_size: Output side; images of another size are resized first. None keeps
            the size of `image` (which must then be static).
        mean: Per-channel mean in [0, 1].
        flip: Random horizontal flips (off for digits and characters).

    # Returns
        float32 tensor `(image_size, image_size, channels)`.

    # Example
        ```python
        ds = ds.map(lambda x, y: (preprocess_small(x, training=True), y))
        ```
    """
    channels = image.shape[-1]
    size = image_size or image.shape[0]
    if image.shape[0] != size or image.shape[1] != size:
        image = tf.image.resize(image, [size, size], method="bilinear")
    if training:
        pad = max(1, size // 8)
        image = tf.image.resize_with_crop_or_pad(image, size + 2 * pad, size + 2 * pad)
        image = tf.image.random_crop(image, [size, size, channels])
        if flip:
            image = tf.image.random_flip_left_right(image)
    image = tf.ensure_shape(image, [size, size, channels])
    return _normalize(image, mean)


# Datasets --------------------------------------------------------------------------


def default_eval_split(name: str, data_dir: str | None = None) -> str:
    """The split used for evaluation: `validation` for ImageNet, else `test` if it exists.

    # Arguments
        name: Dataset name.
        data_dir: TFDS data directory.

    # Returns
        A split name.
    """
    if name == FASHION_MNIST:
        return "test"
    if name == IMAGENET:
        return "validation"
    splits = _tfds_builder(name, data_dir).info.splits
    if "test" not in splits and "validation" in splits:
        return "validation"
    return "test"


def _tfds_builder(name: str, data_dir: str | None):
    import tensorflow_datasets as tfds

    if name not in tfds.list_builders():
        close = difflib.get_close_matches(name, sorted(set(tfds.list_builders())), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DataError(
            f"unknown dataset {name!r}.{hint} Valid: {FASHION_MNIST} (offline IDX files), "
            f"{IMAGENET} (manual download), or any TensorFlow Datasets image classification "
            "dataset (e.g. cifar10, cifar100, mnist, oxford_flowers102; see "
            "https://www.tensorflow.org/datasets/catalog)."
        )
    return tfds.builder(name, data_dir=data_dir)


def _tfds_examples(
    name: str, split: str, data_dir: str | None, training: bool, seed, download: bool = True
):
    """`(dataset of (image, label), num_examples, num_classes, image_shape, decode_fn)`."""
    import tensorflow_datasets as tfds

    builder = _tfds_builder(name, data_dir)
    features = builder.info.features
    image_feature = features["image"] if "image" in features else None
    label_feature = features["label"] if "label" in features else None
    if image_feature is None or not hasattr(label_feature, "num_classes"):
        raise DataError(
            f"TFDS dataset {name!r} is not an image classification dataset: it needs an "
            f"'image' and a class 'label' feature, it has {list(features)}."
        )
    image_shape = tuple(image_feature.shape)
    # Keep images encoded through the shuffle buffer, decode in the parallel map.
    encoded = getattr(image_feature, "encoding_format", None) is not None or image_shape[0] is None
    decoders = {"image": tfds.decode.SkipDecoding()} if encoded else None
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    try:
        if download and name != IMAGENET:
            builder.download_and_prepare()
        dataset = builder.as_dataset(
            split=split,
            shuffle_files=training,
            decoders=decoders,
            read_config=read_config,
            as_supervised=False,
        )
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001  (TFDS raises many types; say what happened)
        raise DataError(_tfds_help(name, split, data_dir, error)) from error
    try:
        num_examples = builder.info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        num_examples = 0
    if not num_examples:
        # Unknown without metadata (e.g. TFDS mock data): count once.
        num_examples = int(dataset.reduce(np.int64(0), lambda count, _: count + 1))
    channels = image_shape[-1]

    def decode(example):
        image = example["image"]
        if encoded:
            image = tf.io.decode_image(image, channels=channels, expand_animations=False)
        return image, example["label"]

    return dataset, num_examples, label_feature.num_classes, image_shape, decode


def _tfds_help(name: str, split: str, data_dir: str | None, error: Exception) -> str:
    where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    message = f"cannot load TFDS dataset {name!r} split {split!r} from {where}: {error}"
    message = " ".join(message.split())
    if name == IMAGENET:
        message += (
            ". ImageNet needs a manual download: put ILSVRC2012_img_train.tar and "
            f"ILSVRC2012_img_val.tar in {where}/downloads/manual/ and run "
            "`tfds build imagenet2012 --data_dir " + where + "` (see "
            "https://www.tensorflow.org/datasets/catalog/imagenet2012), then pass --data_dir."
        )
    return message


def _fashion_mnist_examples(
    split: str, data_dir: str | None, training: bool, seed, download: bool = True
):
    found = _fashion_mnist_idx(split, data_dir)
    if found is not None:
        images, labels, directory = found
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        return dataset, len(labels), FASHION_MNIST_CLASSES, images.shape[1:], f"idx:{directory}"
    try:
        dataset, num, classes, shape, decode = _tfds_examples(
            FASHION_MNIST, split, data_dir, training, seed, download
        )
    except DataError as error:
        files = "train/t10k-images-idx3-ubyte[.gz], train/t10k-labels-idx1-ubyte[.gz]"
        raise DataError(
            _HOW_TO_GET_FASHION_MNIST.format(
                files=files,
                dirs=", ".join(_fashion_mnist_dirs(data_dir)),
                reason=str(error)[:300],
                default=FASHION_MNIST_DEFAULT_DIR,
                env=FASHION_MNIST_ENV,
            )
        ) from error
    return dataset.map(decode), num, classes, shape, f"tfds:{FASHION_MNIST}"


def _preprocess_fn(name: str, image_shape, image_size: int | None, training: bool):
    height = image_shape[0]
    channels = image_shape[-1]
    mean = CHANNEL_MEANS.get(name, (0.5,) * channels)
    if len(mean) != channels:
        mean = (float(np.mean(mean)),) * channels
    small = name != IMAGENET and height is not None and height <= SMALL_IMAGE_MAX
    if small:
        size = image_size or height
        return size, lambda x: preprocess_small(x, training, size, mean, name not in NO_FLIP)
    size = image_size or 224
    return size, lambda x: preprocess_imagenet(x, training, size, mean=mean)


def load_split(
    name: str,
    split: str,
    *,
    training: bool,
    batch_size: int,
    data_dir: str | None = None,
    image_size: int | None = None,
    seed: int | None = None,
    drop_remainder: bool | None = None,
    download: bool = True,
) -> Split:
    """Load one split of a dataset as a preprocessed, batched `tf.data` pipeline.

    Training pipelines shuffle, augment and repeat forever (pass `steps_per_epoch`
    to Keras); evaluation pipelines are deterministic and end after one pass.

    # Arguments
        name: `fashion_mnist` (IDX files, TFDS fallback), `imagenet2012` or any TFDS
            image classification dataset.
        split: Split name (`train`, `test`, `validation`, TFDS slices such as
            `train[:10%]`).
        training: Training (shuffle, random augmentation, repeat) or evaluation.
        batch_size: Global batch size.
        data_dir: Fashion-MNIST IDX directory or TFDS data directory.
        image_size: Side of the model input; None: native size for small images,
            224 for large ones.
        seed: Shuffle seed.
        drop_remainder: Drop the last partial batch; defaults to `training`.
        download: Let TFDS download and prepare a missing dataset (not ImageNet,
            which needs a manual download).

    # Returns
        A `Split`.

    # Raises
        DataError: unknown dataset, data not found (with how to get it), ...

    # Example
        ```python
        train = load_split("fashion_mnist", "train", training=True, batch_size=128)
        model.fit(train.dataset, steps_per_epoch=train.num_examples // 128)
        ```
    """
    if name == FASHION_MNIST:
        dataset, num, classes, shape, source = _fashion_mnist_examples(
            split, data_dir, training, seed, download
        )
        nbytes = num * int(np.prod(shape))
    else:
        dataset, num, classes, shape, decode = _tfds_examples(
            name, split, data_dir, training, seed, download
        )
        source = f"tfds:{name}"
        dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        nbytes = num * int(np.prod(shape)) if None not in shape else CACHE_BYTES + 1
        if nbytes <= CACHE_BYTES:
            dataset = dataset.cache()
    if num == 0:
        raise DataError(f"dataset {name!r} split {split!r} is empty.")
    size, preprocess = _preprocess_fn(name, shape, image_size, training)
    if training:
        # In-memory data shuffles fully; large data keeps a bounded buffer of encoded images.
        buffer = num if nbytes <= CACHE_BYTES else 10_000
        dataset = dataset.shuffle(min(buffer, num), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda image, label: (preprocess(image), tf.cast(label, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training,
    )
    drop = training if drop_remainder is None else drop_remainder
    dataset = dataset.batch(batch_size, drop_remainder=drop)
    if training:
        dataset = dataset.repeat()
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return Split(dataset, int(num), int(classes), (size, size, int(shape[-1])), source)


def load_eval_split_for(
    input_shape: Sequence[int],
    name: str,
    split: str | None = None,
    *,
    batch_size: int,
    data_dir: str | None = None,
    download: bool = True,
    model: str = "the model",
) -> tuple[str, Split]:
    """The evaluation pipeline of a split at a model's input size, checked against it.

    # Arguments
        input_shape: The model's `(height, width, channels)`.
        name, data_dir, download: As for `load_split`.
        split: Split; None: the dataset's test/validation split (`default_eval_split`).
        batch_size: Batch size.
        model: How the model is named in the error message (e.g. its path).

    # Returns
        `(split, Split)`: the split's name and the pipeline.

    # Raises
        DataError: data not found, or images of another shape than `input_shape` (a
            model trained on another dataset).

    # Example
        ```python
        split, data = load_eval_split_for(model.inputs[0].shape[1:], "fashion_mnist",
                                          batch_size=256)
        ```
    """
    input_shape = tuple(input_shape)
    split = split or default_eval_split(name, data_dir)
    data = load_split(
        name,
        split,
        training=False,
        batch_size=batch_size,
        data_dir=data_dir,
        image_size=input_shape[0],
        download=download,
    )
    if data.input_shape != input_shape:
        raise DataError(
            f"{model} expects inputs {input_shape}, but {name} gives {data.input_shape}."
        )
    return split, data
