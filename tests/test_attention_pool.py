"""Tests of jaxpool._attention_pool: the functional attention pooling ops against timm's
modules themselves (``timm.layers.AttentionPoolLatent`` and ``AttentionPool2d``, weights
through jaxpool.torch_compat), values and input gradients, with and without key masks,
over a spread of timm's options; timm's positional-embedding resize against
``F.interpolate``; the refusals."""

import chex
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxpool
from jaxpool import _attention_pool as attention
from jaxpool import torch_compat
from tests import attention_oracle as oracle
from tests.attention_oracle import (
    BF16_TOLERANCE,
    LATENT_CASES,
    POOL2D_CASES,
    TOLERANCE,
    assert_close,
)


def _latent_op_options(options):
    return dict(num_heads=options.get("num_heads", 8),
                pool_type=options.get("pool_type", "token"),
                norm_layer=options.get("norm_layer") or "layernorm",
                norm_eps=options.get("norm_eps", 1e-5),
                act_layer=options.get("act_layer", "gelu"))


def _pool2d_op_options(options, channels=oracle.CHANNELS):
    embed = options.get("embed_dim") or channels
    heads = options.get("num_heads") or embed // options.get("head_dim", 64)
    return dict(num_heads=heads, feat_size=options.get("feat_size", 7),
                pool_type=options.get("pool_type", "token"))


def _compare(got, vjp, expected, expected_grad, cotangent, tolerance=TOLERANCE):
    chex.assert_shape(got, expected.shape)
    assert_close(got, expected, tolerance, "output")
    (grad,) = vjp(jnp.asarray(cotangent, got.dtype))
    assert_close(grad, expected_grad, tolerance, "input gradient")


def _lengths_mask(batch, length, lengths):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]


# ----------------------------------------------------------------------------------
# AttentionPoolLatent


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("case", sorted(LATENT_CASES))
def test_latent_equals_timm(case, masked):
    options = LATENT_CASES[case]
    module = oracle.timm_latent(**options)
    params = torch_compat.attention_pool_latent_variables(module)["params"]
    rng = np.random.default_rng(len(case))
    x = rng.standard_normal((3, 12, oracle.CHANNELS)).astype(np.float32)
    mask = _lengths_mask(3, 12, [12, 5, 1]) if masked else None
    forward = {"attn_mask": oracle.key_mask(mask)} if masked else {}
    expected, _ = oracle.run(module, x, **forward)
    cotangent = rng.standard_normal(expected.shape).astype(np.float32)
    expected, expected_grad = oracle.run(module, x, cotangent, **forward)
    got, vjp = jax.vjp(
        lambda v: jaxpool.attention_pool_latent(v, params, mask=mask,
                                                **_latent_op_options(options)), x)
    _compare(got, vjp, expected, expected_grad, cotangent)
    if masked:  # tokens that are not attended get no gradient
        (grad,) = vjp(jnp.asarray(cotangent))
        np.testing.assert_array_equal(np.asarray(grad)[~mask], 0)


def test_latent_row_with_no_key_attended_equals_timm_and_has_a_finite_gradient():
    module = oracle.timm_latent(num_heads=4)
    params = torch_compat.attention_pool_latent_variables(module)["params"]
    x = np.random.default_rng(1).standard_normal((2, 6, oracle.CHANNELS)).astype(np.float32)
    mask = np.array([[True] * 6, [False] * 6])
    cotangent = np.ones((2, oracle.CHANNELS), np.float32)
    expected, expected_grad = oracle.run(module, x, cotangent, attn_mask=oracle.key_mask(mask))
    got, vjp = jax.vjp(
        lambda v: jaxpool.attention_pool_latent(v, params, num_heads=4, mask=mask), x)
    _compare(got, vjp, expected, expected_grad, cotangent)
    (grad,) = vjp(jnp.asarray(cotangent))
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[1], 0)


@pytest.mark.parametrize("channels_first", [False, True])
def test_latent_pools_a_map_as_its_flattened_tokens_with_a_map_mask(channels_first):
    module = oracle.timm_latent(num_heads=4, pos_embed="abs", feat_size=20)
    params = torch_compat.attention_pool_latent_variables(module)["params"]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, oracle.CHANNELS)).astype(np.float32)  # (N, H, W, C)
    mask = rng.random((2, 4, 5)) < 0.5
    tokens = x.reshape(2, 20, oracle.CHANNELS)
    expected, _ = oracle.run(module, tokens, attn_mask=oracle.key_mask(mask.reshape(2, 20)))
    given = np.moveaxis(x, -1, 1) if channels_first else x
    got = jaxpool.attention_pool_latent(given, params, num_heads=4, mask=mask,
                                        channels_first=channels_first)
    assert_close(got, expected)


