"""Tests of jaxpool._pyramid: spatial pyramid pooling against torch's concatenation of
adaptive poolings, in both layouts, forward and gradient."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxpool
from tests.oracle import sample_input

# Every test function runs once per kernel family (conftest.py).
PER_KERNEL_FAMILY = True
SWEEP = settings(max_examples=max(settings.default.max_examples // 3, 5))


def torch_pyramid(t, levels, mode, n, channels_first):
    """torch's spatial pyramid on ``(N, C, *spatial)``; channels-last flattens each level
    position-major (the channels moved last first)."""
    pool = getattr(F, f"adaptive_{mode}_pool{n}d")
    pieces = []
    for level in levels:
        pooled = pool(t, level)
        if not channels_first:
            pooled = pooled.movedim(1, -1)
        pieces.append(pooled.flatten(1))
    return torch.cat(pieces, 1)


def compare(x, levels, mode, n, channels_first, *, exact, seed=0):
    """Forward and vector-Jacobian product against torch; ``x`` in jaxpool's layout with one
    batch dim."""
    t_x = torch.tensor(x if channels_first else np.moveaxis(x, -1, 1), requires_grad=True)
    t_out = torch_pyramid(t_x, levels, mode, n, channels_first)
    out, vjp = jax.vjp(lambda v: jaxpool.spatial_pyramid_pool(
        v, levels, mode, spatial_dims=n, channels_first=channels_first), jnp.asarray(x))
    assert out.dtype == x.dtype
    check = np.testing.assert_array_equal if exact else (
        lambda a, b, **k: np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6, **k))
    check(np.asarray(out), t_out.detach().numpy(), err_msg="forward")
    cotangent = np.random.default_rng(seed).integers(-3, 4, size=out.shape).astype(x.dtype)
    (t_grad,) = torch.autograd.grad(t_out, t_x, torch.tensor(cotangent))
    (grad,) = vjp(jnp.asarray(cotangent))
    expected = t_grad.numpy() if channels_first else np.moveaxis(t_grad.numpy(), 1, -1)
    check(np.asarray(grad), expected, err_msg="gradient")


@st.composite
def pyramid_case(draw):
    n = draw(st.integers(1, 3))
    limit = {1: 14, 2: 11, 3: 6}[n]
    sizes = tuple(draw(st.integers(1, limit)) for _ in range(n))
    count = draw(st.integers(1, 3))
    levels = tuple(
        draw(st.integers(1, limit + 2)) if draw(st.booleans())
        else tuple(draw(st.integers(1, limit + 2)) for _ in range(n))
        for _ in range(count)
    )
    channels_first = draw(st.booleans())
    channels = draw(st.integers(1, 3))
    shape = (2, channels, *sizes) if channels_first else (2, *sizes, channels)
    return dict(n=n, shape=shape, levels=levels, channels_first=channels_first,
                mode=draw(st.sampled_from(["max", "avg"])), ties=draw(st.booleans()),
                nan=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@SWEEP
@given(pyramid_case())
def test_spatial_pyramid_pool_matches_torch(case):
    x = sample_input(np.random.default_rng(case["seed"]), case["shape"], ties=case["ties"],
                     nan=case["nan"] and case["mode"] == "max")
    compare(x, case["levels"], case["mode"], case["n"], case["channels_first"],
            exact=case["mode"] == "max", seed=case["seed"])


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_the_issue_s_torch_expression(mode):
    """The default pyramid, channels-first: ``cat([F.adaptive_max_pool2d(x, l).flatten(1) for
    l in (1, 2, 4)], 1)`` — for several input sizes, one output length."""
    for size in ((7, 7), (13, 10), (4, 4), (2, 3)):
        x = np.random.default_rng(sum(size)).standard_normal((3, 5, *size)).astype(np.float32)
        pool = getattr(F, f"adaptive_{mode}_pool2d")
        expected = torch.cat([pool(torch.tensor(x), level).flatten(1) for level in (1, 2, 4)], 1).numpy()
        out = jaxpool.spatial_pyramid_pool(x, mode=mode, channels_first=True)
        chex.assert_shape(out, (3, 5 * 21))
        np.testing.assert_allclose(out, expected, rtol=2e-6, atol=2e-6)


def test_channels_last_order_is_position_major():
    x = jnp.arange(2 * 2 * 3, dtype=jnp.float32).reshape(1, 2, 2, 3)  # (N, H, W, C)
    out = jaxpool.spatial_pyramid_pool(x, (1, 2))
    # Level 1: the 3 channels' maxima; level 2: each position's 3 channels in turn.
    np.testing.assert_array_equal(out[0, :3], x[0, 1, 1])
    np.testing.assert_array_equal(out[0, 3:], x[0].reshape(-1))
    first = jaxpool.spatial_pyramid_pool(jnp.moveaxis(x, -1, 1), (1, 2), channels_first=True)
    np.testing.assert_array_equal(first[0, 3:], jnp.moveaxis(x, -1, 1)[0].reshape(-1))


def test_batch_dims_and_integers():
    x = jnp.asarray(np.random.default_rng(0).integers(-9, 9, (2, 3, 6, 5, 4)), jnp.int32)
    out = jaxpool.spatial_pyramid_pool(x, (1, (2, 3)))
    chex.assert_shape(out, (2, 3, 4 * 7))
    assert out.dtype == jnp.int32
    np.testing.assert_array_equal(out[1, 2], jaxpool.spatial_pyramid_pool(x[1, 2][None], (1, (2, 3)))[0])
    chex.assert_shape(jaxpool.spatial_pyramid_pool(jnp.zeros((0, 5, 5, 2)), (1, 2), "avg"), (0, 10))


def test_no_retracing():
    chex.clear_trace_counter()  # the other kernel family's run traced it too

    @jax.jit
    @chex.assert_max_traces(n=1)
    def head(v):
        return jaxpool.spatial_pyramid_pool(v, (1, 2, 3), "avg")

    head(jnp.ones((2, 9, 9, 4)))
    head(jnp.zeros((2, 9, 9, 4)))


X = jnp.zeros((1, 6, 6, 2))
BAD_INPUTS = [
    (lambda: jaxpool.spatial_pyramid_pool(X, 4), TypeError, r"levels must be a non-empty sequence .* but got levels=4"),
    (lambda: jaxpool.spatial_pyramid_pool(X, ()), TypeError, "levels must be a non-empty sequence"),
    (lambda: jaxpool.spatial_pyramid_pool(X, (1, 0)), ValueError, r"every level's output size must be positive, but got levels=\(1, 0\)"),
    (lambda: jaxpool.spatial_pyramid_pool(X, (1, None)), TypeError, "levels must be an int"),
    (lambda: jaxpool.spatial_pyramid_pool(X, (1, (2, 2, 2))), ValueError, "levels must either be a single int, or a tuple of 2 ints"),
    (lambda: jaxpool.spatial_pyramid_pool(X, mode="mean"), ValueError, "mode must be 'max' or 'avg', but got mode='mean'"),
    (lambda: jaxpool.spatial_pyramid_pool(X, mode=max), TypeError, "mode must be 'max' or 'avg'"),
    (lambda: jaxpool.spatial_pyramid_pool(X.astype(jnp.int32), mode="avg"), TypeError, "spatial_pyramid_pool: input must have a floating dtype"),
    (lambda: jaxpool.spatial_pyramid_pool(X, spatial_dims=4), ValueError, "spatial_dims must be 1, 2 or 3"),
    (lambda: jaxpool.spatial_pyramid_pool(X[0, 0], (1, 2)), ValueError, r"spatial_pyramid_pool: expected an input of shape \(\*batch, H, W, C\)"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
