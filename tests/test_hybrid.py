"""Tests of jaxpool._hybrid: hybrid max/avg, gated, GeM, SoftPool and avg+max heads.

The oracle is PyTorch computing each formula directly: ``a*F.max_pool + (1-a)*F.avg_pool``
for hybrid pooling, ``F.avg_pool(x.clamp(eps)**p)**(1/p)`` for GeM, and a softmax / gate
over explicitly unfolded windows for SoftPool and gated pooling. Values and gradients
(for the input and every learnable argument) are compared on hypothesis-drawn
configurations, in both layouts.
"""

import functools
import math

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
from tests.oracle import FamilyTestCase, from_torch_layout, to_torch_layout

# Every test function runs once per kernel family (conftest.py); the TestCase classes
# have a subclass per family.
PER_KERNEL_FAMILY = True

RTOL = 1e-5
ATOL = 1e-6
SIXTEEN = jnp.arange(1.0, 17.0).reshape(4, 4, 1)

_TORCH_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_HYBRID = {1: jaxpool.hybrid_pool1d, 2: jaxpool.hybrid_pool2d, 3: jaxpool.hybrid_pool3d}


def _close(actual, expected, what, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol, err_msg=what)


# ----------------------------------------------------------------------------------
# Strategies


@st.composite
def pool_case(draw, *, max_dims=3, paddable=True, ceil=True):
    """A torch-valid pooling configuration and an input shape in jaxpool's layout."""
    n = draw(st.integers(1, max_dims))
    max_kernel = {1: 4, 2: 3, 3: 2}[n]
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel) if paddable else (0,) * n
    sizes = tuple(draw(st.integers(k, k + {1: 6, 2: 4, 3: 2}[n])) for k in kernel)
    batch = draw(st.sampled_from([(), (2,), (1, 2)]))
    channels = draw(st.integers(1, 3))
    channels_first = draw(st.booleans())
    shape = (*batch, channels, *sizes) if channels_first else (*batch, *sizes, channels)
    return dict(
        n=n, kernel=kernel, stride=stride, padding=padding, shape=shape, batch=batch,
        channels=channels, channels_first=channels_first,
        ceil_mode=draw(st.booleans()) if ceil else False,
        count_include_pad=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def _torch_input(x, case):
    return torch.tensor(to_torch_layout(x, case["n"], case["channels_first"]), requires_grad=True)


def _from_torch(t, case):
    return from_torch_layout(t.detach().numpy(), case["batch"], case["n"], case["channels_first"])


def _vjp(function, primals, cotangent):
    out, vjp = jax.vjp(function, *primals)
    return out, vjp(jnp.asarray(cotangent))


# ----------------------------------------------------------------------------------
# Hybrid pooling


def test_seed_example_even_mix():
    out = jaxpool.hybrid_pool2d(SIXTEEN, 0.5, 2, 2)[..., 0]
    np.testing.assert_array_equal(out, 0.5 * np.array([[6, 8], [14, 16]]) + 0.5 * np.array([[3.5, 5.5], [11.5, 13.5]]))


@pytest.mark.parametrize("alpha, expected", [(1.0, "max"), (0.0, "avg"), (1, "max"), (0, "avg")])
def test_extreme_mixes_are_max_and_average_pooling(alpha, expected):
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 3))
    reference = jaxpool.max_pool2d(x, 3, 2, 1) if expected == "max" else jaxpool.avg_pool2d(x, 3, 2, 1)
    chex.assert_trees_all_equal(jaxpool.hybrid_pool2d(x, alpha, 3, 2, 1), reference)