def test_latent_mask_shared_by_the_batch_broadcasts():
    module = oracle.timm_latent(num_heads=4)
    params = torch_compat.attention_pool_latent_variables(module)["params"]
    x = np.random.default_rng(3).standard_normal((3, 7, oracle.CHANNELS)).astype(np.float32)
    shared = np.arange(7) < 4
    got = jaxpool.attention_pool_latent(x, params, num_heads=4, mask=shared)
    full = jaxpool.attention_pool_latent(x, params, num_heads=4, mask=np.tile(shared, (3, 1)))
    np.testing.assert_array_equal(got, full)


def test_latent_parameter_gradients_equal_timms():
    options = dict(num_heads=4, qk_norm=True, norm_layer="layernorm", latent_len=2,
                   pool_type="avg")
    module = oracle.timm_latent(**options)
    params = torch_compat.attention_pool_latent_variables(module)["params"]
    x = np.random.default_rng(4).standard_normal((2, 9, oracle.CHANNELS)).astype(np.float32)
    out = module(torch.tensor(x))
    cotangent = np.random.default_rng(5).standard_normal(out.shape).astype(np.float32)
    names = [name for name, _ in module.named_parameters()]
    torch_grads = torch.autograd.grad(out, list(module.parameters()), torch.tensor(cotangent))
    expected = torch_compat.attention_pool_latent_variables(
        dict(zip(names, torch_grads, strict=True)))["params"]
    _, vjp = jax.vjp(
        lambda p: jaxpool.attention_pool_latent(x, p, **_latent_op_options(options)), params)
    (grads,) = vjp(jnp.asarray(cotangent))
    chex.assert_trees_all_equal_structs(grads, expected)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True):
        assert_close(got, want)


def _bfloat16_params(module, converter):
    return converter(module.to(torch.bfloat16))["params"]


@pytest.mark.parametrize("case", ["defaults", "qk_norm-layernorm-1e-6", "heads4-latents3-avg"])
def test_latent_bfloat16_is_close_to_timm_in_bfloat16(case):
    options = LATENT_CASES[case]
    module = oracle.timm_latent(**options)
    params = _bfloat16_params(module, torch_compat.attention_pool_latent_variables)
    assert params["kv"]["kernel"].dtype == ml_dtypes.bfloat16
    x = np.random.default_rng(6).standard_normal((2, 12, oracle.CHANNELS))
    x = x.astype(ml_dtypes.bfloat16)
    mask = _lengths_mask(2, 12, [12, 7])
    forward = {"attn_mask": oracle.key_mask(mask)}
    cotangent = np.ones(oracle.run(module, x, **forward)[0].shape, np.float32)
    expected, expected_grad = oracle.run(module, x, cotangent, **forward)
    got, vjp = jax.vjp(lambda v: jaxpool.attention_pool_latent(
        v, params, mask=mask, **_latent_op_options(options)), jnp.asarray(x))
    assert got.dtype == jnp.bfloat16
    _compare(got, vjp, expected, expected_grad, cotangent, tolerance=BF16_TOLERANCE)


# ----------------------------------------------------------------------------------
# AttentionPool2d


# Every case at its feat_size; a few also at sizes that resize the positional embedding
# (up, down, and both at once).
POOL2D_SIZES = [(case, None) for case in sorted(POOL2D_CASES)] + [
    (case, size) for case in ("defaults", "class_token", "unpooled", "grid4x6")
    for size in ((5, 9), (10, 10), (3, 3))
]


@pytest.mark.parametrize("case, size", POOL2D_SIZES,
                         ids=[f"{c}-{s[0]}x{s[1]}" if s else c for c, s in POOL2D_SIZES])
def test_pool2d_equals_timm(case, size):
    options = POOL2D_CASES[case]
    module = oracle.timm_pool2d(**options)
    params = torch_compat.attention_pool_2d_variables(module)["params"]
    feat = options.get("feat_size", 7)
    grid = size or ((feat, feat) if isinstance(feat, int) else feat)
    rng = np.random.default_rng(len(case) + grid[0])
    x = rng.standard_normal((2, *grid, oracle.CHANNELS)).astype(np.float32)
    expected, _ = oracle.run(module, x)
    if options.get("pool_type") == "":  # timm's map output is (N, out, H, W)
        expected = np.moveaxis(expected, 1, -1)
    cotangent = rng.standard_normal(expected.shape).astype(np.float32)
    torch_cotangent = (np.moveaxis(cotangent, -1, 1) if options.get("pool_type") == ""
                       else cotangent)
    _, expected_grad = oracle.run(module, x, torch_cotangent)
    got, vjp = jax.vjp(
        lambda v: jaxpool.attention_pool2d(v, params, **_pool2d_op_options(options)), x)
    _compare(got, vjp, expected, expected_grad, cotangent)


