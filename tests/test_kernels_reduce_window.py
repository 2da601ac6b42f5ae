"""Tests of jaxpool._kernels_reduce_window (the ``reduce_window`` kernel family).

The parity suites run both families against torch over generated configurations; here
each of this family's paths (one reduce_window, staged choices for large windows,
tiling windows, gathers for irregular adaptive windows, axis reductions for global
pooling) is reached on purpose, and the program XLA receives is checked: forwards are
``reduce_window``, and no gradient goes through ``select_and_scatter_add``.
"""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch.nn.functional as F

import jaxpool
from jaxpool import _geometry as geometry
from jaxpool import _kernels_reduce_window as reduce_window
from tests.oracle import compare_with_torch, recorded_paths, sample_input


@pytest.fixture(autouse=True)
def _reduce_window_family():
    with jaxpool.kernels("reduce_window"):
        yield


def _stablehlo(function, *args):
    jax.clear_caches()
    return jax.jit(function).lower(*args).as_text()


X = jnp.asarray(np.random.default_rng(0).integers(-3, 4, (2, 13, 12, 3)).astype(np.float32))


@pytest.mark.parametrize(
    "forward",
    [
        lambda v: jaxpool.max_pool2d(v, 3, 2, 1),
        lambda v: jaxpool.avg_pool2d(v, 3, 1, 1),
        lambda v: jaxpool.lp_pool2d(v, 2, 3, 2),
        lambda v: jaxpool.hybrid_pool2d(v, 0.3, 2),
        lambda v: jaxpool.max_pool2d(v, 3, 2, 1, 2),  # dilated
    ],
)
def test_forwards_are_one_reduce_window_and_gradients_avoid_select_and_scatter(forward):
    text = _stablehlo(forward, X)
    assert "stablehlo.reduce_window" in text
    # No taps in a forward: the only slices crop elements that no window reads.
    assert not re.search(r"stablehlo\.slice [^\n]*\d+:\d+:\d+", text), text
    gradient = _stablehlo(jax.grad(lambda v: jnp.sum(jnp.sin(forward(v)))), X)
    assert "select_and_scatter" not in gradient


def test_global_pooling_is_an_axis_reduction():
    text = _stablehlo(lambda v: jaxpool.global_max_pool(v) + jaxpool.global_avg_pool(v), X)
    assert "stablehlo.reduce_window" not in text and "stablehlo.reduce" in text


# Each path, compared with torch: values, indices and gradients (ties in every window).
PATH_CASES = [
    ("one stage, joint taps", lambda v: jaxpool.max_pool2d(v, 3, 2, 1, return_indices=True),
     lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True)),
    ("two stages, 5x5 separable", lambda v: jaxpool.max_pool2d(v, 5, 1, 2, return_indices=True),
     lambda t: F.max_pool2d(t, 5, 1, 2, return_indices=True)),
    ("tiling windows with padding", lambda v: jaxpool.max_pool2d(
        v, 4, padding=2, ceil_mode=True, return_indices=True),
     lambda t: F.max_pool2d(t, 4, padding=2, ceil_mode=True, return_indices=True)),
    ("dilated, ceil mode", lambda v: jaxpool.max_pool2d(
        v, 2, 3, 1, 2, True, return_indices=True),
     lambda t: F.max_pool2d(t, 2, 3, 1, 2, True, return_indices=True)),
    ("irregular adaptive (gathers)", lambda v: jaxpool.adaptive_max_pool2d(v, (5, 7), True),
     lambda t: F.adaptive_max_pool2d(t, (5, 7), True)),
    ("adaptive upsampling", lambda v: jaxpool.adaptive_max_pool2d(v, (17, 3), True),
     lambda t: F.adaptive_max_pool2d(t, (17, 3), True)),
    ("global", lambda v: jaxpool.adaptive_max_pool2d(v, 1, True),
     lambda t: F.adaptive_max_pool2d(t, 1, True)),
]


@pytest.mark.parametrize("name, ours, theirs", PATH_CASES, ids=[c[0] for c in PATH_CASES])
@pytest.mark.parametrize("nan", [False, True])
def test_every_max_path_matches_torch(name, ours, theirs, nan):
    x = sample_input(np.random.default_rng(3), (2, 13, 12, 3), ties=True, nan=nan)
    compare_with_torch(ours, theirs, x, 2, False, indices=True)