@settings(max_examples=20)
@given(case=pool_case(), alpha_kind=st.sampled_from(["scalar", "channel", "example", "output"]))
def test_hybrid_pool_matches_torch_formula(case, alpha_kind):
    n, cf = case["n"], case["channels_first"]
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]).astype(np.float32)
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"], case["count_include_pad"])
    t_x = _torch_input(x, case)
    t_max = _TORCH_MAX[n](t_x, *args[:3], ceil_mode=args[3])
    out_shape = _from_torch(t_max, case).shape
    channel_axis = len(out_shape) - n - 1 if cf else len(out_shape) - 1
    if alpha_kind == "scalar":
        alpha = np.float32(rng.uniform())
        t_alpha = torch.tensor(alpha, requires_grad=True)
        t_mix = t_alpha
    elif alpha_kind == "channel":
        alpha = rng.uniform(size=case["channels"]).astype(np.float32)
        t_alpha = torch.tensor(alpha, requires_grad=True)
        t_mix = t_alpha.view(1, -1, *(1,) * n)
    else:
        # Per example and channel (attention), or a full output-shaped alpha.
        alpha_shape = list(out_shape)
        if alpha_kind == "example":
            for axis in range(len(out_shape)):
                if axis != channel_axis and axis >= len(case["batch"]):
                    alpha_shape[axis] = 1
        alpha = rng.uniform(size=alpha_shape).astype(np.float32)
        t_alpha = torch.tensor(to_torch_layout(alpha, n, cf), requires_grad=True)
        t_mix = t_alpha
    t_out = t_mix * t_max + (1 - t_mix) * _TORCH_AVG[n](t_x, *args)
    cotangent = rng.standard_normal(out_shape).astype(np.float32)
    t_gx, t_galpha = torch.autograd.grad(
        t_out, (t_x, t_alpha), torch.tensor(to_torch_layout(cotangent, n, cf))
    )

    pool = functools.partial(_HYBRID[n], kernel_size=case["kernel"], stride=case["stride"],
                             padding=case["padding"], ceil_mode=case["ceil_mode"],
                             count_include_pad=case["count_include_pad"], channels_first=cf)
    out, (gx, galpha) = _vjp(lambda v, a: pool(v, a), (jnp.asarray(x), jnp.asarray(alpha)), cotangent)
    chex.assert_shape(out, out_shape)
    _close(out, _from_torch(t_out, case), "forward")
    _close(gx, _from_torch(t_gx, case), "input gradient")
    if alpha_kind in ("scalar", "channel"):
        expected_galpha = t_galpha.numpy()
    else:
        expected_galpha = from_torch_layout(t_galpha.numpy(), case["batch"], n, cf)
    _close(galpha, expected_galpha, "alpha gradient", rtol=1e-4, atol=1e-5)


def test_max_part_of_the_gradient_goes_to_the_first_maximum():
    x = jnp.ones((4, 4, 1))
    grad = jax.grad(lambda v: jaxpool.hybrid_pool2d(v, 0.5, 2).sum())(x)[..., 0]
    expected = np.full((4, 4), 0.125)
    expected[::2, ::2] += 0.5
    np.testing.assert_array_equal(grad, expected)


def test_per_channel_alpha_wins_over_broadcasting_along_width_in_channels_first():
    # (C,) with C == W: read per channel, not as a broadcast along W.
    x = jax.random.normal(jax.random.key(1), (1, 2, 4, 4))
    alpha = jnp.array([0.0, 1.0])
    out = jaxpool.hybrid_pool2d(x, alpha, 2, channels_first=True)
    chex.assert_trees_all_close(out[:, 0], jaxpool.avg_pool2d(x, 2, channels_first=True)[:, 0])
    chex.assert_trees_all_close(out[:, 1], jaxpool.max_pool2d(x, 2, channels_first=True)[:, 1])


