"""train/train.py under real tf.distribute strategies, as subprocesses.

MirroredStrategy runs on two logical CPU devices; MultiWorkerMirroredStrategy on
two worker processes that find each other through TF_CONFIG on 127.0.0.1.
Every subprocess has a timeout, so a hung collective cannot hang the suite.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "train" / "train.py")
TIMEOUT = 300


def tiny_command(idx_dir, out):
    # el_resnet18: the smallest binary zoo net (16 binary convs), fastest to trace.
    return [
        sys.executable, TRAIN, "--model", "el_resnet18", "--width", "0.125", "--epochs", "1",
        "--batch_size", "8", "--steps_per_epoch", "2", "--validation_steps", "1",
        "--data_dir", idx_dir, "--output_dir", str(out), "--verbose", "2",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), train=32, test=8)


def test_mirrored_strategy_on_two_logical_cpus(idx_dir, tmp_path):
    out = tmp_path / "mirrored"
    command = tiny_command(idx_dir, out) + ["--strategy", "mirrored", "--logical_cpus", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "global batch 8 on 2 replica(s)" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert (config["strategy"], config["replicas"]) == ("mirrored", 2)
    assert (out / "model.h5").exists()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_strategy_with_two_workers(idx_dir, tmp_path):
    out = tmp_path / "multi_worker"  # shared by both workers, as on a shared file system
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config))
        command = tiny_command(idx_dir, out) + ["--strategy", "multi_worker"]
        workers.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=TIMEOUT))
    finally:
        for worker in workers:  # a worker left waiting for its peer must not outlive the test
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
        assert "global batch 8 on 2 replica(s)" in stdout
    config = json.loads((out / "config.json").read_text())
    assert (config["strategy"], config["replicas"]) == ("multi_worker", 2)
    assert (out / "model.h5").exists() and (out / "metrics.json").exists()
    # Only the chief (worker 0) keeps outputs: no worker temp directories are left.
    assert not list(out.rglob("workertemp_*")) and not (out / "backup").exists()


def test_distillation_under_mirrored_strategy(idx_dir, tmp_path):
    # The teacher is loaded inside the strategy's scope and runs on every replica.
    import el_larq  # noqa: F401
    from el_larq.training import save_model_atomic
    from el_larq.zoo import resnet18

    teacher = str(tmp_path / "teacher.h5")
    save_model_atomic(resnet18(input_shape=(28, 28, 1), num_classes=10, width=0.125), teacher)
    out = tmp_path / "distilled"
    command = tiny_command(idx_dir, out) + ["--strategy", "mirrored", "--logical_cpus", "2"]
    command += ["--teacher", teacher, "--label_weight", "0.5", "--weight_decay", "1e-4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads((out / "metrics.json").read_text())[-1]
    for key in ("loss", "label_loss", "distribution_loss", "val_loss", "val_top1"):
        assert key in row and row[key] == row[key], key  # present and not NaN
    assert row["loss"] > 0.5 * row["label_loss"]
    assert (out / "model.h5").exists()
