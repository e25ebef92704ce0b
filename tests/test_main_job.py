"""train/main_job.py end to end as a real subprocess on generated IDX data."""

import json
import subprocess
import sys
from pathlib import Path

from helpers import make_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = str(ROOT / "train" / "main_job.py")


def _main_job(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, MAIN_JOB, *args], capture_output=True, text=True, timeout=900, cwd=ROOT
    )


def test_main_job_trains_converts_verifies_benchmarks_and_reuses(tmp_path):
    # 256 test images: the main job verifies its conversion on 256 (one sign flip of a
    # net trained 2 steps is then 0.4 points of top-1 agreement, not 3 as on 32).
    data = make_idx_dataset(tmp_path / "fashion", train=64, test=256)
    out = tmp_path / "job"
    args = ["--data_dir", str(data), "--output_dir", str(out), "--width", "0.125"]
    args += ["--epochs", "1", "--steps_per_epoch", "2", "--batch_size", "16"]
    first = _main_job(*args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_examples"] == 256
    assert 0 <= summary["keras_top1"] <= 1 and 0 <= summary["lce_top1"] <= 1
    # Deployment keeps the predictions: the conversion was verified on these 256 images
    # (top-1 agreement >= 95 %), so their accuracies cannot differ by more than 5 points.
    assert abs(summary["keras_top1"] - summary["lce_top1"]) <= 0.05
    assert json.loads((out / "convert.json").read_text())["verification"]["samples"] == 256
    assert summary["tflite_int8_bytes"] < summary["tflite_bytes"] < summary["float32_bytes"]
    assert 0 <= summary["lce_int8_top1"] <= 1
    assert summary["latency_ms_median"] > 0 and summary["latency_int8_ms_median"] > 0
    for name in ("model.h5", "model.tflite", "model_int8.tflite", "convert.json"):
        assert (out / name).exists(), name
    for name in ("convert_int8.json", "evaluate.json", "benchmark.json"):
        assert (out / name).exists(), name
    assert "test top-1" in first.stdout and "model.tflite" in first.stdout

    # A second run reuses the finished training instead of starting over.
    mtime = (out / "model.h5").stat().st_mtime
    second = _main_job(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "reusing the finished run" in second.stdout
    assert (out / "model.h5").stat().st_mtime == mtime


def test_main_job_fails_clearly_without_data(tmp_path):
    result = _main_job(
        "--data_dir",
        str(tmp_path / "nothing"),
        "--output_dir",
        str(tmp_path / "o"),
        "--epochs",
        "1",
        "--steps_per_epoch",
        "1",
    )
    assert result.returncode != 0
    assert "1/4 training on Fashion-MNIST failed" in result.stderr
    assert "apt-get install dataset-fashion-mnist" in result.stderr  # how to get the data
    assert not (tmp_path / "o" / "model.h5").exists()