def test_layouts_agree():
    x = jax.random.normal(jax.random.key(2), (2, 7, 9, 4))
    alpha = jnp.linspace(0.0, 1.0, 4)
    last = jaxpool.hybrid_pool2d(x, alpha, 3, 2, 1, ceil_mode=True)
    first = jaxpool.hybrid_pool2d(jnp.moveaxis(x, -1, 1), alpha, 3, 2, 1, ceil_mode=True, channels_first=True)
    chex.assert_trees_all_close(jnp.moveaxis(first, 1, -1), last)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_narrow_floats_mix_in_float32(dtype):
    x = jax.random.normal(jax.random.key(3), (2, 8, 8, 3)).astype(dtype)
    alpha = jnp.array([0.2, 0.5, 0.9], jnp.float32)
    out = jaxpool.hybrid_pool2d(x, alpha, 3, 2, 1)
    assert out.dtype == dtype
    # Within one rounding of the narrow type (of the terms, as well as of the result).
    expected = jaxpool.hybrid_pool2d(x.astype(jnp.float32), alpha, 3, 2, 1)
    chex.assert_trees_all_close(out.astype(jnp.float32), expected, rtol=2**-7, atol=2**-6)
    grad = jax.grad(lambda a: jaxpool.hybrid_pool2d(x, a, 2).astype(jnp.float32).sum())(alpha)
    assert grad.dtype == jnp.float32


def test_global_hybrid_pool_matches_torch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 6, 4)).astype(np.float32)
    attention = rng.uniform(size=(3, 4)).astype(np.float32)
    t_x = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
    t_a = torch.tensor(attention, requires_grad=True)
    t_out = t_a * F.adaptive_max_pool2d(t_x, 1).flatten(1) + (1 - t_a) * t_x.mean(dim=(2, 3))
    cotangent = rng.standard_normal((3, 4)).astype(np.float32)
    t_gx, t_ga = torch.autograd.grad(t_out, (t_x, t_a), torch.tensor(cotangent))
    out, (gx, ga) = _vjp(jaxpool.global_hybrid_pool, (jnp.asarray(x), jnp.asarray(attention)), cotangent)
    _close(out, t_out.detach().numpy(), "forward")
    _close(gx, np.moveaxis(t_gx.numpy(), 1, -1), "input gradient")
    _close(ga, t_ga.numpy(), "alpha gradient")
    kept = jaxpool.global_hybrid_pool(jnp.moveaxis(x, -1, 1), attention[:, :, None, None], keepdims=True,
                                      channels_first=True)
    chex.assert_shape(kept, (3, 4, 1, 1))
    chex.assert_trees_all_close(kept[:, :, 0, 0], out, rtol=RTOL)
    chex.assert_shape(jaxpool.global_hybrid_pool(x[:, :, 0], 0.3, spatial_dims=1), (3, 4))


