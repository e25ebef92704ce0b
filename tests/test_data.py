"""el_larq.data: IDX files, Fashion-MNIST discovery, ImageNet and small-image preprocessing."""

import gzip

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import make_idx_dataset

from el_larq import data

MEAN = np.array(data.CHANNEL_MEANS[data.IMAGENET], np.float32)


@pytest.mark.smoke
def test_idx_round_trip_plain_and_gzip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        data.write_idx(str(tmp_path / name), array)
        np.testing.assert_array_equal(data.read_idx(str(tmp_path / name)), array)
    with gzip.open(tmp_path / "a-idx3-ubyte.gz", "rb") as f:
        assert f.read(4) == bytes([0, 0, 8, 3])  # the MNIST magic number
    (tmp_path / "bad").write_bytes(b"not an idx file")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(str(tmp_path / "bad"))


def test_fashion_mnist_from_data_dir_and_env(tmp_path, monkeypatch):
    directory = make_idx_dataset(tmp_path / "fm", train=40, test=10)
    train = data.load_split(
        "fashion_mnist", "train", training=True, batch_size=16, data_dir=directory
    )
    assert (train.num_examples, train.num_classes, train.input_shape) == (40, 10, (28, 28, 1))
    assert train.source == f"idx:{directory}"
    x, y = next(iter(train.dataset))
    assert x.shape == (16, 28, 28, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    mean = data.CHANNEL_MEANS["fashion_mnist"][0]
    assert -mean - 1e-6 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1 - mean + 1e-6
    # Training repeats forever; evaluation is one deterministic pass with a partial batch.
    assert len(list(train.dataset.take(5))) == 5
    monkeypatch.setenv(data.FASHION_MNIST_ENV, directory)
    test = data.load_split("fashion_mnist", "test", training=False, batch_size=8)
    assert [int(b[0].shape[0]) for b in test.dataset] == [8, 2]
    images = np.concatenate([b[0].numpy() for b in test.dataset])
    expected = data.read_idx(f"{directory}/t10k-images-idx3-ubyte.gz")[..., None] / 255 - mean
    np.testing.assert_allclose(images, expected, atol=1e-6)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DataError) as error:
        data.load_split(
            "fashion_mnist",
            "train",
            training=True,
            batch_size=8,
            data_dir=str(tmp_path),
            download=False,
        )
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path) in message and data.FASHION_MNIST_ENV in message


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(data.DataError, match="Did you mean fashion_mnist.*imagenet2012"):
        data.load_split("fashon_mnist", "train", training=True, batch_size=8)


