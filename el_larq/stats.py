"""Confidence intervals for the few places that claim an ordering: studies and benchmarks.

Accuracies over seeds (`study/`) and latency ratios over interleaved benchmark rounds
(`convert/overhead_report.py`) are judged the same way: a verdict only when the 95 %
interval excludes the threshold.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["ratio_interval", "samples_to_decide", "t_interval", "t_quantile_975"]

# Two-sided 95 % quantiles of Student's t for 1..10 degrees of freedom.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with `df` degrees of freedom.

    Exact to three decimals from a table up to 10, then the Cornish-Fisher expansion
    around the normal quantile (within 0.003 of the true value for `df` > 10).
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean of `values` and the half-width of its t-based 95 % confidence interval.

    # Arguments
        values: Independent measurements (e.g. one per seed).

    # Returns
        `(mean, half_width)`; the half-width is `inf` for fewer than two values (no
        interval can be given).

    # Example
        ```python
        mean, half = t_interval([82.0, 81.2, 82.8])  # 82.0 +- 1.99
        ```
    """
    if len(values) < 2:
        return (values[0] if values else math.nan), math.inf
    half = t_quantile_975(len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return statistics.mean(values), half


def samples_to_decide(mean: float, half: float, n: int, *, limit: int = 30) -> int | None:
    """How many samples would make the 95 % interval exclude 0, if `mean` and the spread held.

    A projection for an undecided ordering, not a result: the standard deviation behind
    `half` is taken as the true one (with 2-3 seeds it is itself uncertain by a factor of
    two or more), and so is the mean.

    # Arguments
        mean: The observed mean (e.g. of paired differences over seeds).
        half: Its t-based 95 % half-width (`t_interval`).
        n: The number of samples behind them (at least 2).
        limit: The largest number of samples to consider.

    # Returns
        The smallest number of samples (2 or more) whose interval would exclude 0, or
        None when more than `limit` would be needed.

    # Example
        ```python
        mean, half = t_interval([1.3, 1.9, 0.2])  # +1.13 +- 2.14: undecided
        samples_to_decide(mean, half, 3)  # 5
        ```
    """
    if n < 2 or not math.isfinite(half):
        raise ValueError(f"needs an interval from at least 2 samples, got {n}")
    sd = half * math.sqrt(n) / t_quantile_975(n - 1)
    for m in range(2, limit + 1):
        if t_quantile_975(m - 1) * sd / math.sqrt(m) < abs(mean):
            return m
    return None


def ratio_interval(
    numerators: Sequence[float], denominators: Sequence[float]
) -> tuple[float, float, float]:
    """Geometric mean of paired ratios and its 95 % interval (t-based, on the log scale).

    Pairs are e.g. two models' median latencies in the same interleaved round: a slow
    phase of the host moves both, so their ratio is steadier than either time.

    # Arguments
        numerators: One positive value per pair.
        denominators: The other value of each pair.

    # Returns
        `(ratio, low, high)`; `low` and `high` are 0 and `inf` for fewer than two pairs.

    # Example
        ```python
        ratio, low, high = ratio_interval([10.4, 11.0, 10.1], [10.0, 10.2, 9.9])
        ```
    """
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError("ratio_interval needs the same positive number of each")
    logs = [math.log(a / b) for a, b in zip(numerators, denominators, strict=True)]
    mean, half = t_interval(logs)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)