class TransformTest(FamilyTestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_variants_agree(self):
        x = jax.random.normal(jax.random.key(5), (2, 9, 9, 3))
        alpha = jnp.array([0.1, 0.5, 0.9])
        pool = self.variant(lambda v, a: jaxpool.hybrid_pool2d(v, a, 3, 2, 1))
        mix = alpha.reshape(1, 1, 1, 3)
        expected = mix * jaxpool.max_pool2d(x, 3, 2, 1) + (1 - mix) * jaxpool.avg_pool2d(x, 3, 2, 1)
        chex.assert_trees_all_close(pool(x, alpha), expected, rtol=1e-6, atol=1e-6)
        gem = self.variant(lambda v, p: jaxpool.gem_pool(v, p, 2))
        chex.assert_shape(gem(x, jnp.array(3.0)), (2, 4, 4, 3))
        soft = self.variant(lambda v: jaxpool.soft_pool(v, 3, 2, 1))
        chex.assert_shape(soft(x), (2, 5, 5, 3))
        gated = self.variant(lambda v, w: jaxpool.gated_pool(v, w, 2))
        chex.assert_shape(gated(x, jnp.ones((2, 2, 3))), (2, 4, 4, 3))

    def test_no_retracing_for_new_values(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def pooled(v, a, p, w):
            return (jaxpool.hybrid_pool2d(v, a, 2) + jaxpool.gem_pool(v, p, 2)
                    + jaxpool.soft_pool(v, 2) + jaxpool.gated_pool(v, w, 2))

        x = jnp.ones((2, 8, 8, 3))
        for scale in (1.0, 2.0, 3.0):
            pooled(x * scale, jnp.full((3,), scale / 4), jnp.array(scale), jnp.full((2, 2), scale))

    def test_vmap_over_alpha(self):
        x = jax.random.normal(jax.random.key(6), (2, 6, 6, 3))
        alphas = jnp.linspace(0.0, 1.0, 5)
        mapped = jax.vmap(lambda a: jaxpool.hybrid_pool2d(x, a, 2))(alphas)
        chex.assert_shape(mapped, (5, 2, 3, 3, 3))
        chex.assert_trees_all_close(mapped[2], jaxpool.hybrid_pool2d(x, 0.5, 2))

    def test_zero_size_batch(self):
        chex.assert_shape(jaxpool.hybrid_pool2d(jnp.zeros((0, 6, 6, 3)), 0.5, 2), (0, 3, 3, 3))


# ----------------------------------------------------------------------------------
# A direct torch implementation of windowed formulas (any rank), for soft and gated


def _torch_windows(t, case, fill):
    """``(N, C, *out, K)``: each window's elements (row-major), padding read as ``fill``."""
    n = case["n"]
    out = [
        jaxpool.pool_output_shape(t.shape[2 + i], case["kernel"][i], case["stride"][i], case["padding"][i],
                                  ceil_mode=case["ceil_mode"])
        for i in range(n)
    ]
    pads = []
    for i in reversed(range(n)):
        k, s, p, length = case["kernel"][i], case["stride"][i], case["padding"][i], t.shape[2 + i]
        extra = max(0, (out[i] - 1) * s + k - (length + 2 * p))
        pads += [p, p + extra]
    padded = F.pad(t, pads, value=fill)
    for i in range(n):
        padded = padded.unfold(2 + i, case["kernel"][i], case["stride"][i])
        padded = padded.narrow(2 + i, 0, out[i])
    return padded.reshape(*padded.shape[: 2 + n], -1)


# ----------------------------------------------------------------------------------
# SoftPool


def _torch_soft_pool(t, case):
    weights = torch.softmax(_torch_windows(t, case, -math.inf), dim=-1)
    return (weights * _torch_windows(t, case, 0.0)).sum(-1)


@settings(max_examples=10)
@given(case=pool_case())
def test_soft_pool_matches_paper_formula(case):
    n, cf = case["n"], case["channels_first"]
    rng = np.random.default_rng(case["seed"])
    x = (3 * rng.standard_normal(case["shape"])).astype(np.float32)
    t_x = _torch_input(x, case)
    t_out = _torch_soft_pool(t_x, case)
    out_shape = _from_torch(t_out, case).shape
    cotangent = rng.standard_normal(out_shape).astype(np.float32)
    (t_gx,) = torch.autograd.grad(t_out, (t_x,), torch.tensor(to_torch_layout(cotangent, n, cf)))
    pool = functools.partial(jaxpool.soft_pool, kernel_size=case["kernel"], stride=case["stride"],
                             padding=case["padding"], ceil_mode=case["ceil_mode"], spatial_dims=n,
                             channels_first=cf)
    out, (gx,) = _vjp(pool, (jnp.asarray(x),), cotangent)
    _close(out, _from_torch(t_out, case), "forward", atol=1e-5)
    _close(gx, _from_torch(t_gx, case), "input gradient", atol=1e-5)


def test_soft_pool_is_stable_for_large_values():
    # exp(1000) overflows; the window maximum keeps it finite. Windows far below the
    # plane's maximum (exp(-2000) underflows) still get their own weights.
    x = jnp.array([[1000.0, 999.0], [-1000.0, -1001.0]]).reshape(4, 1)
    out = jaxpool.soft_pool(x, 2, spatial_dims=1)[:, 0]
    weight = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(out, [1000 * weight + 999 * (1 - weight), -1000 * weight - 1001 * (1 - weight)],
                               rtol=1e-6)
    assert np.isfinite(jax.grad(lambda v: jaxpool.soft_pool(v, 2, spatial_dims=1).sum())(x)).all()


def test_global_soft_pool_matches_torch():
    rng = np.random.default_rng(7)
    x = (4 * rng.standard_normal((2, 5, 5, 3))).astype(np.float32)
    t_x = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
    flat = t_x.flatten(2)
    t_out = (torch.softmax(flat, -1) * flat).sum(-1)
    (t_gx,) = torch.autograd.grad(t_out.sum(), t_x)
    out = jaxpool.soft_pool(x)
    gx = jax.grad(lambda v: jaxpool.soft_pool(v).sum())(jnp.asarray(x))
    _close(out, t_out.detach().numpy(), "forward", atol=1e-5)
    _close(gx, np.moveaxis(t_gx.numpy(), 1, -1), "gradient", atol=1e-5)
    chex.assert_shape(jaxpool.soft_pool(x, keepdims=True), (2, 1, 1, 3))


# ----------------------------------------------------------------------------------
# Gated pooling


@settings(max_examples=10)
@given(case=pool_case(), per_channel=st.booleans())
def test_gated_pool_matches_torch_formula(case, per_channel):
    n, cf = case["n"], case["channels_first"]
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]).astype(np.float32)
    weight_shape = case["kernel"] + ((case["channels"],) if per_channel else ())
    weight = rng.standard_normal(weight_shape).astype(np.float32)
    t_x = _torch_input(x, case)
    t_w = torch.tensor(weight, requires_grad=True)
    windows = _torch_windows(t_x, case, 0.0)  # (N, C, *out, K)
    flat_w = t_w.reshape(-1) if not per_channel else t_w.reshape(-1, case["channels"]).T
    if per_channel:
        gate_w = flat_w.reshape(1, case["channels"], *(1,) * n, -1)
    else:
        gate_w = flat_w.reshape(*(1,) * (n + 2), -1)
    gate = torch.sigmoid((windows * gate_w).sum(-1))
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"])
    t_out = gate * _TORCH_MAX[n](t_x, *args[:3], ceil_mode=args[3]) + (1 - gate) * _TORCH_AVG[n](
        t_x, *args, case["count_include_pad"]
    )
    out_shape = _from_torch(t_out, case).shape
    cotangent = rng.standard_normal(out_shape).astype(np.float32)
    t_gx, t_gw = torch.autograd.grad(t_out, (t_x, t_w), torch.tensor(to_torch_layout(cotangent, n, cf)))
    pool = functools.partial(jaxpool.gated_pool, kernel_size=case["kernel"], stride=case["stride"],
                             padding=case["padding"], ceil_mode=case["ceil_mode"],
                             count_include_pad=case["count_include_pad"], spatial_dims=n, channels_first=cf)
    out, (gx, gw) = _vjp(pool, (jnp.asarray(x), jnp.asarray(weight)), cotangent)
    _close(out, _from_torch(t_out, case), "forward", atol=1e-5)
    _close(gx, _from_torch(t_gx, case), "input gradient", atol=1e-5)
    _close(gw, t_gw.numpy(), "gate weight gradient", rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------
# GeM


@settings(max_examples=10)
@given(case=pool_case(max_dims=2), p=st.floats(0.5, 6.0), is_global=st.booleans())
def test_gem_pool_matches_torch(case, p, is_global):
    n, cf = case["n"], case["channels_first"]
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]).astype(np.float32)
    t_x = _torch_input(x, case)
    t_p = torch.tensor([p], dtype=torch.float32, requires_grad=True)
    powered = t_x.clamp(min=1e-6).pow(t_p)
    if is_global:
        t_out = F.adaptive_avg_pool2d(powered, 1) if n == 2 else F.adaptive_avg_pool1d(powered, 1)
        t_out = t_out.pow(1.0 / t_p).flatten(1)
        expected = t_out.detach().numpy().reshape(*case["batch"], case["channels"])
    else:
        args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"], case["count_include_pad"])
        t_out = _TORCH_AVG[n](powered, *args).pow(1.0 / t_p)
        expected = _from_torch(t_out, case)
    cotangent = rng.standard_normal(expected.shape).astype(np.float32)
    t_cot = torch.tensor(cotangent.reshape(t_out.shape) if is_global else to_torch_layout(cotangent, n, cf))
    t_gx, t_gp = torch.autograd.grad(t_out, (t_x, t_p), t_cot)
    if is_global:
        pool = functools.partial(jaxpool.gem_pool, spatial_dims=n, channels_first=cf)
    else:
        pool = functools.partial(jaxpool.gem_pool, kernel_size=case["kernel"], stride=case["stride"],
                                 padding=case["padding"], ceil_mode=case["ceil_mode"],
                                 count_include_pad=case["count_include_pad"], spatial_dims=n,
                                 channels_first=cf)
    out, (gx, gp) = _vjp(pool, (jnp.asarray(x), jnp.float32(p)), cotangent)
    _close(out, expected, "forward", rtol=1e-5, atol=1e-6)
    _close(gx, _from_torch(t_gx, case), "input gradient", rtol=1e-4, atol=1e-5)
    _close(gp, t_gp.numpy()[0], "p gradient", rtol=1e-4, atol=1e-5)


