"""Tests of jaxpool._geometry: output sizes, windows and argument checks (pure Python)."""

import itertools

import jax
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


# ----------------------------------------------------------------------------------
# Configuration checks: what is refused before any input is seen

BOX = np.array([[0.0, 1.0, 1.0, 5.0, 5.0]], np.float32)  # [batch_index, x1, y1, x2, y2]
CONFIG_CASES = [
    # (rank, configuration, the op it must agree with, error, message)
    (2, dict(kernel_size=(2, 2), stride=0), lambda x: jaxpool.max_pool2d(x, 2, 0), ValueError, "stride should be greater than zero"),
    (2, dict(kernel_size=(2, 2), padding=2), lambda x: jaxpool.max_pool2d(x, 2, padding=2), ValueError, "pad should be at most half of effective kernel size"),
    (2, dict(kernel_size=(3, 3), padding=2, dilation=2), lambda x: jaxpool.max_pool2d(x, 3, padding=2, dilation=2), ValueError, "pad should be smaller than or equal to half of kernel size"),
    (2, dict(kernel_size=(2, 2), padding="SAME", ceil_mode=True), lambda x: jaxpool.max_pool2d(x, 2, padding="SAME", ceil_mode=True), ValueError, "ceil_mode=True has no meaning with padding='SAME'"),
    (2, dict(kernel_size=(2, 2), ceil_mode=1), lambda x: jaxpool.avg_pool2d(x, 2, ceil_mode=1), TypeError, "ceil_mode must be a bool"),
    (2, dict(kernel_size=(2, 2), divisor_override=0), lambda x: jaxpool.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor must be not zero"),
    (2, dict(norm_type=-1.0, kernel_size=(2, 2)), lambda x: jaxpool.lp_pool2d(x, -1.0, 2), ValueError, "norm_type must be positive"),
    (2, dict(output_size=(0, 2)), lambda x: jaxpool.adaptive_avg_pool2d(x, (0, 2)), ValueError, "elements of output_size must be greater than 0"),
    (2, dict(kernel_size=(2, 2), output_size=None, output_ratio=1.5), lambda x: jaxpool.fractional_max_pool2d(x, 2, output_ratio=1.5, key=jax.random.key(0)), ValueError, "output_ratio must be between 0 and 1"),
    (2, dict(kernel_size=(2, 2), output_size=(0, 3), output_ratio=None), lambda x: jaxpool.fractional_max_pool2d(x, 2, (0, 3), key=jax.random.key(0)), ValueError, "output_size must be positive in every dimension"),
    (2, dict(kernel_size=None, stride=2), lambda x: jaxpool.soft_pool(x, stride=2), ValueError, "stride only applies to windowed pooling"),
    (2, dict(kernel_size=(2, 2), keepdims=True), lambda x: jaxpool.soft_pool(x, 2, keepdims=True), ValueError, "keepdims=True only applies to the global form"),
    (2, dict(kernel_size=None, eps=0.0), lambda x: jaxpool.gem_pool(x, 3.0, eps=0.0), ValueError, "eps must be positive"),
    (2, dict(spatial_dims=2, keepdims="no"), lambda x: jaxpool.global_avg_pool(x, keepdims="no"), TypeError, "keepdims must be a bool"),
    (2, dict(kernel_size=(3, 3), max_pool_size=(2, 0)), lambda x: jaxpool.max_blur_pool2d(x, 3, 2, (2, 0)), ValueError, r"max_pool_size must be positive, but got max_pool_size=\(2, 0\)"),
    (1, dict(levels=(1, (2, 2))), lambda x: jaxpool.spatial_pyramid_pool(x[0], (1, (2, 2)), spatial_dims=1), ValueError, "levels must either be a single int"),
    (2, dict(levels=[]), lambda x: jaxpool.spatial_pyramid_pool(x, []), TypeError, "levels must be a non-empty sequence"),
    (2, dict(levels=(1, 2), mode="mean"), lambda x: jaxpool.spatial_pyramid_pool(x, mode="mean"), ValueError, "mode must be 'max' or 'avg', but got mode='mean'"),
    # RoIAlign's output_size is bins per box: no None (adaptive pooling's "keep this dim").
    (2, dict(output_size=(7, None), spatial_scale=1.0, sampling_ratio=-1), lambda x: jaxpool.roi_align(x, BOX, (7, None)), TypeError, r"output_size must be an int or a tuple of 2 such values, but got \(7, None\)"),
    (2, dict(output_size=7, spatial_scale=-1.0, sampling_ratio=-1), lambda x: jaxpool.roi_align(x, BOX, 7, -1.0), ValueError, "spatial_scale must be a positive finite number"),
    (2, dict(output_size=7, spatial_scale=1.0, sampling_ratio=True), lambda x: jaxpool.roi_align(x, BOX, 7, 1.0, True), TypeError, "sampling_ratio must be an int"),
    (2, dict(output_size=7, spatial_scale=1.0, sampling_ratio=0, max_sampling_ratio=(2, 0)), lambda x: jaxpool.roi_align(x, BOX, 7, 1.0, 0, max_sampling_ratio=(2, 0)), ValueError, "max_sampling_ratio must be at least 1"),
    (2, dict(output_size=7, spatial_scale=1.0, sampling_ratio=2, max_sampling_ratio=2), lambda x: jaxpool.roi_align(x, BOX, 7, 1.0, 2, max_sampling_ratio=2), ValueError, "max_sampling_ratio only applies to adaptive sampling"),
    (2, dict(output_size=7, spatial_scale=1.0, sampling_ratio=2, aligned=None), lambda x: jaxpool.roi_align(x, BOX, 7, 1.0, 2, aligned=None), TypeError, "aligned must be a bool"),
]


@pytest.mark.parametrize("n, config, op, error, message", CONFIG_CASES)
def test_config_check_refuses_what_the_op_refuses(n, config, op, error, message):
    """check_pooling_config (the modules' check at construction) and the op (at trace
    time) refuse the same configuration with the same message."""
    with pytest.raises(error, match=message):
        geometry.check_pooling_config("op", n, config)
    with pytest.raises(error, match=message):
        op(jax.numpy.ones((1, 9, 9, 2)))


def test_config_check_accepts_what_only_the_input_can_refuse():
    # A dilated window that steps over a small input, a large kernel, a big output:
    # whether they fit is the input's question, asked at the call.
    geometry.check_pooling_config("op", 2, dict(kernel_size=(2, 2), padding=1, dilation=3))
    geometry.check_pooling_config("op", 2, dict(kernel_size=(56, 56)))
    geometry.check_pooling_config(
        "op", 3, dict(kernel_size=(2, 2, 2), output_size=(40, 1, 3), output_ratio=None))
    geometry.check_pooling_config("op", 2, dict(kernel_size=None, spatial_dims=2, eps=1e-6))
    # Ints where the op takes them: RoIAlign's rank is fixed, its output_size may be one.
    geometry.check_pooling_config(
        "op", 2, dict(output_size=7, spatial_scale=0.25, sampling_ratio=0, max_sampling_ratio=3))
    geometry.check_pooling_config("op", 2, dict(kernel_size=(3, 3), max_pool_size=5))
    geometry.check_pooling_config("op", 3, dict(levels=(1, (1, 2, 3)), mode="avg"))


def test_fractional_output_comes_from_the_size_or_the_ratio():
    assert geometry.check_fractional("op", 2, 2, (3, 4), None).output((9, 9)) == (3, 4)
    assert geometry.check_fractional("op", 2, 2, None, 0.5).output((9, 11)) == (4, 5)
