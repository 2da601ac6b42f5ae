"""Tests of jaxpool._antialias: blur pooling and max-blur pooling against kornia 0.9.0
(2D, forward and gradient) and, where kornia has no op (1D, 3D, different sizes per
axis), against torch's convolutions with a kernel built by kornia's own helper."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from kornia.filters import blur_pool2d as kornia_blur_pool2d
from kornia.filters import max_blur_pool2d as kornia_max_blur_pool2d
from kornia.filters.kernels import get_pascal_kernel_1d

import jaxpool
from jaxpool._antialias import binomial_row
from tests.oracle import compare_with_torch, sample_input

# A sum of k**n products in another order than torch's convolution: a few units in the
# last place of values of order 1 (the gradients sum up to ceil(k/s)**n such sums).
RTOL, ATOL = 1e-6, 2e-6
BLUR = {1: jaxpool.blur_pool1d, 2: jaxpool.blur_pool2d, 3: jaxpool.blur_pool3d}
MAX_BLUR = {1: jaxpool.max_blur_pool1d, 2: jaxpool.max_blur_pool2d, 3: jaxpool.max_blur_pool3d}
# Every example compiles a new shape twice (forward and gradient): a third of the
# profile's examples per sweep, five sweeps.
SWEEP = settings(max_examples=max(settings.default.max_examples // 3, 5))


def reference_blur(t, kernel, stride):
    """kornia's definition for any rank and per-axis sizes: the outer product of
    ``get_pascal_kernel_1d`` rows in the input's dtype (as ``get_pascal_kernel_2d`` forms
    it), zero padding ``(k - 1) // 2`` before and ``k // 2`` after, a grouped convolution."""
    n = len(kernel)
    weight = get_pascal_kernel_1d(kernel[0], norm=True, dtype=t.dtype)
    for size in kernel[1:]:
        weight = weight[..., None] * get_pascal_kernel_1d(size, norm=True, dtype=t.dtype)
    channels = t.shape[1]
    weight = weight[None, None].repeat(channels, *([1] * (n + 1)))
    pad = [amount for size in reversed(kernel) for amount in ((size - 1) // 2, size // 2)]
    convolve = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    return convolve(F.pad(t, pad), weight, stride=stride, groups=channels)


def reference_max_blur(t, kernel, stride, window):
    max_pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(kernel)]
    return reference_blur(max_pool(t, window, stride=1), kernel, stride)


@st.composite
def blur_case(draw, ranks=(1, 2, 3), square=False):
    n = draw(st.sampled_from(ranks))
    limit = {1: 13, 2: 10, 3: 6}[n]
    sizes = tuple(draw(st.integers(1, limit)) for _ in range(n))

    def per_axis(low, high):
        if square:
            return (draw(st.integers(low, high)),) * n
        return tuple(draw(st.integers(low, high)) for _ in range(n))

    kernel = per_axis(1, 6)
    stride = per_axis(1, 4)
    if square:
        window = (draw(st.integers(1, min(sizes))),) * n
    else:
        window = tuple(draw(st.integers(1, size)) for size in sizes)
    batch = draw(st.sampled_from([(), (2,), (1, 2)]))
    channels = draw(st.integers(1, 3))
    channels_first = draw(st.booleans())
    shape = (*batch, channels, *sizes) if channels_first else (*batch, *sizes, channels)
    return dict(n=n, shape=shape, kernel=kernel, stride=stride, window=window,
                channels_first=channels_first, ties=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


def _argument(values):
    """An int when every axis agrees (as kornia takes it), else the tuple."""
    return values[0] if len(set(values)) == 1 else values


# ----------------------------------------------------------------------------------
# The kernel


def test_binomial_rows_are_kornias_in_float32_and_bfloat16():
    for size in range(1, 13):
        row = np.asarray(binomial_row(size))
        np.testing.assert_array_equal(row.astype(np.float32),
                                      get_pascal_kernel_1d(size, norm=True).numpy())
        ours = jnp.asarray(row.astype(np.float32)).astype(jnp.bfloat16).astype(jnp.float32)
        theirs = get_pascal_kernel_1d(size, norm=True, dtype=torch.bfloat16).float().numpy()
        np.testing.assert_array_equal(np.asarray(ours), theirs)
    assert binomial_row(5) == (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


def test_the_reference_is_kornias_definition():
    rng = np.random.default_rng(0)
    t = torch.tensor(rng.standard_normal((2, 3, 9, 8)).astype(np.float32))
    for size in (1, 2, 3, 4, 5):
        for stride in (1, 2, 3):
            np.testing.assert_allclose(reference_blur(t, (size, size), stride).numpy(),
                                       kornia_blur_pool2d(t, size, stride).numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(reference_max_blur(t, (size, size), stride, 2).numpy(),
                                       kornia_max_blur_pool2d(t, size, stride, 2).numpy(), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------
# Parity


@SWEEP
@given(blur_case(ranks=(2,), square=True))
def test_blur_pool2d_matches_kornia(case):
    x = sample_input(np.random.default_rng(case["seed"]), case["shape"], ties=case["ties"], nan=False)
    size, stride = case["kernel"][0], case["stride"][0]
    compare_with_torch(
        lambda v: jaxpool.blur_pool2d(v, size, stride, channels_first=case["channels_first"]),
        lambda t: kornia_blur_pool2d(t, size, stride),
        x, 2, case["channels_first"], exact=False, rtol=RTOL, atol=ATOL, seed=case["seed"],
    )


@pytest.mark.parametrize("kernel_family", ["cpu", "reduce_window"], indirect=True)
@SWEEP
@given(case=blur_case(ranks=(2,), square=True), nan=st.booleans())
def test_max_blur_pool2d_matches_kornia(kernel_family, case, nan):
    x = sample_input(np.random.default_rng(case["seed"]), case["shape"], ties=case["ties"], nan=nan)
    size, stride, window = case["kernel"][0], case["stride"][0], case["window"][0]
    compare_with_torch(
        lambda v: jaxpool.max_blur_pool2d(v, size, stride, window, channels_first=case["channels_first"]),
        lambda t: kornia_max_blur_pool2d(t, size, stride, window),
        x, 2, case["channels_first"], exact=False, rtol=RTOL, atol=ATOL, seed=case["seed"],
    )


@SWEEP
@given(blur_case())
def test_blur_pool_matches_the_definition_in_every_rank(case):
    """1D, 3D and per-axis sizes: kornia's definition through torch's convolutions."""
    n = case["n"]
    x = sample_input(np.random.default_rng(case["seed"]), case["shape"], ties=case["ties"], nan=False)
    kernel, stride = case["kernel"], case["stride"]
    compare_with_torch(
        lambda v: BLUR[n](v, _argument(kernel), _argument(stride), channels_first=case["channels_first"]),
        lambda t: reference_blur(t, kernel, stride),
        x, n, case["channels_first"], exact=False, rtol=RTOL, atol=ATOL, seed=case["seed"],
    )


@SWEEP
@given(case=blur_case())
def test_max_blur_pool_matches_the_definition_in_every_rank(case):
    n = case["n"]
    x = sample_input(np.random.default_rng(case["seed"]), case["shape"], ties=case["ties"], nan=False)
    kernel, stride, window = case["kernel"], case["stride"], case["window"]
    compare_with_torch(
        lambda v: MAX_BLUR[n](v, _argument(kernel), _argument(stride), _argument(window),
                              channels_first=case["channels_first"]),
        lambda t: reference_max_blur(t, kernel, stride, window),
        x, n, case["channels_first"], exact=False, rtol=RTOL, atol=ATOL, seed=case["seed"],
    )


@pytest.mark.parametrize("shape, size, stride", [
    ((1, 3, 1, 1), 3, 2),      # one pixel: only the centre tap reads the input
    ((2, 1, 7, 1), 5, 3),      # a column, a kernel taller than it is wide
    ((1, 2, 4, 13), 6, 4),     # even kernel, stride that does not divide the width
    ((1, 1, 5, 5), 7, 1),      # kernel larger than the map
    ((1, 4, 2, 3), 2, 5),      # stride larger than the map and the kernel
])
def test_odd_shapes_match_kornia(shape, size, stride):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    compare_with_torch(lambda v: jaxpool.blur_pool2d(v, size, stride, channels_first=True),
                       lambda t: kornia_blur_pool2d(t, size, stride), x, 2, True,
                       exact=False, rtol=RTOL, atol=ATOL)
    window = min(2, *shape[2:])
    compare_with_torch(lambda v: jaxpool.max_blur_pool2d(v, size, stride, window, channels_first=True),
                       lambda t: kornia_max_blur_pool2d(t, size, stride, window), x, 2, True,
                       exact=False, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_narrow_floats_are_blurred_in_float32(dtype):
    x = jax.random.normal(jax.random.key(0), (2, 11, 9, 3)).astype(dtype)
    wide = torch.tensor(np.moveaxis(np.asarray(x.astype(jnp.float32)), -1, 1))
    for ours, theirs in ((jaxpool.blur_pool2d(x, 4, 2), kornia_blur_pool2d(wide, 4, 2)),
                         (jaxpool.max_blur_pool2d(x, 3, 2), kornia_max_blur_pool2d(wide, 3, 2))):
        assert ours.dtype == dtype
        # One rounding of the narrow type, of the float32 result.
        expected = np.moveaxis(theirs.numpy(), 1, -1)
        eps = float(jnp.finfo(dtype).eps)
        np.testing.assert_allclose(np.asarray(ours.astype(jnp.float32)), expected, rtol=eps, atol=1e-6)
    grad = jax.grad(lambda v: jaxpool.blur_pool2d(v, 3).astype(jnp.float32).sum())(x)
    assert grad.dtype == dtype


# ----------------------------------------------------------------------------------
# Properties


def test_a_constant_map_darkens_at_the_border_as_kornias():
    out = jaxpool.blur_pool2d(jnp.ones((1, 6, 6, 1)), 3)[0, ..., 0]
    # The first row and column lose the quarter that reads the zero padding.
    np.testing.assert_array_equal(out[0], [0.5625, 0.75, 0.75])
    np.testing.assert_array_equal(out[1:, 1:], np.ones((2, 2)))


def test_layouts_agree():
    x = jax.random.normal(jax.random.key(1), (2, 9, 7, 3))
    for op in (lambda v, **k: jaxpool.blur_pool2d(v, (3, 4), (2, 1), **k),
               lambda v, **k: jaxpool.max_blur_pool2d(v, 3, 2, (2, 3), **k)):
        last = op(x)
        first = op(jnp.moveaxis(x, -1, 1), channels_first=True)
        # XLA may contract a product and a sum into one FMA in one layout, not the other.
        chex.assert_trees_all_close(jnp.moveaxis(first, 1, -1), last, rtol=1e-6, atol=1e-7)


def test_zero_size_batch():
    chex.assert_shape(jaxpool.blur_pool2d(jnp.zeros((0, 6, 5, 2)), 3), (0, 3, 3, 2))
    chex.assert_shape(jaxpool.max_blur_pool3d(jnp.zeros((0, 3, 4, 5, 2)), 3), (0, 1, 2, 2, 2))
    grad = jax.grad(lambda v: jaxpool.max_blur_pool1d(v, 3).sum())(jnp.zeros((0, 6, 2)))
    chex.assert_shape(grad, (0, 6, 2))


class TransformTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_variants(self):
        x = np.random.default_rng(2).standard_normal((2, 10, 8, 3)).astype(np.float32)
        blurred = self.variant(lambda v: jaxpool.max_blur_pool2d(v, 3, 2, 2))(x)
        expected = kornia_max_blur_pool2d(torch.tensor(np.moveaxis(x, -1, 1)), 3, 2, 2).numpy()
        chex.assert_trees_all_close(np.moveaxis(np.asarray(blurred), -1, 1), expected,
                                    rtol=RTOL, atol=ATOL)

    def test_no_retracing(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def pooled(v):
            return jaxpool.blur_pool2d(v, 3) + jaxpool.max_blur_pool2d(v, 3, max_pool_size=1)

        pooled(jnp.ones((2, 8, 8, 4)))
        pooled(jnp.zeros((2, 8, 8, 4)))

    def test_vmap_and_forward_mode(self):
        x = jax.random.normal(jax.random.key(3), (3, 2, 7, 7, 2))
        mapped = jax.vmap(lambda v: jaxpool.blur_pool2d(v, 3))(x)
        chex.assert_trees_all_close(mapped, jaxpool.blur_pool2d(x, 3))
        tangent = jnp.ones_like(x)
        _, forward = jax.jvp(lambda v: jaxpool.blur_pool2d(v, 3), (x,), (tangent,))
        chex.assert_trees_all_close(forward, jaxpool.blur_pool2d(tangent, 3))


# ----------------------------------------------------------------------------------
# Errors

X = jnp.zeros((1, 6, 6, 2))
BAD_INPUTS = [
    (lambda: jaxpool.blur_pool2d(X.astype(jnp.int32), 3), TypeError, "blur_pool2d: input must have a floating dtype"),
    (lambda: jaxpool.blur_pool2d(X, 0), ValueError, "blur_pool2d: kernel_size must be positive, but got kernel_size=0"),
    (lambda: jaxpool.blur_pool2d(X, 3, (2, 0)), ValueError, r"stride must be positive, but got stride=\(2, 0\)"),
    (lambda: jaxpool.blur_pool2d(X, (3, 3, 3)), ValueError, "kernel_size must either be a single int, or a tuple of 2 ints"),
    (lambda: jaxpool.blur_pool2d(X, 2.0), TypeError, "kernel_size must be an int"),
    (lambda: jaxpool.blur_pool2d(X, True), TypeError, "kernel_size must be an int"),
    (lambda: jaxpool.blur_pool3d(X[0], 3), ValueError, r"blur_pool3d: expected an input of shape \(\*batch, D, H, W, C\) with at least 4 dimensions"),
    (lambda: jaxpool.blur_pool2d(X, 3, channels_first=1), TypeError, "channels_first must be a bool"),
    (lambda: jaxpool.max_blur_pool2d(X, 3, max_pool_size=7), ValueError, r"max_blur_pool2d: max_pool_size=7 is larger than the input's spatial size \(6, 6\)"),
    (lambda: jaxpool.max_blur_pool2d(X, 3, max_pool_size=0), ValueError, "max_pool_size must be positive"),
    (lambda: jaxpool.max_blur_pool1d(X[0, 0], 3, 2, 2.5), TypeError, "max_blur_pool1d: max_pool_size must be an int"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