def test_pool2d_without_qkv_bias_equals_timm():
    # timm's own AttentionPool2d(qkv_bias=False) fails in its init_weights (it zeroes the
    # missing bias), so the oracle is a module built with one, then removed.
    module = oracle.timm_pool2d(num_heads=4, qkv_separate=True)
    for layer in (module.q, module.k, module.v):
        layer.bias = None
    params = torch_compat.attention_pool_2d_variables(module)["params"]
    assert "bias" not in params["q"]
    x = np.random.default_rng(10).standard_normal((2, 7, 7, oracle.CHANNELS)).astype(np.float32)
    got = jaxpool.attention_pool2d(x, params, num_heads=4)
    assert_close(got, oracle.run(module, x)[0])


@pytest.mark.parametrize("pool_type", ["token", ""])
def test_pool2d_channels_first_and_pre_logits(pool_type):
    module = oracle.timm_pool2d(num_heads=4, out_features=10, pool_type=pool_type)
    params = torch_compat.attention_pool_2d_variables(module)["params"]
    x = np.random.default_rng(7).standard_normal((2, oracle.CHANNELS, 6, 8)).astype(np.float32)
    for pre_logits in (False, True):
        expected, _ = oracle.run(module, x, channels_first_input=True, pre_logits=pre_logits)
        got = jaxpool.attention_pool2d(x, params, num_heads=4, pool_type=pool_type,
                                       pre_logits=pre_logits, channels_first=True)
        assert_close(got, expected)


def test_pool2d_bfloat16_is_close_to_timm_in_bfloat16():
    module = oracle.timm_pool2d(num_heads=4)
    params = _bfloat16_params(module, torch_compat.attention_pool_2d_variables)
    x = np.random.default_rng(8).standard_normal((2, 7, 7, oracle.CHANNELS))
    x = x.astype(ml_dtypes.bfloat16)
    cotangent = np.ones((2, oracle.CHANNELS), np.float32)
    expected, expected_grad = oracle.run(module, x, cotangent)
    got, vjp = jax.vjp(lambda v: jaxpool.attention_pool2d(v, params, num_heads=4),
                       jnp.asarray(x))
    assert got.dtype == jnp.bfloat16
    _compare(got, vjp, expected, expected_grad, cotangent, tolerance=BF16_TOLERANCE)


@pytest.mark.parametrize("before, after", [(7, 7), (7, 10), (7, 3), (4, 9), (12, 5), (1, 3)])
def test_resize_weights_are_torchs_antialiased_bicubic(before, after):
    grid = np.random.default_rng(before * after).standard_normal((1, 3, before, before + 2))
    grid = grid.astype(np.float64)
    expected = F.interpolate(torch.tensor(grid), size=(after, after + 1), mode="bicubic",
                             antialias=True, align_corners=False).numpy()
    rows = attention.resize_weights(before, after)
    cols = attention.resize_weights(before + 2, after + 1)
    got = np.einsum("hH,wW,ncHW->nchw", rows, cols, grid)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------
# jit, retracing and refusals


class AttentionJitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_latent_under_jit_and_without(self):
        module = oracle.timm_latent(num_heads=4)
        params = torch_compat.attention_pool_latent_variables(module)["params"]
        x = np.random.default_rng(9).standard_normal((2, 5, 64)).astype(np.float32)
        mask = np.array([[True] * 5, [True, True, False, False, False]])
        pool = self.variant(
            lambda v, p, m: jaxpool.attention_pool_latent(v, p, num_heads=4, mask=m))
        expected, _ = oracle.run(module, x, attn_mask=oracle.key_mask(mask))
        assert_close(pool(x, params, mask), expected)

    def test_new_masks_and_weights_do_not_retrace(self):
        @jax.jit
        @chex.assert_max_traces(n=1)
        def pool(x, params, mask):
            return jaxpool.attention_pool_latent(x, params, num_heads=4, mask=mask)

        params = torch_compat.attention_pool_latent_variables(
            oracle.timm_latent(num_heads=4))["params"]
        x = jnp.ones((2, 5, 64))
        for length in range(1, 5):
            params = jax.tree.map(lambda p: p * 1.01, params)
            pool(x, params, jnp.arange(5)[None, :] < length)


