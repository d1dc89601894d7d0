"""Is a generated page current? The same text, up to the last printed digit of its numbers.

docs/build_scores.py and docs/build_walkthrough.py print numbers the model computes in float32:
log-probs, scores, probabilities, rounded to 3 or 4 decimals. Another CPU (AVX2 or AVX-512
kernels, another BLAS) adds the same products in another order, so its float32 results differ
in the last bits, far below the printed precision (about 1e-6 relative here). A number that
lies that close to a rounding boundary (-0.39085, printed with 4 decimals) can then print one
unit higher or lower, and nothing else can change. So a page is current when a fresh build
prints the same text with every number the same to within one unit of its last digit.

>>> same_up_to_last_digit("score -0.3908 (6 tokens)", "score -0.3909 (6 tokens)")
True
>>> same_up_to_last_digit("score -0.3908", "score -0.3910")
False
>>> same_up_to_last_digit("score -0.3908", "score -0.391")  # a digit fewer is a change
False
"""

from __future__ import annotations

import re

NUMBER = re.compile(r"-?\d+\.(\d+)")  # a decimal as printed: "-0.3908" (integers must match)


def same_up_to_last_digit(page: str, fresh: str) -> bool:
    """True when `fresh` is `page` with each decimal at most one unit of its last digit off."""
    if NUMBER.sub("#", page) != NUMBER.sub("#", fresh):
        return False  # the words, the integers or the count of numbers differ
    for old, new in zip(NUMBER.finditer(page), NUMBER.finditer(fresh), strict=True):
        decimals = len(old[1])
        if len(new[1]) != decimals:
            return False
        units_apart = abs(round(float(old[0]) * 10**decimals) - round(float(new[0]) * 10**decimals))
        if units_apart > 1:
            return False
    return True
