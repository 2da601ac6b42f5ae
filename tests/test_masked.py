"""Tests of masked global pooling (jaxpool._masked, through the public ops' ``mask=``).

Oracles: torch computing the idioms directly on ``(N, S, C)`` (the spatial dims
flattened): the sentence-embedding mean ``(x * m).sum(1) / m.sum(1)``, the masked
maximum ``x.masked_fill(~m, -inf).amax(1)`` for values and, for gradients with ties,
``F.adaptive_max_pool1d`` of the same filled input (max pooling's first-maximum
rule, which jaxpool's global maximum follows); a NumPy reference for the empty-row rule
and bfloat16. Configurations (rank, batch dims, layout, mask broadcasting, keepdims) are
drawn by hypothesis.
"""

import math

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

# Every test function runs once per kernel family (conftest.py): the masked maximum
# goes through the kernel switch.
PER_KERNEL_FAMILY = True

OPS = ("avg", "max", "hybrid", "gem", "avg_max", "cat_avg_max")
ALPHA = 0.3
P = 3.0
EPS = 1e-6


def _pool(op, x, mask, *, n, channels_first=False, keepdims=False, alpha=ALPHA, p=P):
    options = dict(spatial_dims=n, channels_first=channels_first, keepdims=keepdims, mask=mask)
    if op == "avg":
        return jaxpool.global_avg_pool(x, **options)
    if op == "max":
        return jaxpool.global_max_pool(x, **options)
    if op == "hybrid":
        return jaxpool.global_hybrid_pool(x, alpha, **options)
    if op == "gem":
        return jaxpool.gem_pool(x, p, eps=EPS, **options)
    if op == "avg_max":
        return jaxpool.global_avg_max_pool(x, **options)
    return jaxpool.global_cat_avg_max_pool(x, **options)


def _torch_pool(op, x, mask, alpha, p):
    """The op on ``x (N, S, C)`` with ``mask (N, S)`` (every row keeps something)."""
    m = mask[..., None]
    mean = (x * m).sum(1) / m.sum(1)
    filled = x.masked_fill(~m, -math.inf)
    # First-maximum gradient, as max pooling (amax would split a tie's gradient).
    maximum = F.adaptive_max_pool1d(filled.transpose(1, 2), 1)[..., 0]
    if op == "avg":
        return mean
    if op == "max":
        return maximum
    if op == "hybrid":
        return alpha * maximum + (1 - alpha) * mean
    if op == "gem":
        power = x.clamp(min=EPS) ** p
        return ((power * m).sum(1) / m.sum(1)) ** (1 / p)
    if op == "avg_max":
        return 0.5 * (mean + maximum)
    return torch.cat([mean, maximum], dim=-1)


def _flatten(x, n, channels_first):
    """jaxpool's layout -> ``(N, S, C)``."""
    if channels_first:
        x = np.moveaxis(x, x.ndim - n - 1, -1)
    batch = x.shape[: x.ndim - n - 1]
    return x.reshape(math.prod(batch), -1, x.shape[-1])


def _flat_mask(mask, shape, n, channels_first):
    """The mask broadcast to the input without channels, then ``(N, S)``."""
    channel_axis = len(shape) - n - 1 if channels_first else len(shape) - 1
    without = tuple(s for a, s in enumerate(shape) if a != channel_axis)
    full = np.broadcast_to(mask, without)
    return full.reshape(math.prod(without[: len(without) - n]), -1)


def _unflatten_output(y, shape, n, channels_first, keepdims):
    """torch's ``(N, C')`` -> jaxpool's output layout."""
    batch = shape[: len(shape) - n - 1]
    y = y.reshape((*batch, y.shape[-1]))
    if keepdims:
        y = y.reshape((*batch, y.shape[-1], *(1,) * n) if channels_first
                      else (*batch, *(1,) * n, y.shape[-1]))
    return y


