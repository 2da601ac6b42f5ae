"""Tests of jaxpool._geometry: output sizes, windows and argument checks (pure Python)."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import jaxpool
from jaxpool import _geometry as geometry


def test_output_size_examples():
    assert jaxpool.pool_output_shape(4, 2, 2) == 2
    assert jaxpool.pool_output_shape(5, 2, 2) == 2
    assert jaxpool.pool_output_shape(5, 2, 2, ceil_mode=True) == 3
    assert jaxpool.pool_output_shape((56, 56), 3, 2, 1) == (28, 28)
    assert jaxpool.pool_output_shape((7, 9), (3, 2), (2, 1), "SAME") == (4, 9)
    assert jaxpool.pool_output_shape(10, 3, 1, dilation=2) == 6


def test_ceil_mode_drops_a_window_that_would_start_in_the_right_padding():
    # L=5, k=2, s=2, p=1: floor gives 3; ceil would give 4, but the 4th window would
    # start at 6 - 1 = 5 >= L + p_lo... torch drops it.
    assert jaxpool.pool_output_shape(5, 2, 2, 1, ceil_mode=False) == 3
    assert jaxpool.pool_output_shape(5, 2, 2, 1, ceil_mode=True) == 3
    assert F.max_pool1d(torch.zeros(1, 5), 2, 2, 1, ceil_mode=True).shape[-1] == 3


@given(
    st.integers(1, 30),
    st.integers(1, 6),
    st.integers(1, 4),
    st.integers(0, 3),
    st.integers(1, 3),
    st.booleans(),
)
def test_output_size_matches_torch(length, kernel, stride, padding, dilation, ceil_mode):
    if padding > kernel // 2:
        padding = kernel // 2
    expected_error = None
    try:
        expected = F.max_pool1d(
            torch.zeros(1, length), kernel, stride, padding, dilation, ceil_mode
        ).shape[-1]
    except RuntimeError as error:
        expected_error = error
    ours = jaxpool.pool_output_shape(length, kernel, stride, padding, dilation, ceil_mode)
    if expected_error is None:
        assert ours == expected
    else:  # padding is within half the kernel, so torch only refuses empty outputs
        assert "Output size is too small" in str(expected_error) or "Invalid computed output size" in str(expected_error)
        assert ours < 1


@pytest.mark.parametrize("length, size", list(itertools.product([1, 2, 5, 7, 13, 56], [1, 2, 3, 5, 7, 8, 20])))
def test_adaptive_bounds_follow_torch_formula(length, size):
    starts, ends = geometry.adaptive_bounds(length, size)
    for i in range(size):
        assert starts[i] == (i * length) // size
        assert ends[i] == -(-(i + 1) * length // size)
    lengths = set((ends - starts).tolist())
    assert len(lengths) <= 2  # at most two window sizes occur


def test_adaptive_divisible_case_becomes_regular_windows():
    windows = geometry.AxisWindows.make_adaptive(56, 7)
    assert not windows.adaptive and windows.kernel == 8 and windows.stride == 8
    evenly_spaced = geometry.AxisWindows.make_adaptive(56, 5)  # starts 0, 11, ..., 44; length 12
    assert not evenly_spaced.adaptive and (evenly_spaced.kernel, evenly_spaced.stride) == (12, 11)
    irregular = geometry.AxisWindows.make_adaptive(13, 5)
    assert irregular.adaptive and irregular.kernel == 4
    for windows in (evenly_spaced, irregular):
        starts, ends = geometry.adaptive_bounds(windows.length, windows.size)
        positions = windows.tap_positions()
        assert (positions[0] == starts).all() and (positions[-1] == ends - 1).all()


def test_tap_positions_and_validity():
    windows = geometry.AxisWindows(length=5, size=3, kernel=3, stride=2, pad_lo=1, pad_hi=1)
    np.testing.assert_array_equal(windows.tap_positions(), [[-1, 1, 3], [0, 2, 4], [1, 3, 5]])
    np.testing.assert_array_equal(
        windows.tap_valid(), [[False, True, True], [True, True, True], [True, True, False]]
    )
    np.testing.assert_array_equal(windows.divisor_with_padding(), [3, 3, 3])
    np.testing.assert_array_equal(windows.divisor_without_padding(), [2, 3, 2])


def test_ceil_mode_divisor_is_clipped_at_the_right_padding():
    # L=5, k=3, s=3, p=0, ceil: windows [0,3), [3,6) -> the second is clipped at L + p = 5.
    config = geometry.sliding_windows("t", (5,), 3, 3, 0, 1, True)
    np.testing.assert_array_equal(config.windows[0].divisor_with_padding(), [3, 2])


def test_same_padding_matches_flax():
    config = geometry.sliding_windows("t", (7,), 3, 2, "SAME", 1, False)
    window = config.windows[0]
    assert (window.pad_lo, window.pad_hi, window.size) == (1, 1, 4)


@pytest.mark.parametrize(
    "value, message",
    [((2, 2, 2), "must either be a single int, or a tuple of 2 ints"), ("2", "must be an int"),
     ((2, 1.5), "an entry of type float"), (True, "must be an int")],
)
def test_as_tuple_errors(value, message):
    with pytest.raises((TypeError, ValueError), match=message):
        geometry.as_tuple(value, 2, "kernel_size", "op")


def test_as_tuple_broadcasts():
    assert geometry.as_tuple(3, 2, "k", "op") == (3, 3)
    assert geometry.as_tuple([4], 3, "k", "op") == (4, 4, 4)
    assert geometry.as_tuple(np.int64(2), 1, "k", "op") == (2,)
    assert geometry.as_tuple((None, 2), 2, "k", "op", allow_none=True) == (None, 2)
