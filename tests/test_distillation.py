"""el_larq.distillation: losses against hand computations, the wrapped student's step, checks."""

import numpy as np
import pytest
import tensorflow as tf

from el_larq import distillation
from el_larq.distillation import DistillationError, DistillationModel
from el_larq.zoo import el_resnet18, resnet18

SMALL = dict(input_shape=(16, 16, 1), num_classes=4, width=0.125)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_distribution_loss_is_cross_entropy_of_tempered_softmaxes():
    rng = np.random.default_rng(0)
    teacher_logits, student_logits = rng.normal(size=(2, 5, 7)) * 3
    for temperature in (1.0, 2.5):
        loss = distillation.distribution_loss(
            _softmax(teacher_logits).astype("float32"),
            _softmax(student_logits).astype("float32"),
            temperature,
        ).numpy()
        q = _softmax(teacher_logits / temperature)
        log_p = np.log(_softmax(student_logits / temperature))
        expected = -(q * log_p).sum(-1) * temperature**2
        np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-5)


def test_distribution_loss_gradient_is_student_minus_teacher():
    # d/dz CE(q, softmax(z)) = softmax(z) - q at T = 1: the ReActNet gradient.
    rng = np.random.default_rng(1)
    teacher = tf.constant(_softmax(rng.normal(size=(3, 6))), tf.float32)
    logits = tf.Variable(rng.normal(size=(3, 6)), dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(distillation.distribution_loss(teacher, tf.nn.softmax(logits)))
    np.testing.assert_allclose(
        tape.gradient(loss, logits).numpy(),
        tf.nn.softmax(logits).numpy() - teacher.numpy(),
        atol=1e-5,
    )


def test_attention_loss_matches_numpy():
    rng = np.random.default_rng(2)
    student = [rng.normal(size=(2, 4, 4, 8)), rng.normal(size=(2, 2, 2, 3))]
    teacher = [rng.normal(size=(2, 4, 4, 5)), rng.normal(size=(2, 2, 2, 3))]

    def q(volume):
        flat = (volume**2).mean(-1).reshape(len(volume), -1)
        return flat / np.linalg.norm(flat, axis=-1, keepdims=True)

    expected = np.mean(
        [np.linalg.norm(q(s) - q(t), axis=-1) for s, t in zip(student, teacher, strict=True)], 0
    )
    got = distillation.attention_loss(
        [tf.constant(s, tf.float32) for s in student], [tf.constant(t, tf.float32) for t in teacher]
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


@pytest.fixture(scope="module")
def pair():
    tf.keras.utils.set_random_seed(0)
    return el_resnet18(**SMALL), resnet18(**SMALL)


def _batch(n=8, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16, 16, 1)).astype("float32")
    return x, rng.integers(0, 4, n)


def _compiled(wrapped, learning_rate=0.0):
    wrapped.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="top1")],
    )
    return wrapped


def test_step_loss_is_the_weighted_sum_of_the_terms(pair):
    student, teacher = pair
    pairs = {"stage2_block1_out": "stage2_block1_out"}
    wrapped = _compiled(
        DistillationModel(
            student,
            teacher=teacher,
            temperature=2.0,
            distribution_weight=0.7,
            label_weight=0.3,
            attention_weight=5.0,
            attention_pairs=pairs,
            weight_decay=1e-3,
        )
    )
    x, y = _batch()
    logs = wrapped.train_on_batch(x, y, return_dict=True)  # learning rate 0: weights kept
    taps = tf.keras.Model(
        student.inputs, [student.output, student.get_layer(pairs.popitem()[0]).output]
    )
    p_s, a_s = (t.numpy() for t in taps(x, training=True))
    t_taps = tf.keras.Model(
        teacher.inputs, [teacher.output, teacher.get_layer("stage2_block1_out").output]
    )
    p_t, a_t = (t.numpy() for t in t_taps(x, training=False))
    label = -np.mean(np.log(np.clip(p_s[np.arange(8), y], 1e-7, 1)))
    dist = np.mean(distillation.distribution_loss(p_t, p_s, 2.0).numpy())
    att = np.mean(distillation.attention_loss([a_s], [a_t]).numpy())
    kernels = [
        v.numpy() for v in student.trainable_variables if v.name.split("/")[-1].startswith("kernel")
    ]
    l2 = 0.5 * 1e-3 * sum((k**2).sum() for k in kernels)
    np.testing.assert_allclose(logs["label_loss"], label, rtol=1e-4)
    np.testing.assert_allclose(logs["distribution_loss"], dist, rtol=1e-4)
    np.testing.assert_allclose(logs["attention_loss"], att, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 0.3 * label + 0.7 * dist + 5.0 * att + l2, rtol=1e-4)
    assert {"top1"} <= set(logs)


def test_teacher_is_frozen_and_outside_the_checkpoint(pair, tmp_path):
    student, teacher = pair
    teacher_before = [w.copy() for w in teacher.get_weights()]
    wrapped = _compiled(DistillationModel(student, teacher=teacher), learning_rate=1e-2)
    x, y = _batch()
    logs = wrapped.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])
    for before, after in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    checkpoint_vars = {
        name
        for name, _ in tf.train.list_variables(
            tf.train.Checkpoint(model=wrapped).save(str(tmp_path / "ckpt"))
        )
    }
    assert not any("teacher" in name for name in checkpoint_vars)
    wrapped.save_weights(str(tmp_path / "w.h5"))
    fresh = el_resnet18(**SMALL)
    fresh.load_weights(str(tmp_path / "w.h5"))  # the student's weights alone
    np.testing.assert_allclose(
        fresh.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-6
    )
    evaluation = wrapped.evaluate(x, y, verbose=0, return_dict=True)
    assert set(evaluation) == {"loss", "top1"}


def test_without_teacher_the_loss_is_labels_plus_l2(pair):
    student, _ = pair
    wrapped = _compiled(DistillationModel(student, weight_decay=0.01))
    x, y = _batch()
    logs = wrapped.train_on_batch(x, y, return_dict=True)
    kernels = [
        v.numpy() for v in student.trainable_variables if v.name.split("/")[-1].startswith("kernel")
    ]
    l2 = 0.5 * 0.01 * sum((k**2).sum() for k in kernels)
    np.testing.assert_allclose(logs["loss"], logs["label_loss"] + l2, rtol=1e-4)
    assert "distribution_loss" not in logs


@pytest.mark.parametrize(
    "kwargs, teacher_kwargs, expected",
    [
        ({}, dict(SMALL, input_shape=(20, 20, 1)), "takes inputs of shape"),
        ({}, dict(SMALL, num_classes=5), "predicts 5 classes"),
        (
            dict(attention_weight=1.0, attention_pairs={"nope": "stage1_block1_out"}),
            SMALL,
            "has no layer 'nope'",
        ),
        (
            dict(
                attention_weight=1.0,
                attention_pairs={"stage2_block1_out": "stage1_block1_out"},
            ),
            SMALL,
            "differ in spatial size",
        ),
        (dict(temperature=0.0), SMALL, "temperature must be positive"),
        (dict(attention_weight=1.0), SMALL, "needs attention_pairs"),
    ],
)
def test_bad_teacher_or_mapping_is_one_line(pair, kwargs, teacher_kwargs, expected):
    student, _ = pair
    teacher = resnet18(**teacher_kwargs)
    with pytest.raises(DistillationError, match=expected) as error:
        DistillationModel(student, teacher=teacher, **kwargs)
    assert "\n" not in str(error.value)
