"""Tests of jaxpool._adaptive: adaptive and global pooling against torch."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import jaxpool
from tests.helpers import TUTORIAL_GRID
from tests.oracle import FamilyTestCase, compare_with_torch, sample_input

# Every test function runs once per kernel family (conftest.py); the TestCase classes
# have a subclass per family.
PER_KERNEL_FAMILY = True


def test_seed_grid_global_average_and_max():
    x = TUTORIAL_GRID[None, :, :, None]
    # The seed article prints 4.25 for this grid, but its 16 values sum to 64: the
    # average is 4.0 (torch agrees), so that is what we check.
    assert float(TUTORIAL_GRID.sum()) == 64.0
    np.testing.assert_array_equal(jaxpool.global_avg_pool(x), [[4.0]])
    torch_average = F.adaptive_avg_pool2d(torch.tensor(np.asarray(TUTORIAL_GRID))[None, None], 1)
    assert float(torch_average) == 4.0
    np.testing.assert_array_equal(jaxpool.global_max_pool(x), [[9.0]])


@st.composite
def adaptive_case(draw):
    n = draw(st.integers(1, 3))
    limit = {1: 12, 2: 9, 3: 6}[n]
    sizes = tuple(draw(st.integers(1, limit)) for _ in range(n))
    # Output sizes above, equal to and below the input (upsampling included), and None.
    outputs = tuple(draw(st.one_of(st.integers(1, limit + 3), st.none())) for _ in range(n))
    batch = draw(st.sampled_from([(), (2,), (1, 2)]))
    channels = draw(st.integers(1, 3))
    channels_first = draw(st.booleans())
    shape = (*batch, channels, *sizes) if channels_first else (*batch, *sizes, channels)
    output = outputs if n > 1 or draw(st.booleans()) else outputs[0]
    # torch's 1D adaptive pooling wants ints; 2D/3D accept None entries as we do.
    resolved = tuple(size if out is None else out for size, out in zip(sizes, outputs, strict=True))
    return dict(
        n=n,
        output=output,
        torch_output=resolved[0] if n == 1 else output,
        shape=shape,
        channels_first=channels_first,
        ties=draw(st.booleans()),
        nan=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def _fn(name, n):
    return getattr(jaxpool, f"{name}{n}d"), getattr(F, f"{name}{n}d")


@given(adaptive_case())
def test_adaptive_max_pool_matches_torch(case):
    n = case["n"]
    rng = np.random.default_rng(case["seed"])
    x = sample_input(rng, case["shape"], ties=case["ties"], nan=case["nan"])
    ours, theirs = _fn("adaptive_max_pool", n)
    compare_with_torch(
        lambda v: ours(v, case["output"], True, channels_first=case["channels_first"]),
        lambda t: theirs(t, case["torch_output"], True),
        x,
        n,
        case["channels_first"],
        indices=True,
        exact=True,
        seed=case["seed"],
    )


@given(adaptive_case())
def test_adaptive_avg_pool_matches_torch(case):
    n = case["n"]
    rng = np.random.default_rng(case["seed"])
    x = sample_input(rng, case["shape"], ties=case["ties"], nan=case["nan"])
    ours, theirs = _fn("adaptive_avg_pool", n)
    compare_with_torch(
        lambda v: ours(v, case["output"], channels_first=case["channels_first"]),
        lambda t: theirs(t, case["torch_output"]),
        x,
        n,
        case["channels_first"],
        exact=False,
        rtol=2e-6,
        atol=2e-6,
        seed=case["seed"],
    )


@pytest.mark.parametrize("output", [(5, 3), (4, 4), (6, 7), (1, 1), (13, 2), (20, 20)])
def test_adaptive_avg_pool_divides_like_torch(output):
    # Integer inputs sum exactly, so any difference is in the division (sum / kh / kw).
    x = np.random.default_rng(0).integers(-50, 50, (4, 8, 13, 11)).astype(np.float32)
    expected = F.adaptive_avg_pool2d(torch.tensor(x), output).numpy()
    got = jaxpool.adaptive_avg_pool2d(x, output, channels_first=True)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("channels_first", [False, True])
def test_global_pooling_matches_torch(n, channels_first):
    rng = np.random.default_rng(n)
    spatial = (7, 9, 5)[:n]
    shape = (3, 4, *spatial) if channels_first else (3, *spatial, 4)
    x = sample_input(rng, shape, ties=True, nan=False)
    options = dict(spatial_dims=n, keepdims=True, channels_first=channels_first)
    compare_with_torch(
        lambda v: jaxpool.global_avg_pool(v, **options),
        lambda t: getattr(F, f"adaptive_avg_pool{n}d")(t, 1),
        x,
        n,
        channels_first,
        exact=True,
    )
    compare_with_torch(
        lambda v: jaxpool.global_max_pool(v, return_indices=True, **options),
        lambda t: getattr(F, f"adaptive_max_pool{n}d")(t, 1, True),
        x,
        n,
        channels_first,
        indices=True,
        exact=True,
    )


@pytest.mark.parametrize("channels_first", [False, True])
def test_global_pooling_keepdims(channels_first):
    shape = (3, 4, 7, 9) if channels_first else (3, 7, 9, 4)
    x = jax.random.normal(jax.random.key(0), shape)
    kept = jaxpool.global_max_pool(x, keepdims=True, channels_first=channels_first)
    chex.assert_shape(kept, (3, 4, 1, 1) if channels_first else (3, 1, 1, 4))
    dropped = jaxpool.global_max_pool(x, channels_first=channels_first)
    chex.assert_shape(dropped, (3, 4))
    chex.assert_trees_all_equal(dropped, kept.reshape(3, 4))
    chex.assert_shape(jaxpool.global_avg_pool(x, channels_first=channels_first), (3, 4))


def test_global_max_pool_gradient_goes_to_first_maximum():
    x = jnp.array([[1.0, 5.0], [5.0, 2.0]])[None, :, :, None]
    grad = jax.grad(lambda v: jaxpool.global_max_pool(v).sum())(x)
    np.testing.assert_array_equal(grad[0, :, :, 0], [[0, 1], [0, 0]])


def test_global_avg_pool_bfloat16_accumulates_in_float32():
    x = jnp.full((1, 64, 64, 2), 1.01, jnp.bfloat16)
    out = jaxpool.global_avg_pool(x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out[0], np.float32), np.asarray(x[0, 0, 0], np.float32))


def test_adaptive_output_none_keeps_the_dimension():
    x = jnp.ones((2, 5, 7, 3))
    chex.assert_shape(jaxpool.adaptive_avg_pool2d(x, (None, 2)), (2, 5, 2, 3))
    chex.assert_shape(jaxpool.adaptive_max_pool2d(x, None), (2, 5, 7, 3))


def test_adaptive_upsampling_repeats_elements():
    x = jnp.array([1.0, 2.0])[:, None]
    np.testing.assert_array_equal(jaxpool.adaptive_avg_pool1d(x, 4)[:, 0], [1, 1, 2, 2])
    np.testing.assert_array_equal(jaxpool.adaptive_max_pool1d(x, 3)[:, 0], [1, 2, 2])


class AdaptiveTransformTest(FamilyTestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_variants(self):
        x = np.random.default_rng(5).standard_normal((2, 13, 11, 3)).astype(np.float32)
        pooled = self.variant(lambda v: jaxpool.adaptive_max_pool2d(v, (5, 3)))(x)
        expected = F.adaptive_max_pool2d(torch.tensor(np.moveaxis(x, -1, 1)), (5, 3)).numpy()
        chex.assert_trees_all_close(np.moveaxis(np.asarray(pooled), -1, 1), expected, rtol=0, atol=0)

    def test_no_retracing(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def head(v):
            return jaxpool.global_avg_pool(v) + jaxpool.adaptive_avg_pool2d(v, 1)[:, 0, 0]

        head(jnp.ones((2, 7, 7, 4)))
        head(jnp.zeros((2, 7, 7, 4)))


BAD_INPUTS = [
    (lambda: jaxpool.adaptive_avg_pool2d(jnp.zeros((1, 4, 4, 2)), 0), ValueError, "elements of output_size must be greater than 0, but got output_size=0"),
    (lambda: jaxpool.adaptive_max_pool2d(jnp.zeros((1, 4, 4, 2)), (-1, 2)), ValueError, r"output_size=\(-1, 2\)"),
    (lambda: jaxpool.adaptive_avg_pool2d(jnp.zeros((1, 4, 4, 2)), (2, 2, 2)), ValueError, "must either be a single int"),
    (lambda: jaxpool.adaptive_avg_pool2d(jnp.zeros((1, 4, 4, 2)), 2.5), TypeError, "output_size must be an int or None"),
    (lambda: jaxpool.adaptive_avg_pool2d(jnp.zeros((1, 0, 4, 2)), 2), ValueError, "dimension 1 being empty"),
    (lambda: jaxpool.adaptive_avg_pool1d(jnp.zeros((6,)), 2), ValueError, "at least 2 dimensions"),
    (lambda: jaxpool.adaptive_avg_pool2d(jnp.zeros((1, 4, 4, 2), jnp.int32), 2), TypeError, "floating dtype"),
    (lambda: jaxpool.global_avg_pool(jnp.zeros((2, 3)), spatial_dims=4), ValueError, "spatial_dims must be 1, 2 or 3, but got spatial_dims=4"),
    (lambda: jaxpool.global_avg_pool(jnp.zeros((4, 4)), spatial_dims=2), ValueError, r"at least 3 dimensions, but got shape \(4, 4\)"),
    (lambda: jaxpool.global_max_pool(jnp.zeros((1, 4, 4, 2)), keepdims=1), TypeError, "keepdims must be a bool"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


class AdaptiveTransformTestReduceWindow(AdaptiveTransformTest):
    """The same transforms with the ``reduce_window`` kernel family."""

    family = "reduce_window"
