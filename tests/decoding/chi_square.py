"""Chi-square tests for the sampling decoders: goodness of fit against an exact distribution,
and two samples against each other. Every caller uses a fixed seed, so a test cannot flake: a
p-value below the threshold means the distribution is wrong, not that the dice were unlucky.
"""

from __future__ import annotations

import math
from collections import Counter


def chi_square_p(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square with df degrees of freedom: 1 - P(df/2, statistic/2),
    the regularized lower gamma function summed as its power series (converges for any x).

    >>> round(chi_square_p(3.841, 1), 3), round(chi_square_p(0.0, 4), 3)
    (0.05, 1.0)
    """
    a, x = df / 2.0, statistic / 2.0
    if x <= 0:
        return 1.0
    term = 1.0 / a
    total = term
    n = 1
    while term > 1e-17 * total:
        term *= x / (a + n)
        total += term
        n += 1
    lower = math.exp(a * math.log(x) - x - math.lgamma(a)) * total
    return max(0.0, 1.0 - lower)


def merged_bins(expected: dict, minimum: float) -> list[list]:
    """Outcomes grouped so that every group expects at least `minimum` counts: the small
    ones, smallest first, are pooled into one group (the chi-square approximation needs it)."""
    order = sorted(expected, key=lambda k: expected[k], reverse=True)
    groups = [[k] for k in order if expected[k] >= minimum]
    small = [k for k in order if expected[k] < minimum]
    if small and (sum(expected[k] for k in small) >= minimum or not groups):
        groups.append(small)
    elif small:
        groups[-1].extend(small)  # too few even together: join the smallest big group
    return groups


def goodness_of_fit_p(samples: list, probabilities: dict) -> float:
    """p-value of `samples` coming from `probabilities` (outcome -> probability, summing to 1)."""
    n = len(samples)
    counts = Counter(samples)
    assert set(counts) <= set(probabilities), (
        f"impossible outcomes {set(counts) - set(probabilities)}"
    )
    expected = {k: n * p for k, p in probabilities.items()}
    groups = merged_bins(expected, 5.0)
    statistic = 0.0
    for g in groups:
        e = sum(expected[k] for k in g)
        o = sum(counts[k] for k in g)
        statistic += (o - e) ** 2 / e
    return chi_square_p(statistic, max(1, len(groups) - 1))


def two_sample_p(first: list, second: list) -> float:
    """p-value of two samples coming from one distribution (two-sample chi-square on the
    outcomes seen, those seen fewer than 10 times in all pooled into one bin)."""
    a, b = Counter(first), Counter(second)
    na, nb = len(first), len(second)
    pooled = {k: a[k] + b[k] for k in set(a) | set(b)}
    groups = merged_bins(pooled, 10.0)
    statistic = 0.0
    for g in groups:
        x, y = sum(a[k] for k in g), sum(b[k] for k in g)
        statistic += (math.sqrt(nb / na) * x - math.sqrt(na / nb) * y) ** 2 / (x + y)
    return chi_square_p(statistic, max(1, len(groups) - 1))
