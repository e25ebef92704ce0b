"""`tf.distribute` strategies for training: one device, all local GPUs, many workers, TPU.

The batch size given to training is always the *global* batch: Keras splits it
evenly over `strategy.num_replicas_in_sync` replicas, so it must be divisible by
that number. The learning rate is not rescaled automatically (see docs/training.md).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

__all__ = ["STRATEGIES", "StrategyError", "check_global_batch", "is_chief", "make_strategy"]

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


class StrategyError(ValueError):
    """A strategy that cannot be created or used as asked; the message says why."""


def _split_cpu(logical_cpus: int) -> list[str]:
    """Split the (first) CPU into `logical_cpus` logical devices; before TF starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus
        )
    except RuntimeError as error:
        raise StrategyError(
            f"cannot split the CPU into {logical_cpus} devices: TensorFlow is already running."
        ) from error
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def make_strategy(
    name: str = "default", *, tpu: str | None = None, logical_cpus: int = 0
) -> tf.distribute.Strategy:
    """Create a distribution strategy by name; call it before any other TensorFlow work.

    * `default`: the default strategy (one CPU or GPU).
    * `mirrored`: `tf.distribute.MirroredStrategy` over all local GPUs (synchronous
      data parallelism). Without GPUs it uses the CPU, or `logical_cpus` logical
      CPU devices, which lets you try distribution on a laptop.
    * `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`; the cluster and
      this worker's role come from the `TF_CONFIG` environment variable.
    * `tpu`: `tf.distribute.TPUStrategy` on the TPU named by `tpu` (`""` or None:
      the local TPU VM or the one `TPU_NAME` points to).

    # Arguments
        name: One of `STRATEGIES`.
        tpu: TPU name or address for `tpu`.
        logical_cpus: With `mirrored` and no GPU: number of logical CPU devices (0:
            the CPU as one device).

    # Returns
        A `tf.distribute.Strategy`.

    # Raises
        StrategyError: unknown name, bad `TF_CONFIG`, no TPU, ...

    # Example
        ```python
        strategy = make_strategy("mirrored")
        with strategy.scope():
            model = get_model("el_resnet26", input_shape=(224, 224, 3))
        ```
    """
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = None
        if logical_cpus > 1 and not tf.config.list_physical_devices("GPU"):
            devices = _split_cpu(logical_cpus)
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        message = f"no TPU found ({error}); pass --tpu NAME or run on a TPU VM."
        raise StrategyError(message) from error
    return tf.distribute.TPUStrategy(resolver)


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise StrategyError(
            '--strategy multi_worker needs TF_CONFIG, e.g. TF_CONFIG=\'{"cluster": {"worker": '
            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\' on the '
            "first machine and index 1 on the second."
        )
    try:
        config = json.loads(raw)
        config["cluster"]
        config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise StrategyError(f"TF_CONFIG is not valid ({error!r}): {raw}") from error


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes the run's outputs (always True on one machine)."""
    return bool(strategy.extended.should_checkpoint)


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The per-replica batch of a global `batch_size`.

    # Raises
        StrategyError: `batch_size` is not divisible by the number of replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size <= 0 or batch_size % replicas:
        raise StrategyError(
            f"--batch_size {batch_size} is the global batch and must be a positive multiple of "
            f"the {replicas} replicas of this strategy; use e.g. "
            f"--batch_size {max(1, round(batch_size / replicas)) * replicas}."
        )
    return batch_size // replicas