@st.composite
def masked_case(draw, *, allow_empty_rows=False):
    n = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, {1: 7, 2: 4, 3: 3}[n])) for _ in range(n))
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    channels = draw(st.integers(1, 3))
    channels_first = draw(st.booleans())
    shape = (*batch, channels, *spatial) if channels_first else (*batch, *spatial, channels)
    # The mask: full shape, shared over the batch, or with a broadcast spatial dim.
    full = (*batch, *spatial)
    form = draw(st.sampled_from(["full", "shared", "broadcast"]))
    if form == "shared":
        mask_shape = spatial
    elif form == "broadcast":
        mask_shape = (*batch, 1, *spatial[1:])
    else:
        mask_shape = full
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    mask = rng.random(mask_shape) < 0.6
    if not allow_empty_rows:  # every row keeps its first element
        mask.reshape(*mask.shape[: len(mask.shape) - n], -1)[..., 0] = True
    ties = draw(st.booleans())
    x = (rng.integers(-2, 3, size=shape) if ties else rng.standard_normal(shape))
    return dict(n=n, shape=shape, channels_first=channels_first, mask=mask,
                x=x.astype(np.float32), keepdims=draw(st.booleans()), seed=seed)


@given(op=st.sampled_from(OPS), case=masked_case())
def test_value_and_gradients_match_torchs_idioms(op, case):
    n, shape, channels_first = case["n"], case["shape"], case["channels_first"]
    x = case["x"] if op != "gem" else np.abs(case["x"]) + 0.1
    mask = case["mask"]
    flat_x = torch.tensor(_flatten(x, n, channels_first), dtype=torch.float64,
                          requires_grad=True)
    flat_mask = torch.tensor(_flat_mask(mask, shape, n, channels_first))
    alpha = torch.tensor(ALPHA, dtype=torch.float64, requires_grad=True)
    p = torch.tensor(P, dtype=torch.float64, requires_grad=True)
    expected = _torch_pool(op, flat_x, flat_mask, alpha, p)

    def run(x, alpha, p):
        return _pool(op, x, jnp.asarray(mask), n=n, channels_first=channels_first,
                     keepdims=case["keepdims"], alpha=alpha, p=p)

    got, vjp = jax.vjp(run, jnp.asarray(x), jnp.float32(ALPHA), jnp.float32(P))
    want = _unflatten_output(expected.detach().numpy(), shape, n, channels_first,
                             case["keepdims"])
    chex.assert_shape(got, want.shape)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)

    rng = np.random.default_rng(case["seed"])
    cotangent = rng.integers(-3, 4, size=want.shape).astype(np.float32)
    grad_x, grad_alpha, grad_p = vjp(jnp.asarray(cotangent))
    flat_cotangent = torch.tensor(cotangent.reshape(expected.shape), dtype=torch.float64)
    inputs = [flat_x] + ([alpha] if op == "hybrid" else []) + ([p] if op == "gem" else [])
    torch_grads = torch.autograd.grad(expected, inputs, flat_cotangent)
    expected_x = torch_grads[0].numpy()
    if channels_first:
        moved = (*shape[: len(shape) - n - 1], *shape[len(shape) - n:], shape[len(shape) - n - 1])
        expected_x = np.moveaxis(expected_x.reshape(moved), -1, len(shape) - n - 1)
    np.testing.assert_allclose(grad_x, expected_x.reshape(shape), rtol=2e-5, atol=1e-6)
    if op == "hybrid":
        np.testing.assert_allclose(grad_alpha, torch_grads[1].numpy(), rtol=1e-5, atol=1e-5)
    if op == "gem":
        np.testing.assert_allclose(grad_p, torch_grads[1].numpy(), rtol=1e-5, atol=1e-5)


def test_the_sentence_embedding_idiom():
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((4, 9, 16)).astype(np.float32)
    mask = np.arange(9)[None, :] < np.array([9, 5, 1, 7])[:, None]  # lengths per sentence
    t_tokens = torch.tensor(tokens, requires_grad=True)
    t_mask = torch.tensor(mask)[..., None].float()
    expected = (t_tokens * t_mask).sum(1) / t_mask.sum(1)
    got, vjp = jax.vjp(
        lambda t: jaxpool.global_avg_pool(t, spatial_dims=1, mask=jnp.asarray(mask)), tokens
    )
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-6, atol=1e-7)
    cotangent = rng.standard_normal(got.shape).astype(np.float32)
    (grad,) = vjp(jnp.asarray(cotangent))
    (expected_grad,) = torch.autograd.grad(expected, t_tokens, torch.tensor(cotangent))
    np.testing.assert_allclose(grad, expected_grad.numpy(), rtol=1e-6, atol=1e-7)