def test_gem_with_p_one_is_the_clamped_mean_and_large_p_approaches_the_max():
    x = jax.random.uniform(jax.random.key(8), (2, 6, 6, 3), minval=0.1, maxval=1.0)
    chex.assert_trees_all_close(jaxpool.gem_pool(x, 1.0), jnp.mean(x, axis=(1, 2)), rtol=1e-6)
    # (1/36) ** (1/200) = 0.982: the maximum dominates.
    chex.assert_trees_all_close(jaxpool.gem_pool(x, 200.0), jnp.max(x, axis=(1, 2)), rtol=0.02)
    assert jaxpool.gem_pool(x.astype(jnp.bfloat16), 3.0, 2).dtype == jnp.bfloat16


# ----------------------------------------------------------------------------------
# avg+max heads


def test_avg_max_heads_match_timm_formulas():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 7, 7, 5)).astype(np.float32)
    t = torch.tensor(np.moveaxis(x, -1, 1))
    avg = F.adaptive_avg_pool2d(t, 1).flatten(1)
    mx = F.adaptive_max_pool2d(t, 1).flatten(1)
    _close(jaxpool.global_avg_max_pool(x), (0.5 * (avg + mx)).numpy(), "avgmax")
    _close(jaxpool.global_cat_avg_max_pool(x), torch.cat([avg, mx], 1).numpy(), "catavgmax")
    first = jaxpool.global_cat_avg_max_pool(np.moveaxis(x, -1, 1), keepdims=True, channels_first=True)
    chex.assert_shape(first, (2, 10, 1, 1))
    _close(first[:, :, 0, 0], torch.cat([avg, mx], 1).numpy(), "catavgmax channels-first")
    chex.assert_shape(jaxpool.global_avg_max_pool(x, keepdims=True), (2, 1, 1, 5))
    grad = jax.grad(lambda v: jaxpool.global_avg_max_pool(v).sum())(jnp.asarray(x))
    t.requires_grad_(True)
    (t_grad,) = torch.autograd.grad((0.5 * (F.adaptive_avg_pool2d(t, 1) + F.adaptive_max_pool2d(t, 1))).sum(), t)
    _close(grad, np.moveaxis(t_grad.numpy(), 1, -1), "avgmax gradient")


