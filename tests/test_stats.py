"""el_larq.stats: the intervals behind the study's verdicts and the benchmark's goals."""

import math

import pytest

from el_larq.stats import ratio_interval, samples_to_decide, t_interval, t_quantile_975


@pytest.mark.parametrize(
    ("values", "mean", "half"),
    [([1.0, 2.0], 1.5, 12.706 * 0.5**0.5 / 2**0.5), ([3.0], 3.0, math.inf)],
)
def test_t_interval(values, mean, half):
    got_mean, got_half = t_interval(values)
    assert got_mean == pytest.approx(mean) and got_half == pytest.approx(half)


@pytest.mark.parametrize(
    ("df", "quantile"),  # Student's t, 97.5 %, from published tables
    [(1, 12.706), (2, 4.303), (10, 2.228), (11, 2.201), (20, 2.086), (39, 2.023), (120, 1.980)],
)
def test_t_quantile_matches_the_tables(df, quantile):
    assert t_quantile_975(df) == pytest.approx(quantile, abs=0.003)


def test_t_quantile_rejects_no_degrees_of_freedom():
    with pytest.raises(ValueError, match=">= 1"):
        t_quantile_975(0)


def test_ratio_interval_is_a_geometric_mean_with_a_log_scale_interval():
    ratio, low, high = ratio_interval([2.0, 8.0], [1.0, 2.0])  # ratios 2 and 4
    assert ratio == pytest.approx(8**0.5)
    half = 12.706 * math.log(2) / 2**0.5 / 2**0.5
    assert low == pytest.approx(8**0.5 * math.exp(-half))
    assert high == pytest.approx(8**0.5 * math.exp(half))
    # The same ratio in every pair: no spread, a point interval, whatever each time is.
    assert ratio_interval([1.1, 2.2, 3.3], [1.0, 2.0, 3.0]) == pytest.approx((1.1, 1.1, 1.1))


def test_ratio_interval_of_one_pair_is_unbounded_and_mismatches_raise():
    assert ratio_interval([3.0], [2.0]) == (1.5, 0.0, math.inf)
    with pytest.raises(ValueError, match="same positive number"):
        ratio_interval([1.0], [1.0, 2.0])


def test_samples_to_decide_is_the_first_count_whose_interval_excludes_zero():
    values = [1.3, 1.9, 0.2]  # mean +1.13, sd 0.862, half 2.14: undecided at 3
    mean, half = t_interval(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    needed = samples_to_decide(mean, half, 3)
    assert needed == 5
    # Checked against the interval itself at the same mean and sd: 4 is too few, 5 enough.
    for m, decided in ((4, False), (5, True)):
        assert (t_quantile_975(m - 1) * sd / math.sqrt(m) < mean) is decided
    # Already decided: at most the samples it has; the sign does not matter.
    assert samples_to_decide(-3.0, 1.0, 3) <= 3
    # A difference of ~0 against a wide spread: more than any sensible number of seeds.
    assert samples_to_decide(0.19, 2.57, 3) is None
    assert samples_to_decide(0.19, 2.57, 3, limit=1000) > 30
    with pytest.raises(ValueError, match="at least 2"):
        samples_to_decide(1.0, math.inf, 1)