def test_large_windows_are_reduced_in_stages():
    stages = reduce_window._stages((1, 2), geometry.sliding_windows(
        "t", (13, 12), 5, 1, 2, 1, False).windows)
    assert [s.axes for s in stages] == [(2,), (1,)]
    stages = reduce_window._stages((1, 2), geometry.sliding_windows(
        "t", (13, 12), 3, 2, 1, 1, False).windows)
    assert [s.axes for s in stages] == [(1, 2)]


SUM_CASES = [
    ("average without padding", lambda v: jaxpool.avg_pool2d(v, 3, 2, 1, count_include_pad=False),
     lambda t: F.avg_pool2d(t, 3, 2, 1, count_include_pad=False)),
    ("irregular adaptive average", lambda v: jaxpool.adaptive_avg_pool2d(v, (5, 7)),
     lambda t: F.adaptive_avg_pool2d(t, (5, 7))),
    ("LP, ceil mode", lambda v: jaxpool.lp_pool2d(v, 3, 2, 2, True),
     lambda t: F.lp_pool2d(t, 3, 2, 2, True)),
]


@pytest.mark.parametrize("name, ours, theirs", SUM_CASES, ids=[c[0] for c in SUM_CASES])
def test_sum_paths_match_torch(name, ours, theirs):
    x = np.abs(sample_input(np.random.default_rng(4), (2, 13, 12, 3), ties=False, nan=False)) + 1
    compare_with_torch(ours, theirs, x, 2, False, exact=False, rtol=1e-5, atol=1e-5)


def test_forward_mode_equals_reverse_mode_and_second_derivatives_work():
    x = jax.random.normal(jax.random.key(1), (7, 6, 2))
    for function in [
        lambda v: jaxpool.max_pool2d(v, 3, 2, 1, 2),
        lambda v: jaxpool.max_pool2d(v, 5, 1, 2),
        lambda v: jaxpool.adaptive_max_pool2d(v, (4, 5)),
        lambda v: jaxpool.hybrid_pool2d(v, 0.3, 3, 2, 1),
        lambda v: jaxpool.avg_pool2d(v, 3, 2, 1),
    ]:
        chex.assert_trees_all_close(jax.jacfwd(function)(x), jax.jacrev(function)(x), atol=1e-6)
    # d/dx of sum((max_pool x)^2) = 2 * max * one-hot: its derivative is 2 * one-hot^2.
    hessian_diagonal = jax.vmap(
        lambda basis: jax.jvp(jax.grad(lambda v: jnp.sum(jaxpool.max_pool2d(v, 2) ** 2)),
                              (x,), (basis,))[1]
    )(jnp.eye(x.size).reshape(x.size, *x.shape))
    counts = jax.grad(lambda v: jnp.sum(jaxpool.max_pool2d(v, 2)))(x)
    np.testing.assert_array_equal(
        np.diagonal(np.asarray(hessian_diagonal).reshape(x.size, x.size)),
        2 * np.asarray(counts).reshape(-1),
    )


def test_vmap_of_values_gradients_and_indices():
    xs = jax.random.normal(jax.random.key(2), (3, 2, 9, 9, 2))

    def function(v):
        values, index = jaxpool.max_pool2d(v, 3, 2, 1, return_indices=True)
        return values, index, jax.grad(lambda w: jnp.sum(jaxpool.hybrid_pool2d(w, 0.2, 3, 2)))(v)

    batched = jax.vmap(function)(xs)
    looped = [function(v) for v in xs]
    for position in range(3):
        np.testing.assert_array_equal(
            batched[position], np.stack([result[position] for result in looped]))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.int8, jnp.uint8, jnp.int32])
def test_low_precision_and_integer_maxima_keep_their_dtype(dtype):
    values = np.random.default_rng(6).integers(0, 100, (1, 9, 9, 2))
    x = jnp.asarray(values).astype(dtype)
    out, index = jaxpool.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert out.dtype == dtype
    with jaxpool.kernels("cpu"):
        expected, expected_index = jaxpool.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(expected, np.float32))
    np.testing.assert_array_equal(index, expected_index)


def test_paths_are_logged_per_family():
    with recorded_paths() as paths:
        jaxpool.max_pool2d(X, 2)
        jaxpool.avg_pool2d(X, 2)
    assert paths == ["reduce_window:max", "reduce_window:sum"]
