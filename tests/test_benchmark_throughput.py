"""train/benchmark_throughput.py as a user runs it: a tiny real run, its paired verdict."""

import re
import statistics
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "train" / "benchmark_throughput.py"


def test_tiny_run_prints_rounds_and_a_paired_verdict_that_matches_them():
    args = ["--width", "0.125", "--image_size", "16", "--batch_size", "4", "--steps", "1"]
    args += ["--rounds", "4", "--warmup", "1"]
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
        r"paired wall-clock cost over 4 rounds: median (-?[\d.]+) % \(95 % CI (-?[\d.]+) to "
        r"(-?[\d.]+) %\), interquartile (-?[\d.]+) to (-?[\d.]+) %; goal <= 10 %: (met|NOT met)",
        result.stdout,
    )
    assert verdict, result.stdout
    median, ci_low, ci_high, low, high = (float(verdict.group(i)) for i in range(1, 6))
    assert abs(median - 100 * statistics.median(costs)) < 1.0
    # With 4 rounds the distribution-free 95 % interval of the median is the whole range.
    assert abs(ci_low - 100 * min(costs)) < 1.0 and abs(ci_high - 100 * max(costs)) < 1.0
    assert ci_low <= low <= median <= high <= ci_high
    assert (verdict.group(6) == "met") == (ci_high <= 10)
    assert "paired CPU-time cost over 4 rounds" in result.stdout


def test_one_switch_of_the_same_builder_is_compared_against_the_other_setting():
    args = ["--width", "0.125", "--image_size", "16", "--batch_size", "4", "--steps", "1"]
    args += ["--rounds", "2", "--warmup", "0", "--baseline", "el_resnet26"]
    args += ["--baseline_switches", "k_reduce=false"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(
        r"^round 1: el_resnet26 [\d.]+ img/s .*, el_resnet26 k_reduce=false ",
        result.stdout,
        re.MULTILINE,
    )
    # Without K the model has the same parameters (K has none) but fewer layers' work.
    counts = re.findall(r"^(el_resnet26.*): (\d+) parameters", result.stdout, re.MULTILINE)
    assert [name for name, _ in counts] == ["el_resnet26", "el_resnet26 k_reduce=false"]
    assert counts[0][1] == counts[1][1]
    assert "ratio of medians el_resnet26 / el_resnet26 k_reduce=false" in result.stdout
