"""docs/page_numbers.py: a generated page is current up to the last printed digit, no more."""

import importlib.util
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parent.parent / "docs/page_numbers.py"
_spec = importlib.util.spec_from_file_location("page_numbers", _path)
page_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(page_numbers)
same = page_numbers.same_up_to_last_digit

PAGE = "| `she` | -1.010 -0.995 | -2.3451 | 6 | -0.3908 |\nscore 0.25 after 12 steps"


@pytest.mark.parametrize(
    "fresh",
    [PAGE, PAGE.replace("-0.3908", "-0.3909"), PAGE.replace("-0.3908", "-0.3907"),
     PAGE.replace("-1.010", "-1.009"), PAGE.replace("0.25", "0.26")],
)  # fmt: skip
def test_a_last_digit_one_unit_apart_is_current(fresh):
    assert same(PAGE, fresh)


@pytest.mark.parametrize(
    "fresh",
    [PAGE.replace("-0.3908", "-0.3910"), PAGE.replace("-0.3908", "-0.391"),
     PAGE.replace("-2.3451", "-3.3451"), PAGE.replace("12 steps", "13 steps"),
     PAGE.replace("she", "he"), PAGE.replace("-0.995", "0.995"), PAGE + " 1.5"],
)  # fmt: skip
def test_anything_more_is_stale(fresh):
    assert not same(PAGE, fresh)


def test_the_docstring_examples_hold():
    import doctest

    assert doctest.testmod(page_numbers).failed == 0