def test_the_masked_maximum_is_torchs_masked_fill_amax():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 6, 4)).astype(np.float32)  # (N, H, W, C)
    mask = rng.random((3, 5, 6)) < 0.3
    mask[:, 0, 0] = True
    t_x = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)  # (N, C, H, W)
    expected = t_x.masked_fill(~torch.tensor(mask)[:, None], -math.inf).amax(dim=(2, 3))
    got, vjp = jax.vjp(
        lambda v: jaxpool.global_max_pool(v, spatial_dims=2, mask=jnp.asarray(mask)), x
    )
    np.testing.assert_array_equal(got, expected.detach().numpy())
    cotangent = rng.standard_normal(got.shape).astype(np.float32)
    (expected_grad,) = torch.autograd.grad(expected, t_x, torch.tensor(cotangent))
    (grad,) = vjp(jnp.asarray(cotangent))
    np.testing.assert_array_equal(grad, np.moveaxis(expected_grad.numpy(), 1, -1))


# ----------------------------------------------------------------------------------
# The empty-row rule, elements that are not kept, and a NumPy reference


def _numpy_reference(op, x, mask):
    """``x (N, S, C)``, ``mask (N, S)``, in float64: empty rows give 0."""
    x = x.astype(np.float64)
    m = mask[..., None]
    count = m.sum(1)
    kept = count > 0
    mean = np.where(m, x, 0).sum(1) / np.maximum(count, 1)
    maximum = np.where(kept, np.where(m, x, -np.inf).max(1), 0)
    if op == "avg":
        return mean
    if op == "max":
        return maximum
    if op == "hybrid":
        return ALPHA * maximum + (1 - ALPHA) * mean
    if op == "gem":
        power = np.where(m, np.maximum(x, EPS) ** P, 0).sum(1) / np.maximum(count, 1)
        return np.where(kept, power ** (1 / P), 0)
    if op == "avg_max":
        return 0.5 * (mean + maximum)
    return np.concatenate([mean, maximum], -1)


@pytest.mark.parametrize("op", OPS)
def test_a_row_with_nothing_kept_gives_zero_and_a_zero_gradient(op):
    rng = np.random.default_rng(2)
    x = np.abs(rng.standard_normal((3, 6, 2))).astype(np.float32) + 0.1
    mask = np.array([[True, False, True, False, False, True], [False] * 6, [True] * 6])
    got = _pool(op, jnp.asarray(x), jnp.asarray(mask), n=1)
    np.testing.assert_allclose(got, _numpy_reference(op, x, mask), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got[1], 0)

    def loss(x, alpha, p):
        return jnp.sum(jnp.sin(_pool(op, x, jnp.asarray(mask), n=1, alpha=alpha, p=p)[1]))

    grads = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(x), jnp.float32(ALPHA), jnp.float32(P))
    for grad in grads:
        assert np.all(np.isfinite(grad))
        np.testing.assert_array_equal(grad, 0)


@pytest.mark.parametrize("op", OPS)
def test_elements_that_are_not_kept_take_no_part_even_nan_and_inf(op):
    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_normal((2, 3, 4, 3))).astype(np.float32) + 0.1
    mask = rng.random((2, 3, 4)) < 0.5
    mask[:, 0, 0] = True
    poisoned = x.copy()
    garbage = np.array([np.nan, np.inf, -np.inf, 1e30], np.float32)
    poisoned[~mask] = garbage[rng.integers(0, 4, (~mask).sum())][:, None]

    def value_and_grad(v):
        return jax.value_and_grad(
            lambda v: jnp.sum(_pool(op, v, jnp.asarray(mask), n=2) ** 2))(jnp.asarray(v))

    clean_value, clean_grad = value_and_grad(x)
    value, grad = value_and_grad(poisoned)
    np.testing.assert_array_equal(value, clean_value)
    np.testing.assert_array_equal(grad, clean_grad)
    np.testing.assert_array_equal(np.asarray(grad)[~mask], 0)
    flat = (x.reshape(2, 12, 3), mask.reshape(2, 12))
    np.testing.assert_allclose(_pool(op, jnp.asarray(poisoned), jnp.asarray(mask), n=2),
                               _numpy_reference(op, *flat), rtol=1e-6, atol=1e-7)


def test_a_kept_nan_propagates_as_in_unmasked_pooling():
    x = jnp.array([[[1.0], [jnp.nan], [2.0]]])
    mask = jnp.array([[True, True, False]])
    for op in ("avg", "max"):
        assert np.isnan(_pool(op, x, mask, n=1)[0, 0]), op
    assert not np.isnan(_pool("max", x, jnp.array([[True, False, True]]), n=1)[0, 0])