def _latent_params():
    return torch_compat.attention_pool_latent_variables(oracle.timm_latent(num_heads=4))["params"]


@pytest.mark.parametrize("change, error, match", [
    (lambda p: p.pop("kv"), ValueError, r"params has no entry 'kv'"),
    (lambda p: p.update(extra=np.zeros(3)), ValueError, r"unknown entries \['extra'\]"),
    (lambda p: p["kv"].update(kernel=np.zeros((64, 64), np.float32)), ValueError,
     r"params\['kv/kernel'\] must have shape \(in, out\) = \(64, 128\)"),
    (lambda p: p.update(latent=np.zeros((1, 1, 64), np.float32)), ValueError,
     r"params\['latent'\] must have shape \(latent_len, latent_dim\)"),
    (lambda p: p.update(q_norm={"scale": np.ones(16, np.float32)}), ValueError,
     "both q_norm and k_norm"),
    (lambda p: p.pop("proj"), ValueError, "'mlp' or 'norm' but no 'proj'"),
    (lambda p: p["q"].update(bias=np.zeros(3, np.float32)), ValueError,
     r"params\['q/bias'\] must have shape \(64,\)"),
])
def test_latent_refuses_a_parameter_tree_that_does_not_fit(change, error, match):
    params = _latent_params()
    change(params)
    with pytest.raises(error, match=match):
        jaxpool.attention_pool_latent(jnp.ones((2, 5, 64)), params, num_heads=4)


@pytest.mark.parametrize("kwargs, x_shape, error, match", [
    (dict(num_heads=5), (2, 5, 64), ValueError, r"C=64 must be divisible by num_heads=5"),
    (dict(num_heads=4, pool_type="max"), (2, 5, 64), ValueError,
     r"pool_type must be one of 'token', 'avg', ''"),
    (dict(num_heads=4, act_layer="tanh"), (2, 5, 64), ValueError, "act_layer must be one of"),
    (dict(num_heads=4, norm_layer="batchnorm"), (2, 5, 64), ValueError, "norm_layer"),
    (dict(num_heads=4, norm_eps=0.0), (2, 5, 64), ValueError, "norm_eps must be positive"),
    (dict(num_heads=4), (5, 64), ValueError, r"expected an input of shape \(N, L or"),
    (dict(num_heads=4, mask=np.ones((2, 5), np.int32)), (2, 5, 64), TypeError,
     "mask must be a boolean array"),
    (dict(num_heads=4, mask=np.ones((2, 4), bool)), (2, 5, 64), ValueError,
     r"mask must have the input's shape without the channel axis, \(2, 5\)"),
])
def test_latent_refuses_bad_options_before_computing(kwargs, x_shape, error, match):
    params = _latent_params()
    with pytest.raises(error, match=match):
        jax.eval_shape(lambda v: jaxpool.attention_pool_latent(v, params, **kwargs),
                       jax.ShapeDtypeStruct(x_shape, jnp.float32))


def test_pool2d_refuses_what_does_not_fit():
    params = torch_compat.attention_pool_2d_variables(oracle.timm_pool2d(num_heads=4))["params"]
    x = jnp.ones((2, 7, 7, 64))
    with pytest.raises(ValueError, match=r"params\['pos_embed'\] must have shape \(37, 64\)"):
        jaxpool.attention_pool2d(x, params, num_heads=4, feat_size=6)
    with pytest.raises(ValueError, match="embed_dim=64 must be divisible by num_heads=3"):
        jaxpool.attention_pool2d(x, params, num_heads=3)
    with pytest.raises(ValueError, match=r"expected an input of shape \(N, H, W, C\)"):
        jaxpool.attention_pool2d(jnp.ones((2, 49, 64)), params, num_heads=4)
    with pytest.raises(ValueError, match="pool_type must be one of 'token', ''"):
        jaxpool.attention_pool2d(x, params, num_heads=4, pool_type="avg")
    separate = {**params, "q": params["qkv"]}
    with pytest.raises(ValueError, match="either 'qkv' or 'q', 'k', 'v'"):
        jaxpool.attention_pool2d(x, separate, num_heads=4)
    with pytest.raises(ValueError, match=r"params has no entry 'qkv'"):
        jaxpool.attention_pool2d(x, {"pos_embed": params["pos_embed"]}, num_heads=4)