def _numbered_image(height, width):
    """An RGB image whose pixels encode their own row and column."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows % 256, cols % 256, (rows // 256) * 16 + cols // 256], -1).astype(np.uint8)


def _pixels(output):
    """Undo the normalisation: back to uint8 pixel values."""
    return np.round((output.numpy() + MEAN) * 255).astype(np.int64)


def test_imagenet_train_crop_and_flip():
    # Shorter edge already 256: the resize is the identity, so the crop is exact.
    image = _numbered_image(256, 320)
    offsets, flips = set(), set()
    tf.random.set_seed(1)
    for _ in range(12):
        out = data.preprocess_imagenet(tf.constant(image), training=True)
        assert out.shape == (224, 224, 3) and out.dtype == tf.float32
        assert np.all(out.numpy() >= -MEAN - 1e-6) and np.all(out.numpy() <= 1 - MEAN + 1e-6)
        pixels = _pixels(out)
        columns = pixels[..., 1] + 256 * (pixels[..., 2] % 16)
        flipped = columns[0, 0] > columns[0, -1]
        if flipped:
            pixels, columns = pixels[:, ::-1], columns[:, ::-1]
        top, left = pixels[0, 0, 0], columns[0, 0]
        np.testing.assert_array_equal(pixels, image[top : top + 224, left : left + 224])
        offsets.add((int(top), int(left)))
        flips.add(bool(flipped))
    assert len(offsets) > 3 and flips == {True, False}


def test_imagenet_eval_resize_and_centre_crop():
    image = _numbered_image(256, 320)
    out = data.preprocess_imagenet(tf.constant(image), training=False)
    np.testing.assert_array_equal(_pixels(out), image[16:240, 48:272])
    # A 100x200 image: shorter edge to 256 (-> 256x512), then the centre 224x224.
    small = np.full((100, 200, 3), 200, np.uint8)
    small[:, :100] = 10  # left half dark: the centre crop straddles the edge evenly
    out = _pixels(data.preprocess_imagenet(tf.constant(small), training=False))
    assert out.shape == (224, 224, 3)
    assert np.all(out[:, :100] == 10) and np.all(out[:, 124:] == 200)
    # Other sizes keep the 256/224 ratio (tiny models in tests use 32 from 37).
    out = data.preprocess_imagenet(tf.constant(image), training=False, image_size=32)
    assert out.shape == (32, 32, 3)


def test_small_image_preprocessing():
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (28, 28, 1)), tf.uint8)
    evaluated = data.preprocess_small(image, training=False, mean=(0.5,))
    np.testing.assert_allclose(evaluated.numpy(), image.numpy() / 255 - 0.5, atol=1e-6)
    tf.random.set_seed(0)
    outs = [data.preprocess_small(image, training=True, mean=(0.5,)).numpy() for _ in range(6)]
    assert all(out.shape == (28, 28, 1) for out in outs)
    assert any(not np.allclose(out, evaluated) for out in outs)  # random pad-crop / flip


@pytest.mark.smoke
def test_imagenet2012_through_tfds_mock_data():
    with tfds.testing.mock_data(num_examples=6):
        train = data.load_split(
            "imagenet2012", "train", training=True, batch_size=4, image_size=32, seed=0
        )
        assert (train.num_examples, train.num_classes, train.input_shape) == (6, 1000, (32, 32, 3))
        x, y = next(iter(train.dataset))
        assert x.shape == (4, 32, 32, 3) and y.shape == (4,)
        assert data.default_eval_split("imagenet2012") == "validation"
        val = data.load_split(
            "imagenet2012", "validation", training=False, batch_size=4, image_size=32
        )
        assert [int(b[0].shape[0]) for b in val.dataset] == [4, 2]


@pytest.mark.parametrize(
    "content, message",
    [
        (bytes([0, 0, 8, 3, 0, 0]), "is truncated: its header announces 3 dimensions."),
        # 2**32-1 ** 3 items: a size no file has, without overflowing into a match.
        (bytes([0, 0, 8, 3]) + b"\xff" * 12 + b"\x00" * 8, "is truncated or corrupt: header"),
    ],
)
def test_idx_header_that_lies_about_its_size(tmp_path, content, message):
    (tmp_path / "bad-idx3-ubyte").write_bytes(content)
    with pytest.raises(data.DataError, match=message):
        data.read_idx(str(tmp_path / "bad-idx3-ubyte"))


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0, 3, 10, 2], np.uint8), "1 label(s) outside the 10 classes 0..9, the first "
                                            "10 at index 2."),
        (np.array([0, 255, 255, 1], np.uint8), "2 label(s) outside the 10 classes 0..9, the "
                                               "first 255 at index 1."),
    ],
)  # fmt: skip
def test_idx_labels_outside_the_classes_are_refused(tmp_path, labels, message):
    directory = make_idx_dataset(tmp_path, train=4, test=4, size=8)
    data.write_idx(f"{directory}/t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(data.DataError) as error:
        data.load_split("fashion_mnist", "test", training=False, batch_size=2, data_dir=directory)
    assert str(error.value) == f"{directory}/t10k-labels-idx1-ubyte.gz: {message}"


def test_idx_images_must_be_bytes_and_labels_integers(tmp_path):
    directory = make_idx_dataset(tmp_path, train=4, test=4, size=8)
    header = bytes([0, 0, 0x0D, 1]) + np.asarray([4], ">u4").tobytes()  # 0x0D: float32
    with gzip.open(f"{directory}/t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(header + np.zeros(4, ">f4").tobytes())
    with pytest.raises(data.DataError, match="labels must be integers, got float32"):
        data.load_split("fashion_mnist", "test", training=False, batch_size=2, data_dir=directory)
    header = bytes([0, 0, 0x0C, 3]) + np.asarray([4, 8, 8], ">u4").tobytes()  # 0x0C: int32
    with gzip.open(f"{directory}/train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + np.zeros((4, 8, 8), ">i4").tobytes())
    with pytest.raises(data.DataError, match=r"images must be unsigned bytes \(IDX type 0x08\)"):
        data.load_split("fashion_mnist", "train", training=True, batch_size=2, data_dir=directory)


def test_eval_split_for_a_model_picks_the_test_split_and_checks_the_shape(tmp_path):
    make_idx_dataset(tmp_path, train=4, test=3)
    split, loaded = data.load_eval_split_for((28, 28, 1), "fashion_mnist", batch_size=2,
                                             data_dir=str(tmp_path))  # fmt: skip
    assert split == "test" and loaded.num_examples == 3 and loaded.input_shape == (28, 28, 1)
    # Another size is resized to; another channel count cannot be: one line naming the model.
    _, resized = data.load_eval_split_for((32, 32, 1), "fashion_mnist", batch_size=2,
                                          data_dir=str(tmp_path))  # fmt: skip
    assert next(iter(resized.dataset))[0].shape == (2, 32, 32, 1)
    with pytest.raises(data.DataError, match=r"^m.h5 expects inputs \(28, 28, 3\), but "):
        data.load_eval_split_for((28, 28, 3), "fashion_mnist", batch_size=2,
                                 data_dir=str(tmp_path), model="m.h5")  # fmt: skip