@pytest.mark.parametrize("op", OPS)
def test_bfloat16_follows_the_numpy_reference(op):
    rng = np.random.default_rng(4)
    x = (np.abs(rng.standard_normal((4, 10, 3))) + 0.1).astype(jnp.bfloat16)
    mask = rng.random((4, 10)) < 0.5
    mask[3] = False
    got = _pool(op, jnp.asarray(x), jnp.asarray(mask), n=1)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float64),
                               _numpy_reference(op, np.asarray(x, np.float32), mask),
                               rtol=1e-2, atol=1e-2)


def test_integer_maximum_with_a_mask():
    x = jnp.array([[[3], [9], [-4]], [[-7], [-2], [5]]], jnp.int32)
    mask = jnp.array([[True, False, True], [False, False, False]])
    got = jaxpool.global_max_pool(x, spatial_dims=1, mask=mask)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, [[3], [0]])


def test_an_all_true_mask_equals_no_mask():
    rng = np.random.default_rng(5)
    x = jnp.asarray(np.abs(rng.standard_normal((2, 5, 6, 3))).astype(np.float32) + 0.1)
    every = jnp.ones((5, 6), bool)
    for op in OPS:
        np.testing.assert_allclose(_pool(op, x, every, n=2), _pool(op, x, None, n=2),
                                   rtol=1e-6, atol=1e-7, err_msg=op)


def test_channels_first_and_keepdims_follow_the_layout():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)  # (N, C, H, W)
    mask = rng.random((2, 4, 5)) < 0.5
    got = jaxpool.global_avg_pool(x, channels_first=True, keepdims=True, mask=mask)
    chex.assert_shape(got, (2, 3, 1, 1))
    last = jaxpool.global_avg_pool(np.moveaxis(x, 1, -1), mask=mask)
    np.testing.assert_allclose(got[:, :, 0, 0], last, rtol=1e-6)


# ----------------------------------------------------------------------------------
# jit, retracing and refusals


class MaskedTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_under_jit_and_without(self):
        x = jnp.arange(12.0).reshape(2, 6, 1)
        mask = jnp.array([[True] * 3 + [False] * 3, [False] * 5 + [True]])
        pool = self.variant(lambda x, m: jaxpool.global_avg_pool(x, spatial_dims=1, mask=m))
        np.testing.assert_array_equal(pool(x, mask), [[1.0], [11.0]])

    def test_a_new_mask_of_the_same_shape_does_not_retrace(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def pool(x, m):
            return jaxpool.global_max_pool(x, spatial_dims=1, mask=m)

        x = jnp.arange(12.0).reshape(2, 6, 1)
        for length in range(1, 6):
            pool(x, jnp.arange(6)[None, :] < length)


@pytest.mark.parametrize("mask, error, match", [
    (np.ones((2, 6), np.int32), TypeError, r"mask must be a boolean array, but got dtype int32"),
    (np.ones((2, 6), np.float32), TypeError, r"mask\.astype\(bool\)"),
    ("yes", TypeError, "mask must be an array, but got 'yes'"),
    (np.ones((2, 5), bool), ValueError, r"without the channel axis, \(2, 6\).*\(2, 5\)"),
    (np.ones((2, 6, 3), bool), ValueError, r"shape \(2, 6, 3\)"),
    (np.ones((3, 6), bool), ValueError, r"\(3, 6\)"),
])
def test_bad_masks_are_refused_before_any_computation(mask, error, match):
    x = jax.ShapeDtypeStruct((2, 6, 3), jnp.float32)
    for op in OPS:
        with pytest.raises(error, match=match):
            jax.eval_shape(lambda v, op=op: _pool(op, v, mask, n=1), x)


def test_a_mask_is_refused_with_indices_and_with_windowed_gem():
    x = jnp.ones((2, 6, 3))
    with pytest.raises(ValueError, match="return_indices=True cannot be combined with a mask"):
        jaxpool.global_max_pool(x, spatial_dims=1, return_indices=True, mask=jnp.ones((2, 6), bool))
    with pytest.raises(ValueError, match=r"mask only applies to the global form .*kernel_size=2"):
        jaxpool.gem_pool(x, 3.0, 2, spatial_dims=1, mask=jnp.ones((2, 6), bool))
