"""train/benchmark_throughput.py as a user runs it: a tiny real run, its paired verdict."""

import re
import statistics
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "train" / "benchmark_throughput.py"


def test_tiny_run_prints_rounds_and_a_paired_verdict_that_matches_them():
    args = ["--width", "0.125", "--image_size", "16", "--batch_size", "4", "--steps", "1"]
    args += ["--rounds", "4", "--warmup", "0"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rounds = re.findall(
        r"^round \d+: el_resnet26 ([\d.]+) img/s \(([\d.]+) img/CPU-s\), "
        r"bireal_resnet26 ([\d.]+) img/s \(([\d.]+) img/CPU-s\)$",
        result.stdout,
        re.MULTILINE,
    )
    assert len(rounds) == 4
    # The wall-clock verdict is the median of the per-round costs, recomputed here from
    # the printed rounds (rounded to 0.1 img/s, hence the tolerance).
    costs = [1 - float(el) / float(base) for el, _, base, _ in rounds]
    verdict = re.search(
        r"paired wall-clock cost over 4 rounds: median (-?[\d.]+) %, interquartile "
        r"(-?[\d.]+) to (-?[\d.]+) %; goal <= 10 %: (met|NOT met)",
        result.stdout,
    )
    assert verdict, result.stdout
    median, low, high = (float(verdict.group(i)) for i in (1, 2, 3))
    assert abs(median - 100 * statistics.median(costs)) < 1.0
    assert low <= median <= high
    assert (verdict.group(4) == "met") == (high <= 10)
    assert "paired CPU-time cost over 4 rounds" in result.stdout
