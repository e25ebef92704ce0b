"""Latency on this host, in LCE's Python interpreter."""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from typing import Any

import larq_compute_engine as lce
import numpy as np

from el_larq.deploy.validation import validate_flatbuffer
from el_larq.io import captured_stderr
from el_larq.safety import DeploymentError

__all__ = [
    "DEFAULT_KERNEL",
    "DEFAULT_XNNPACK",
    "KERNELS",
    "LATENCY_HEADER",
    "Latency",
    "host_latency",
    "make_interpreter",
]

KERNELS = ("indirect_bgemm", "optimized", "reference")
# On x86 `indirect_bgemm` is LCE's fast binary-conv kernel; `optimized` is tuned for ARM.
DEFAULT_KERNEL = "indirect_bgemm"
# Whether the interpreter runs float ops through TFLite's XNNPACK delegate unless told
# otherwise: the one switch for every tool and function. On: in the overhead report it is
# up to 1.5x faster for the MobileNets, QuickNets and ReActNets and level with the
# default path for the ResNets (each faster in some runs), and it was faster for the main
# job's 28 px EL-ResNet26 (docs/deployment.md, 3).
DEFAULT_XNNPACK = True


@dataclasses.dataclass
class Latency:
    """Latency of one model, from the host interpreter or a device, in milliseconds.

    `median_ms` is None for `lce_benchmark_model`, which prints no median.
    `cpu_median_ms` / `cpu_min_ms` (host only) are the process CPU time of the same
    runs: with one thread they equal the latency of an undisturbed run, and unlike wall
    time they hardly move when other jobs share the cores. `round_medians_ms` (host
    only) is the median wall time of each interleaved round, for paired comparisons of
    models timed in the same rounds (`el_larq.stats.ratio_interval`).
    """

    model: str
    where: str
    num_threads: int
    kernel: str
    runs: int
    mean_ms: float
    median_ms: float | None
    min_ms: float
    max_ms: float
    cpu_median_ms: float | None = None
    cpu_min_ms: float | None = None
    round_medians_ms: list[float] = dataclasses.field(default_factory=list)

    def row(self) -> str:
        """One row of `LATENCY_HEADER`'s table."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}"

        return (
            f"| {self.model} | {self.where} | {self.num_threads} | {self.kernel} | {self.runs} "
            f"| {ms(self.median_ms)} | {self.mean_ms:.3f} | {self.min_ms:.3f} "
            f"| {self.max_ms:.3f} | {ms(self.cpu_median_ms)} | {ms(self.cpu_min_ms)} |"
        )


LATENCY_HEADER = (
    "| model | where | threads | kernel | runs | median ms | mean ms | min ms | max ms "
    "| CPU median ms | CPU min ms |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def make_interpreter(
    flatbuffer: bytes,
    *,
    num_threads: int = 1,
    kernel: str = DEFAULT_KERNEL,
    xnnpack: bool | None = None,
    source: str = "the model",
) -> Any:
    """LCE's Python interpreter with a named binary-conv kernel.

    On x86 `"indirect_bgemm"` is the fast one (LCE's default `"optimized"` path is
    tuned for ARM); `"reference"` is the slow, simple one. The flatbuffer is checked
    first (`el_larq.deploy.validation.validate_flatbuffer`): TFLite trusts its input, and a
    truncated or corrupt file would crash the process instead of raising.

    # Arguments
        flatbuffer: The bytes of a `.tflite` model.
        num_threads: Interpreter threads.
        kernel: Binary conv kernel, one of `KERNELS`.
        xnnpack: Run float ops through TFLite's XNNPACK delegate (None:
            `DEFAULT_XNNPACK`).
        source: Where the bytes came from (a file name), for error messages.

    # Raises
        DeploymentError: an unknown kernel, an invalid flatbuffer, or one the
            interpreter refuses (one line).

    # Example
        ```python
        interpreter = make_interpreter(flatbuffer, num_threads=1)
        ```
    """
    if kernel not in KERNELS:
        raise DeploymentError(f"unknown kernel '{kernel}'; valid kernels: {', '.join(KERNELS)}")
    xnnpack = DEFAULT_XNNPACK if xnnpack is None else xnnpack
    validate_flatbuffer(flatbuffer, source)
    # TFLite prints its reasons on file descriptor 2 and raises a generic error: keep
    # them for the one-line message. One run on zeros finds what only Invoke checks
    # (unsupported types of a valid file), here instead of mid-benchmark.
    try:
        with captured_stderr() as lines:
            interpreter = lce.testing.Interpreter(
                flatbuffer,
                num_threads=num_threads,
                use_reference_bconv=kernel == "reference",
                use_indirect_bgemm=kernel == "indirect_bgemm",
                use_xnnpack=xnnpack,
            )
            zeros = [
                np.zeros(shape, dtype)
                for shape, dtype in zip(
                    interpreter.input_shapes, interpreter.input_types, strict=True
                )
            ]
            # The wrapper's own call: one Invoke at the file's batch (`predict` feeds rows).
            interpreter.interpreter.predict(zeros)
    except (RuntimeError, ValueError) as error:
        errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR")]
        reason = "; ".join(errors[:2]) or " ".join(str(error).split()) or type(error).__name__
        raise DeploymentError(f"LCE's interpreter cannot run {source}: {reason}") from None
    return interpreter


def _timed_runs(
    interpreter: Any, x: np.ndarray | list[np.ndarray], runs: int
) -> list[tuple[float, float]]:
    """`(wall ms, process CPU ms)` of each run."""
    times = []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        interpreter.predict(x)
        times.append(((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3))
    return times


def _latency(name, rounds, num_threads, kernel) -> Latency:
    times = [run for runs in rounds for run in runs]
    wall, cpu = [t for t, _ in times], [c for _, c in times]
    return Latency(
        model=name,
        where=f"host {platform.machine()} (LCE Python interpreter)",
        num_threads=num_threads,
        kernel=kernel,
        runs=len(times),
        mean_ms=statistics.fmean(wall),
        median_ms=statistics.median(wall),
        min_ms=min(wall),
        max_ms=max(wall),
        cpu_median_ms=statistics.median(cpu),
        cpu_min_ms=min(cpu),
        round_medians_ms=[statistics.median(t for t, _ in runs) for runs in rounds],
    )


def host_latency(
    flatbuffers: dict[str, bytes],
    *,
    num_runs: int = 50,
    warmup_runs: int = 5,
    num_threads: int = 1,
    kernel: str = DEFAULT_KERNEL,
    xnnpack: bool | None = None,
    rounds: int = 5,
) -> dict[str, Latency]:
    """Latency of one or more `.tflite` models on this host, interleaved for fairness.

    Every model is warmed up, then the `num_runs` timed runs are split into `rounds`
    rounds that alternate between the models, so that a slow period of a shared machine
    hits all of them alike; the CPU time of every run is recorded too (see `Latency`).
    This is a relative measure on x86: LCE's ARM kernels only run on the device (see
    `device_commands`).

    # Arguments
        flatbuffers: `{name: .tflite bytes}`.
        num_runs: Timed runs per model.
        warmup_runs: Untimed runs per model first.
        num_threads: Interpreter threads.
        kernel: Binary conv kernel, one of `KERNELS`.
        xnnpack: Run float ops through TFLite's XNNPACK delegate (None:
            `DEFAULT_XNNPACK`).
        rounds: Number of interleaved rounds.

    # Returns
        `{name: Latency}`.

    # Example
        ```python
        result = host_latency({"el": open("el.tflite", "rb").read()}, num_runs=20)
        print(result["el"].median_ms)
        ```
    """
    if num_runs < 1 or warmup_runs < 0 or num_threads < 1:
        raise DeploymentError("num_runs and num_threads must be >= 1, warmup_runs >= 0")
    interpreters, inputs, times = {}, {}, {}
    for name, flatbuffer in flatbuffers.items():
        interpreters[name] = make_interpreter(
            flatbuffer, num_threads=num_threads, kernel=kernel, xnnpack=xnnpack, source=name
        )
        rng = np.random.default_rng(0)
        arrays = [
            rng.uniform(-1, 1, size=shape).astype(np.float32)
            for shape in interpreters[name].input_shapes
        ]
        # LCE's `predict` takes one array, or a list for a model with several inputs.
        inputs[name] = arrays[0] if len(arrays) == 1 else arrays
        _timed_runs(interpreters[name], inputs[name], warmup_runs)
        times[name] = []
    rounds = max(1, min(rounds, num_runs))
    for r in range(rounds):
        per_round = num_runs // rounds + (1 if r < num_runs % rounds else 0)
        for name in flatbuffers:
            times[name].append(_timed_runs(interpreters[name], inputs[name], per_round))
    return {name: _latency(name, times[name], num_threads, kernel) for name in flatbuffers}
