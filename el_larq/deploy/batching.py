"""Run a `.tflite` on batches of images in LCE's interpreter, not one image per call.

LCE converts with a batch of 1 and its Python `Interpreter` cannot resize inputs: its
`predict` runs one image per call, and on small models the per-call cost is most of the
time. `with_batch_size` writes a copy of the flatbuffer whose computed tensors have a
batch of N (every op's output shape follows its inputs at allocation; only `RESHAPE`
carries a batch in its constant target shape). `BatchPredictor` runs that copy and keeps
its results honest: the first full batch must give exactly the outputs of one-by-one
calls, or it falls back to one image per call.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from larq_compute_engine.mlir.python import tflite_schema

from el_larq.deploy.flatbuffer import is_constant, op_type, pack
from el_larq.deploy.host import make_interpreter
from el_larq.safety import DeploymentError

__all__ = ["BatchPredictor", "batching_speed", "default_batch_size", "with_batch_size"]

# Images per interpreter call unless told: enough to amortise the per-call cost of
# small inputs, few enough that a 224 px ResNet's activations stay small.
_MAX_BATCH = 32
_MAX_BATCH_VALUES = 2**20


def default_batch_size(input_shape: tuple[int, ...]) -> int:
    """Images per call for inputs of `input_shape` (without batch): 32 for 28 px, 6 for 224 px.

    # Example
        ```python
        default_batch_size((224, 224, 3))  # 6
        ```
    """
    return max(1, min(_MAX_BATCH, _MAX_BATCH_VALUES // int(np.prod(input_shape))))


def with_batch_size(flatbuffer: bytes, batch_size: int) -> bytes:
    """A copy of a batch-1 flatbuffer that runs `batch_size` images per call.

    # Arguments
        flatbuffer: The bytes of a `.tflite` model whose inputs have batch 1 (as LCE
            writes them).
        batch_size: The new batch.

    # Returns
        The new bytes (`flatbuffer` itself when `batch_size` is 1).

    # Raises
        DeploymentError: more than one subgraph, or an input without batch 1.

    # Example
        ```python
        interpreter = make_interpreter(with_batch_size(flatbuffer, 16))
        ```
    """
    if batch_size < 1:
        raise DeploymentError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size == 1:
        return flatbuffer
    model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(flatbuffer, 0))
    if len(model.subgraphs) != 1:
        raise DeploymentError("only single-subgraph models run batched")
    graph = model.subgraphs[0]
    for index in graph.inputs:
        shape = graph.tensors[index].shape
        if shape is None or len(shape) == 0 or shape[0] != 1:
            raise DeploymentError(f"input shape {shape} has no batch of 1")

    for tensor in graph.tensors:
        if tensor.shape is not None and len(tensor.shape) and tensor.shape[0] == 1:
            if not is_constant(model, tensor):
                tensor.shape = [batch_size, *tensor.shape[1:]]
    uses: dict[int, int] = {}
    for tensor in graph.tensors:
        uses[tensor.buffer] = uses.get(tensor.buffer, 0) + 1
    for op in graph.operators:
        if op_type(model, op) != "RESHAPE":
            continue
        options = op.builtinOptions
        if options is not None and options.newShape is not None and len(options.newShape):
            if options.newShape[0] == 1:
                options.newShape = [batch_size, *options.newShape[1:]]
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            target = graph.tensors[op.inputs[1]]
            if not is_constant(model, target):
                continue
            values = np.frombuffer(bytes(model.buffers[target.buffer].data), np.int32).copy()
            if values.size and values[0] == 1:
                values[0] = batch_size
                if uses[target.buffer] > 1:  # shared with another tensor: keep that one
                    model.buffers.append(tflite_schema.BufferT())
                    target.buffer = len(model.buffers) - 1
                model.buffers[target.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
    return pack(model, len(flatbuffer))


class _BatchMismatch(Exception):
    """The batched copy does not give one output row per input."""


class BatchPredictor:
    """Outputs of a single-input, single-output `.tflite`, `batch_size` images per call.

    The first batch is also run one image at a time; unless the outputs are identical,
    or the batched copy cannot be built, every call runs one image at a time
    (`batched` tells which, `reason` why not). A last, partial batch is padded with
    zeros and the padding's outputs dropped.

    # Arguments
        flatbuffer: The bytes of the `.tflite` model.
        batch_size: Images per interpreter call (None: `default_batch_size`; 1: one by one).
        num_threads: Interpreter threads.
        kernel: Binary conv kernel (`el_larq.deploy.host.KERNELS`).
        xnnpack: XNNPACK delegate for float ops (None: the default).
        source: The file name, for error messages.

    # Example
        ```python
        predictor = BatchPredictor(open("model.tflite", "rb").read())
        probabilities = predictor.predict(images)  # (n, classes)
        ```
    """

    def __init__(
        self,
        flatbuffer: bytes,
        *,
        batch_size: int | None = None,
        num_threads: int = 1,
        kernel: str = "indirect_bgemm",
        xnnpack: bool | None = None,
        source: str = "the model",
    ):
        settings = dict(num_threads=num_threads, kernel=kernel, xnnpack=xnnpack, source=source)
        self.single = make_interpreter(flatbuffer, **settings)
        if len(self.single.input_shapes) != 1 or len(self.single.output_shapes) != 1:
            raise DeploymentError(f"{source} must have one input and one output")
        self.input_shape = tuple(self.single.input_shapes[0][1:])
        self.output_shape = tuple(self.single.output_shapes[0][1:])
        self.batch_size = default_batch_size(self.input_shape) if batch_size is None else batch_size
        self.batched, self.reason, self._interpreter, self._checked = False, "", None, False
        if self.batch_size < 1:
            raise DeploymentError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.batch_size == 1:
            self.reason = "batch size 1"
            return
        try:
            self._interpreter = make_interpreter(
                with_batch_size(flatbuffer, self.batch_size), **settings
            )
            self.batched = True
        except DeploymentError as error:
            self.reason = str(error)

    def _one_by_one(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.single.predict(x)).reshape(len(x), *self.output_shape)

    def _call(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n < self.batch_size:
            x = np.concatenate([x, np.zeros((self.batch_size - n, *x.shape[1:]), x.dtype)])
        (outputs,) = self._interpreter.interpreter.predict([x])
        outputs = np.asarray(outputs)
        if len(outputs) != self.batch_size:  # a graph that fixes its batch elsewhere
            raise _BatchMismatch(f"{len(outputs)} output rows per {self.batch_size} inputs")
        return outputs[:n]

    def _check_batch(self, head: np.ndarray) -> np.ndarray:
        """`head` filled up to a full batch with other inputs of its range: every row of
        the check must differ, or a graph that mixes or drops rows could pass it."""
        missing = self.batch_size - len(head)
        if missing <= 0:
            return head
        rng = np.random.default_rng(0)
        low, high = float(head.min()), float(head.max())
        extra = rng.uniform(low, high if high > low else low + 1, (missing, *head.shape[1:]))
        return np.concatenate([head, extra.astype(head.dtype)])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch of inputs `(n, *input_shape)`, any `n`.

        # Returns
            `(n, *output_shape)`.
        """
        x = np.asarray(x, dtype=self.single.input_types[0])
        if not self.batched or len(x) == 0:
            return self._one_by_one(x)
        if not self._checked:  # the first call's first batch, filled up if short
            head = self._check_batch(x[: self.batch_size])
            expected, detail = self._one_by_one(head), ""
            try:
                actual = self._call(head)
                if not np.array_equal(expected, actual):
                    detail = f"max |diff| {float(np.max(np.abs(expected - actual))):.3g}"
            except _BatchMismatch as error:
                detail = str(error)
            self._checked = True
            if detail:
                self.batched = False
                self.reason = f"batched outputs differ from one-by-one ({detail})"
                return self._one_by_one(x)
        parts = [self._call(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return np.concatenate(parts)


def batching_speed(
    flatbuffer: bytes,
    *,
    batch_sizes: tuple[int, ...] = (4, 8, 16, 32),
    images: int = 256,
    rounds: int = 5,
    num_threads: int = 1,
    kernel: str = "indirect_bgemm",
    xnnpack: bool | None = None,
) -> list[dict]:
    """Images/s of one-by-one and batched interpreter calls on the same images, side by side.

    The settings run in interleaved rounds (every round times each setting once), so a
    busy period of a shared machine slows all of them alike; process CPU time is
    recorded too (with one thread it is what an undisturbed run takes). Every batched
    setting's outputs are compared with one-by-one's.

    # Arguments
        flatbuffer: The bytes of a `.tflite` model.
        batch_sizes: Batched settings to measure besides 1.
        images: Images per timed run (random, uniform in [-1, 1]).
        rounds: Interleaved rounds.
        num_threads, kernel, xnnpack: Interpreter settings (`make_interpreter`).

    # Returns
        One dict per setting: `batch_size`, `batched` (False: it fell back),
        `images_per_s` and `cpu_images_per_s` (medians over the rounds), `speedup` and
        `cpu_speedup` (against one-by-one), `identical` (outputs equal to one-by-one's).

    # Example
        ```python
        for row in batching_speed(flatbuffer, batch_sizes=(8,), images=64, rounds=2):
            print(row["batch_size"], row["images_per_s"])
        ```
    """
    settings = dict(num_threads=num_threads, kernel=kernel, xnnpack=xnnpack)
    predictors = {1: BatchPredictor(flatbuffer, batch_size=1, **settings)}
    for size in batch_sizes:
        predictors[size] = BatchPredictor(flatbuffer, batch_size=size, **settings)
    x = np.random.default_rng(0).uniform(-1, 1, (images, *predictors[1].input_shape))
    x = x.astype(np.float32)
    outputs = {size: p.predict(x) for size, p in predictors.items()}  # warm-up and check
    wall: dict[int, list[float]] = {size: [] for size in predictors}
    cpu: dict[int, list[float]] = {size: [] for size in predictors}
    for _ in range(rounds):
        for size, predictor in predictors.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            predictor.predict(x)
            wall[size].append(images / (time.perf_counter() - start))
            cpu[size].append(images / max(time.process_time() - start_cpu, 1e-9))
    rows = []
    for size, predictor in predictors.items():
        rate, cpu_rate = statistics.median(wall[size]), statistics.median(cpu[size])
        rows.append(
            {
                "batch_size": size,
                "batched": predictor.batched,
                "images_per_s": rate,
                "cpu_images_per_s": cpu_rate,
                "speedup": rate / statistics.median(wall[1]),
                "cpu_speedup": cpu_rate / statistics.median(cpu[1]),
                "identical": bool(np.array_equal(outputs[size], outputs[1])),
            }
        )
    return rows
