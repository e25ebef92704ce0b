"""Teacher-student training: ReActNet's distributional loss, Real-to-Binary's attention matching.

`DistillationModel` wraps a student (any Keras classifier) for `fit`: each training
step runs the teacher in inference mode and minimises

    distribution_weight * T^2 * CE(softmax(teacher / T), log_softmax(student / T))
    + label_weight * CE(labels, student)
    + attention_weight * mean_pairs || Q_s / ||Q_s|| - Q_t / ||Q_t|| ||_2
    + weight_decay / 2 * sum ||kernel||^2

with `Q = mean_c(A^2)` the spatial attention map of a block output `A`. The weight
decay is L2 added to the loss (PyTorch `Adam(weight_decay=...)`, what ReActNet and
Real-to-Binary trained with), not AdamW's decoupled decay: that keeps the published
values meaningful. It applies to conv and dense kernels (latent binary weights
included), not to BatchNorm, biases or the EL/ReActNet per-channel parameters.

The teacher is not tracked by the wrapper: it is in no checkpoint, backup or saved
weights, which all hold the student alone (`save_weights` saves the student).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

__all__ = [
    "BLOCK_PAIRS",
    "DistillationError",
    "DistillationModel",
    "attention_loss",
    "attention_vector",
    "block_pairs",
    "check_pairs",
    "check_teacher",
    "distribution_loss",
    "ends_with_softmax",
]

_EPSILON = 1e-7  # as Keras' cross-entropy on probabilities
# `attention_pairs` that pairs every block output the student and teacher share by name.
BLOCK_PAIRS = "blocks"


class DistillationError(ValueError):
    """A teacher, layer mapping or loss setting that cannot work; the message says why."""


def _log_probabilities(probabilities: tf.Tensor) -> tf.Tensor:
    return tf.math.log(tf.clip_by_value(probabilities, _EPSILON, 1.0))


def distribution_loss(
    teacher_probabilities: tf.Tensor, student_probabilities: tf.Tensor, temperature: float = 1.0
) -> tf.Tensor:
    """ReActNet's distributional loss per example: CE(teacher softmax, student log-softmax).

    Both inputs are probabilities (the zoo's softmax outputs). `log p` equals the logits
    up to a per-example constant, so `softmax(log p / T)` is the tempered softmax of the
    logits; the loss is scaled by `T^2` (Hinton et al.) so its gradients keep their size.

    # Arguments
        teacher_probabilities: `(batch, classes)`; no gradient flows into them.
        student_probabilities: `(batch, classes)`.
        temperature: `T > 0`; 1 is ReActNet's loss.

    # Returns
        A `(batch,)` tensor.

    # Example
        ```python
        loss = distribution_loss(teacher(x), student(x), temperature=1.0)
        ```
    """
    teacher_log = _log_probabilities(tf.stop_gradient(teacher_probabilities))
    teacher = tf.nn.softmax(teacher_log / temperature)
    student = tf.nn.log_softmax(_log_probabilities(student_probabilities) / temperature)
    return -tf.reduce_sum(teacher * student, axis=-1) * temperature**2


def attention_vector(volume: tf.Tensor) -> tf.Tensor:
    """Real-to-Binary's normalised spatial attention: `mean_c(A^2)`, flattened, unit L2 norm.

    # Arguments
        volume: `(batch, height, width, channels)`.

    # Returns
        `(batch, height * width)`.
    """
    area = tf.reduce_mean(tf.square(volume), axis=-1)
    flat = tf.reshape(area, (tf.shape(area)[0], -1))
    return tf.math.l2_normalize(flat, axis=-1, epsilon=1e-12)


def attention_loss(student_volumes: list[tf.Tensor], teacher_volumes: list[tf.Tensor]) -> tf.Tensor:
    """Attention matching per example: the mean over pairs of `||q_s - q_t||_2`.

    # Arguments
        student_volumes, teacher_volumes: Block outputs, pairwise of equal spatial size
            (channels may differ: the maps average them out).

    # Returns
        A `(batch,)` tensor.
    """
    distances = [
        tf.norm(attention_vector(s) - attention_vector(tf.stop_gradient(t)), axis=-1)
        for s, t in zip(student_volumes, teacher_volumes, strict=True)
    ]
    return tf.add_n(distances) / len(distances)


def ends_with_softmax(model: tf.keras.Model) -> bool:
    """Whether `model` outputs probabilities (a softmax last), not logits."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return isinstance(last, tf.keras.layers.Softmax) or activation is tf.keras.activations.softmax


def _probabilities(model: tf.keras.Model, output: tf.Tensor) -> tf.Tensor:
    return output if ends_with_softmax(model) else tf.nn.softmax(output)


def _layer_output(model: tf.keras.Model, name: str, role: str) -> tf.Tensor:
    try:
        return model.get_layer(name).output
    except ValueError:
        raise DistillationError(
            f"the {role} model {model.name!r} has no layer {name!r} for attention matching"
        ) from None


def block_pairs(student: tf.keras.Model, teacher: tf.keras.Model) -> dict[str, str]:
    """`{name: name}` for every block output (a layer named `*_out`) both models have.

    The zoo names block outputs alike in a binary net and its float twin
    (`stage2_block1_out`), so this is Real-to-Binary's block-by-block mapping.

    # Raises
        DistillationError: the two models share no block output.
    """
    teacher_names = {layer.name for layer in teacher.layers}
    pairs = {
        layer.name: layer.name
        for layer in student.layers
        if layer.name.endswith("_out") and layer.name in teacher_names
    }
    if not pairs:
        raise DistillationError(
            f"{student.name!r} and {teacher.name!r} share no block output (*_out layer) for "
            "attention_pairs='blocks': give the pairs explicitly"
        )
    return pairs


def check_pairs(
    student: tf.keras.Model, teacher: tf.keras.Model, pairs: Mapping[str, str] | str
) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """The (student, teacher) block outputs of `pairs`, checked.

    # Arguments
        student, teacher: Functional Keras models.
        pairs: `{student layer name: teacher layer name}`, or `"blocks"` (`block_pairs`).

    # Returns
        The pairs of symbolic outputs, in the order of `pairs`.

    # Raises
        DistillationError: a missing layer, an output that is not 4-D, or different
            spatial sizes (one line naming both layers).
    """
    if pairs == BLOCK_PAIRS:
        pairs = block_pairs(student, teacher)
    elif isinstance(pairs, str):
        raise DistillationError(f"attention_pairs must be {BLOCK_PAIRS!r} or a mapping")
    outputs = []
    for student_name, teacher_name in pairs.items():
        s = _layer_output(student, student_name, "student")
        t = _layer_output(teacher, teacher_name, "teacher")
        if s.shape.rank != 4 or t.shape.rank != 4 or s.shape[1:3] != t.shape[1:3]:
            raise DistillationError(
                f"attention pair {student_name} -> {teacher_name}: shapes "
                f"{tuple(s.shape)} and {tuple(t.shape)} differ in spatial size (need 4-D "
                "block outputs of equal height and width)"
            )
        outputs.append((s, t))
    return outputs


def check_teacher(student: tf.keras.Model, teacher: tf.keras.Model) -> None:
    """Refuse a teacher that does not see the student's inputs or predict its classes.

    # Raises
        DistillationError: a different input shape or number of classes.
    """
    if tuple(teacher.input_shape[1:]) != tuple(student.input_shape[1:]):
        raise DistillationError(
            f"the teacher takes inputs of shape {tuple(teacher.input_shape[1:])}, the student "
            f"{tuple(student.input_shape[1:])}: train the teacher on the same image size"
        )
    if teacher.output_shape[-1] != student.output_shape[-1]:
        raise DistillationError(
            f"the teacher predicts {teacher.output_shape[-1]} classes, the student "
            f"{student.output_shape[-1]}: distill from a teacher of the same dataset"
        )


def _decayed(variable: tf.Variable) -> bool:
    name = variable.name.split("/")[-1]
    return name.startswith(("kernel", "depthwise_kernel", "pointwise_kernel"))


class DistillationModel(tf.keras.Model):
    """A student wrapped for `fit` with a teacher, attention matching and L2 weight decay.

    `call` is the student's; `fit` minimises the loss of the module docstring and
    reports `loss` (the total), `label_loss`, `distribution_loss`, `attention_loss`
    (when used) and the compiled metrics; `evaluate` reports the student's label
    cross-entropy and metrics, as an undistilled run would. Compile it like the
    student (the compiled loss serves evaluation).

    # Arguments
        student: The Keras classifier being trained.
        teacher: A trained classifier, or None (then only labels and weight decay).
        temperature: Of the distributional loss.
        distribution_weight, label_weight: Weights of the distributional and the
            label cross-entropy (without a teacher the label weight is 1).
        attention_weight: Weight of attention matching (needs `attention_pairs`).
        attention_pairs: `{student layer: teacher layer}` block outputs, or `"blocks"`.
        weight_decay: L2 coefficient on conv and dense kernels.

    # Example
        ```python
        wrapped = DistillationModel(student, teacher=teacher, label_weight=0.0)
        wrapped.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        wrapped.fit(dataset, epochs=1)
        student.save("student.h5")
        ```
    """

    def __init__(
        self,
        student: tf.keras.Model,
        *,
        teacher: tf.keras.Model | None = None,
        temperature: float = 1.0,
        distribution_weight: float = 1.0,
        label_weight: float = 0.0,
        attention_weight: float = 0.0,
        attention_pairs: Mapping[str, str] | str | None = None,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(name=f"{student.name}_distilled", **kwargs)
        pairs = attention_pairs or {}
        if teacher is None and (pairs or attention_weight):
            raise DistillationError("attention matching needs a teacher")
        if attention_weight and not pairs:
            raise DistillationError("attention_weight > 0 needs attention_pairs")
        if not temperature > 0:
            raise DistillationError(f"temperature must be positive, got {temperature}")
        for name, value in (
            ("distribution_weight", distribution_weight),
            ("label_weight", label_weight),
            ("attention_weight", attention_weight),
            ("weight_decay", weight_decay),
        ):
            if not value >= 0:
                raise DistillationError(f"{name} must be >= 0, got {value}")
        self.student = student
        self.temperature = float(temperature)
        self.distribution_weight = float(distribution_weight) if teacher is not None else 0.0
        self.label_weight = float(label_weight) if teacher is not None else 1.0
        self.attention_weight = float(attention_weight)
        self.weight_decay = float(weight_decay)
        self._has_teacher = teacher is not None
        self._terms = ["label_loss"]
        if teacher is not None:
            check_teacher(student, teacher)
            tapped = check_pairs(student, teacher, pairs) if self.attention_weight else []
            # Plain closures: Keras tracks neither, so the teacher is in no checkpoint and the
            # tapped student does not appear twice in one.
            self._student_taps = _tap(student, [s for s, _ in tapped])
            self._teacher_taps = _tap(teacher, [t for _, t in tapped])
            self._teacher_is_softmax = ends_with_softmax(teacher)
            self._terms.append("distribution_loss")
            if tapped:
                self._terms.append("attention_loss")
        self._trackers = {name: tf.keras.metrics.Mean(name=name) for name in ["loss", *self._terms]}

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    @property
    def metrics(self):
        return [*self._trackers.values(), *self.compiled_metrics.metrics]

    def _kernel_l2(self) -> tf.Tensor:
        kernels = [v for v in self.student.trainable_variables if _decayed(v)]
        if not self.weight_decay or not kernels:
            return tf.constant(0.0)
        return 0.5 * self.weight_decay * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])

    def train_step(self, data):
        x, y = data[0], data[1]
        teacher_outputs = None
        if self._has_teacher:
            teacher_outputs = self._teacher_taps(x)
        with tf.GradientTape() as tape:
            if self._has_teacher:
                outputs = self._student_taps(x, training=True)
                prediction, volumes = outputs[0], outputs[1:]
            else:
                prediction, volumes = self.student(x, training=True), []
            probabilities = _probabilities(self.student, prediction)
            terms = {
                "label_loss": tf.reduce_mean(
                    tf.keras.losses.sparse_categorical_crossentropy(y, probabilities)
                )
            }
            total = self.label_weight * terms["label_loss"]
            if teacher_outputs is not None:
                teacher_probabilities = teacher_outputs[0]
                if not self._teacher_is_softmax:
                    teacher_probabilities = tf.nn.softmax(teacher_probabilities)
                terms["distribution_loss"] = tf.reduce_mean(
                    distribution_loss(teacher_probabilities, probabilities, self.temperature)
                )
                total += self.distribution_weight * terms["distribution_loss"]
                if volumes:
                    terms["attention_loss"] = tf.reduce_mean(
                        attention_loss(volumes, teacher_outputs[1:])
                    )
                    total += self.attention_weight * terms["attention_loss"]
            total += self._kernel_l2() + tf.add_n([tf.constant(0.0), *self.student.losses])
            # Gradients are summed over replicas: each replica's share of the mean.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = total / replicas
        variables = self.student.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self._trackers["loss"].update_state(total)
        for name, value in terms.items():
            self._trackers[name].update_state(value)
        self.compiled_metrics.update_state(y, prediction)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        x, y = data[0], data[1]
        prediction = self.student(x, training=False)
        loss = tf.reduce_mean(
            tf.keras.losses.sparse_categorical_crossentropy(
                y, _probabilities(self.student, prediction)
            )
        )
        self._trackers["loss"].update_state(loss)
        self.compiled_metrics.update_state(y, prediction)
        return {"loss": self._trackers["loss"].result()} | {
            metric.name: metric.result() for metric in self.compiled_metrics.metrics
        }

    def save_weights(self, filepath, *args, **kwargs):
        return self.student.save_weights(filepath, *args, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        return self.student.load_weights(filepath, *args, **kwargs)


def _tap(model: tf.keras.Model, volumes: list[tf.Tensor]):
    """A function returning `[model output, *volumes]` of `model` on its input."""
    if not volumes:

        def outputs(x, training=False):
            return [model(x, training=training)]

        return outputs
    tapped = tf.keras.Model(model.inputs, [model.output, *volumes])
    return lambda x, training=False: tapped(x, training=training)
