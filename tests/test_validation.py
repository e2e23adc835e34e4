"""The shared argument checks: each passes valid values through (converted) and names the bad ones."""

import numpy as np
import pytest

from keras_dit import validation as v


def test_choice_suggests_the_closest():
    assert v.check_choice("schedule", "cosine", ("linear", "cosine")) == "cosine"
    with pytest.raises(ValueError, match=r"Unknown schedule 'cosin'\. Did you mean 'cosine'\?"):
        v.check_choice("schedule", "cosin", ("linear", "cosine"))


def test_int_and_positive():
    assert v.check_int("depth", np.int64(3)) == 3 and type(v.check_int("depth", np.int64(3))) is int
    for bad in (0, 2.0, True, "3"):
        with pytest.raises(ValueError, match="depth must be an integer >= 1"):
            v.check_int("depth", bad)
    assert v.check_positive("shift", 3) == 3.0 and v.check_positive("shift", None, allow_none=True) is None
    for bad in (0, -1.0, float("inf"), float("nan"), None, False):
        with pytest.raises(ValueError, match="shift must be a positive number"):
            v.check_positive("shift", bad)
    assert v.check_int("order", 3, maximum=3) == 3 and v.check_nonnegative("eta", 0) == 0.0
    with pytest.raises(ValueError, match="order must be an integer >= 1 and <= 3, got 4"):
        v.check_int("order", 4, maximum=3)
    for bad in (-0.5, float("inf"), "1"):
        with pytest.raises(ValueError, match="eta must be a number >= 0"):
            v.check_nonnegative("eta", bad)


def test_range_ends():
    assert v.check_range("p", 0.0, 0, 1, "[)") == 0.0
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 1"):
        v.check_range("p", 1, 0, 1, "[)")
    for bad in (0, "0.5", None):
        with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
            v.check_range("p", bad, 0, 1, "(]")


def test_divisible_and_labels():
    assert v.check_divisible("input_size", 32, "patch_size", 4) == 32
    with pytest.raises(ValueError, match="input_size=30 is not divisible by patch_size=4; use 32"):
        v.check_divisible("input_size", 30, "patch_size", 4, hint="use 32")
    with pytest.raises(ValueError, match="hidden_size=30 is not divisible by num_heads=4; use a multiple of 4 for "
                                         "hidden_size, or another num_heads"):
        v.check_divisible("hidden_size", 30, "num_heads", 4)
    with pytest.raises(ValueError, match="width=6 is not divisible by 4; use a multiple of 4 for width"):
        v.check_divisible("width", 6, None, 4)
    assert v.check_labels([0, 3.0, 9], 9).dtype.kind == "f"
    for bad in ([0, 10], [-1], [0.5]):
        with pytest.raises(ValueError, match=r"labels must be integers in \[0, 9\]"):
            v.check_labels(bad, 9)
    with pytest.raises(ValueError, match="labels must be integers, got <U"):
        v.check_labels(["seven"], 9)
