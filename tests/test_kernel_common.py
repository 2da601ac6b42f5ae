"""Tests of jaxpool._kernel_common: stage planning, exact division, averages of sums,
flat indices, and the family-independent reductions (taps, gathered windows)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaxpool import _geometry as geometry
from jaxpool import _kernel_common as common
from tests.helpers import axis_windows


def test_plan_innermost_axes_first_and_joint_taps():
    (stage,) = common.plan_stages((1, 2), axis_windows((9, 9), 3, 2, 1))
    assert stage.kind == "taps" and stage.axes == (1, 2)  # 9 taps: one joint stage
    stages = common.plan_stages((1, 2), axis_windows((20, 20), 5, 1, 2))
    assert [s.axes for s in stages] == [(2,), (1,)]  # 25 taps: separable, W first


def test_plan_blocks_threshold_and_joint_blocks():
    tiles = axis_windows((8, 8), 2, 2, 0)
    assert [s.kind for s in common.plan_stages((1, 2), tiles)] == ["blocks", "blocks"]
    assert [s.kind for s in common.plan_stages((1, 2), tiles, blocks_min_kernel=4)] == ["taps"]
    joint = common.plan_stages((1, 2), tiles, joint_blocks=True)
    assert [(s.kind, s.axes) for s in joint] == [("blocks", (1, 2))]
    adaptive = geometry.adaptive_windows("t", (56, 13), (7, 5)).windows
    assert [s.kind for s in common.plan_stages((1, 2), adaptive)] == ["adaptive", "blocks"]


def test_division_is_ieee_exact():
    sums = jnp.full((2, 3, 3, 4), 34.0)
    exact = np.float32(34) / np.float32(9)
    out = jax.jit(lambda s: common.divide(s, 9.0, (1, 2)))(sums)
    assert np.all(np.asarray(out) == exact)
    per_position = np.full((1, 3, 3, 1), 9, np.float32)
    out = jax.jit(lambda s: common.divide(s, per_position, (1, 2)))(sums)
    assert np.all(np.asarray(out) == exact)


def test_adaptive_average_divides_axis_by_axis_as_torch():
    # torch's adaptive average is sum / kh / kw: two roundings, not one division by kh*kw.
    windows = geometry.adaptive_windows("t", (10, 7), (3, 3)).windows
    sums = jnp.asarray(np.random.default_rng(0).standard_normal((1, 3, 3, 2)).astype(np.float32))
    out = jax.jit(lambda s: common.average_of_sums(s, (1, 2), windows, "adaptive"))(sums)
    rows = windows[0].divisor_with_padding().astype(np.float32)
    cols = windows[1].divisor_with_padding().astype(np.float32)
    expected = np.asarray(sums) / rows[None, :, None, None] / cols[None, None, :, None]
    np.testing.assert_array_equal(np.asarray(out), expected)


@pytest.mark.parametrize("divisor", ["with_padding", "without_padding", 5])
def test_average_of_sums_divisors(divisor):
    windows = axis_windows((6,), 3, 2, 1, ceil_mode=True)  # last window [5, 8) clipped to [5, 7)
    sums = jnp.full((1, 4, 1), 6.0)
    out = np.asarray(common.average_of_sums(sums, (1,), windows, divisor))[0, :, 0]
    if divisor == "with_padding":  # the ceil-mode overhang past the right padding is not counted
        expected = 6.0 / np.array([3, 3, 3, 2], np.float32)
    elif divisor == "without_padding":
        expected = 6.0 / np.array([2, 3, 3, 1], np.float32)
    else:
        expected = np.full(4, 6.0 / 5, np.float32)
    np.testing.assert_array_equal(out, expected)


def test_gather_window_max_matches_torch_fractional_windows():
    x = np.random.default_rng(1).integers(-2, 3, (1, 2, 9, 8)).astype(np.float32)  # ties
    samples = np.array([[[0.3, 0.7], [0.9, 0.1]]], np.float32)  # torch: (N, C, 2) as (W, H)
    expected, expected_index = F.fractional_max_pool2d(
        torch.tensor(x), 2, output_size=(4, 3), return_indices=True,
        _random_samples=torch.tensor(samples),
    )
    import jaxpool

    got, index = jaxpool.fractional_max_pool2d(
        jnp.asarray(x), 2, output_size=(4, 3), return_indices=True,
        random_samples=jnp.asarray(samples[..., ::-1].copy()), channels_first=True,
    )
    np.testing.assert_array_equal(np.asarray(got), expected.numpy())
    np.testing.assert_array_equal(np.asarray(index), expected_index.numpy())


@pytest.mark.parametrize("nan", [False, True])
def test_tiling_windows_choose_torchs_tap(nan):
    # Windows of 4 tiling a padded axis (ceil mode): the first and last hold padding.
    (w,) = axis_windows((13,), 4, 4, 2, ceil_mode=True)
    stage = common.Stage("blocks", (1,), (w,))
    rng = np.random.default_rng(2)
    x = rng.integers(-2, 3, (3, 13, 2)).astype(np.float32)  # ties in every window
    if nan:
        x[0, 5, 0] = x[0, 7, 0] = x[1, 12, 1] = np.nan
    split, (tap_axis,) = common.split_blocks(jnp.asarray(x), stage, common.lowest(x.dtype))
    assert split.shape == (3, w.size, 4, 2) and tap_axis == 2
    best = jnp.max(split, axis=tap_axis)
    chosen = common.first_max_in_blocks(split, tap_axis, best, stage, nan_aware=True)
    values, index = F.max_pool1d(torch.tensor(np.moveaxis(x, -1, 1)), 4, 4, 2, ceil_mode=True,
                                 return_indices=True)
    starts = np.arange(w.size) * w.stride - w.pad_lo
    expected = np.moveaxis(index.numpy(), 1, -1) - starts[None, :, None]
    np.testing.assert_array_equal(np.asarray(chosen), expected)
    selected = common.select_in_blocks(jnp.asarray(x), chosen, stage)
    np.testing.assert_array_equal(np.asarray(selected), np.moveaxis(values.numpy(), 1, -1))