# ----------------------------------------------------------------------------------
# Bad input


X2 = jnp.zeros((1, 6, 6, 3))

BAD_INPUTS = [
    (lambda: jaxpool.hybrid_pool2d(X2, jnp.ones(5), 2), ValueError,
     r"alpha must be a scalar, a per-channel vector of shape \(C,\) = \(3,\), or an array broadcastable "
     r"to the output shape \(1, 3, 3, 3\), but got alpha of shape \(5,\)"),
    (lambda: jaxpool.hybrid_pool2d(X2, jnp.ones((2, 3, 3, 3)), 2), ValueError, r"alpha of shape \(2, 3, 3, 3\)"),
    (lambda: jaxpool.hybrid_pool2d(X2, jnp.ones((1, 1, 1, 1, 3)), 2), ValueError, r"alpha of shape \(1, 1, 1, 1, 3\)"),
    (lambda: jaxpool.hybrid_pool2d(X2, jnp.ones(3, jnp.int32), 2), TypeError, "alpha must have a floating dtype.*int32"),
    (lambda: jaxpool.hybrid_pool2d(X2, "half", 2), TypeError, "alpha must be an array or a real number, but got 'half'"),
    (lambda: jaxpool.gem_pool(X2, "3"), TypeError, "p must be an array or a real number, but got '3'"),
    (lambda: jaxpool.hybrid_pool2d(X2.astype(jnp.int32), 0.5, 2), TypeError, "input must have a floating dtype"),
    (lambda: jaxpool.hybrid_pool2d(X2, 0.5, 2, stride=0), ValueError, "stride should be greater than zero, but got stride=0"),
    (lambda: jaxpool.hybrid_pool2d(X2, 0.5, 3, padding=2), ValueError, "pad should be at most half of effective kernel size, but got padding=2"),
    (lambda: jaxpool.hybrid_pool2d(X2, 0.5, 2, count_include_pad=1), TypeError, "count_include_pad must be a bool, but got 1"),
    (lambda: jaxpool.hybrid_pool1d(X2, 0.5, (2, 2)), ValueError, r"kernel_size must either be a single int, but got kernel_size=\(2, 2\)"),
    (lambda: jaxpool.hybrid_pool3d(X2[0], 0.5, 2), ValueError, r"at least 4 dimensions, but got shape \(6, 6, 3\)"),
    (lambda: jaxpool.global_hybrid_pool(X2, jnp.ones((1, 4))), ValueError, r"output shape \(1, 3\), but got alpha of shape \(1, 4\)"),
    (lambda: jaxpool.global_hybrid_pool(X2, 0.5, spatial_dims=4), ValueError, "spatial_dims must be 1, 2 or 3, but got spatial_dims=4"),
    (lambda: jaxpool.gem_pool(X2, jnp.ones(2)), ValueError, r"p must be a scalar \(shape \(\) or \(1,\)\), but got p of shape \(2,\)"),
    (lambda: jaxpool.gem_pool(X2, 3.0, eps=0.0), ValueError, "eps must be positive, but got eps=0.0"),
    (lambda: jaxpool.gem_pool(X2, 3.0, eps="small"), TypeError, "eps must be a real number, but got 'small'"),
    (lambda: jaxpool.gem_pool(X2, 3.0, stride=2), ValueError, r"stride only applies to windowed pooling, not to the global form \(kernel_size=None\), but got stride=2"),
    (lambda: jaxpool.gem_pool(X2, 3.0, padding=1), ValueError, "padding only applies to windowed pooling.*padding=1"),
    (lambda: jaxpool.soft_pool(X2, ceil_mode=True), ValueError, "ceil_mode only applies to windowed pooling.*ceil_mode=True"),
    (lambda: jaxpool.soft_pool(X2, 2, keepdims=True), ValueError, "keepdims=True only applies to the global form.*kernel_size=2"),
    (lambda: jaxpool.soft_pool(X2[0], 2, spatial_dims=3), ValueError, r"at least 4 dimensions, but got shape \(6, 6, 3\)"),
    (lambda: jaxpool.gated_pool(X2, jnp.ones((3, 3)), 2), ValueError,
     r"gate_weight must have shape kernel_size = \(2, 2\) \(per layer\) or kernel_size \+ \(C,\) = \(2, 2, 3\) \(per channel\), but got gate_weight of shape \(3, 3\)"),
    (lambda: jaxpool.gated_pool(X2, jnp.ones((2, 2), jnp.int32), 2), TypeError, "gate_weight must have a floating dtype"),
    (lambda: jaxpool.global_cat_avg_max_pool(X2, keepdims="yes"), TypeError, "keepdims must be a bool, but got 'yes'"),
    (lambda: jaxpool.global_avg_max_pool(jnp.zeros((6, 6))), ValueError, r"at least 3 dimensions, but got shape \(6, 6\)"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


class TransformTestReduceWindow(TransformTest):
    """The same transforms with the ``reduce_window`` kernel family."""

    family = "reduce_window"
