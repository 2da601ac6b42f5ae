"""Tests of jaxpool.nnx._attention: the NNX AttentionPoolLatent and AttentionPool2d hold
the linen twins' parameters (names, shapes), take timm's weights through
jaxpool.nnx.load_variables and then give timm's outputs and input gradients, agree with
the linen modules, and refuse what they refuse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxpool
import jaxpool.nnx as jpn
from jaxpool import torch_compat
from tests import attention_oracle as oracle
from tests.attention_oracle import LATENT_CASES, POOL2D_CASES, assert_close
from tests.nnx_helpers import assert_twins_agree, nnx_twin

C = oracle.CHANNELS


def _shapes(tree):
    return jax.tree.map(lambda leaf: tuple(np.shape(leaf)), tree)


@pytest.mark.parametrize("case", sorted(LATENT_CASES))
def test_latent_holds_the_linen_twins_parameters(case):
    options = LATENT_CASES[case]
    module = nnx.eval_shape(lambda: jpn.AttentionPoolLatent(C, **options, rngs=nnx.Rngs(0)))
    linen = jax.eval_shape(jaxpool.AttentionPoolLatent(**options).init, jax.random.key(0),
                           jnp.zeros((2, 12, C)))
    assert _shapes(jpn.variables(module)) == _shapes(linen)


@pytest.mark.parametrize("case", sorted(POOL2D_CASES))
def test_pool2d_holds_the_linen_twins_parameters(case):
    options = POOL2D_CASES[case]
    module = nnx.eval_shape(lambda: jpn.AttentionPool2d(C, **options, rngs=nnx.Rngs(0)))
    linen = jax.eval_shape(jaxpool.AttentionPool2d(**options).init, jax.random.key(0),
                           jnp.zeros((2, 7, 7, C)))
    assert _shapes(jpn.variables(module)) == _shapes(linen)


@pytest.mark.parametrize("case", ["defaults", "latents2-unpooled", "qk_norm-layernorm-1e-6",
                                  "no-q_proj-no-bias", "pos_embed"])
def test_latent_with_timms_weights_equals_timm_and_its_linen_twin(case):
    options = LATENT_CASES[case]
    module = oracle.timm_latent(**options)
    variables = torch_compat.attention_pool_latent_variables(module)
    head = nnx_twin(lambda: jpn.AttentionPoolLatent(C, **options, rngs=nnx.Rngs(0)), variables)
    x = np.random.default_rng(0).standard_normal((3, 12, C)).astype(np.float32)
    mask = np.arange(12)[None, :] < np.array([12, 6, 0])[:, None]
    cotangent = np.ones(oracle.run(module, x)[0].shape, np.float32)
    expected, expected_grad = oracle.run(module, x, cotangent, attn_mask=oracle.key_mask(mask))
    got, vjp = jax.vjp(lambda v: head(v, mask=mask), x)
    assert_close(got, expected)
    assert_close(vjp(jnp.asarray(cotangent))[0], expected_grad)
    linen = jaxpool.AttentionPoolLatent(**options)
    assert_twins_agree(got, linen.apply(variables, x, mask=mask))


@pytest.mark.parametrize("case", ["defaults", "qkv_separate", "class_token", "unpooled"])
def test_pool2d_with_timms_weights_equals_timm_and_its_linen_twin(case):
    options = POOL2D_CASES[case]
    module = oracle.timm_pool2d(**options)
    variables = torch_compat.attention_pool_2d_variables(module)
    head = nnx_twin(lambda: jpn.AttentionPool2d(C, **options, rngs=nnx.Rngs(0)), variables)
    x = np.random.default_rng(1).standard_normal((2, 9, 5, C)).astype(np.float32)
    expected, _ = oracle.run(module, x)
    cotangent = np.ones(expected.shape, np.float32)
    _, expected_grad = oracle.run(module, x, cotangent)
    got, vjp = jax.vjp(head, x)
    unpooled = options.get("pool_type") == ""
    assert_close(got, np.moveaxis(expected, 1, -1) if unpooled else expected)
    assert_close(vjp(jnp.ones(got.shape))[0], expected_grad)
    assert_twins_agree(got, jaxpool.AttentionPool2d(**options).apply(variables, x))


def test_the_issues_calls_equal_timm():
    x = np.random.default_rng(2).standard_normal((2, 7, 7, 64)).astype(np.float32)
    latent = jpn.AttentionPoolLatent(in_features=64, num_heads=4, rngs=nnx.Rngs(0))
    timm_latent = oracle.timm_latent(64, num_heads=4)
    jpn.load_variables(latent, torch_compat.attention_pool_latent_variables(timm_latent))
    tokens = x.reshape(2, 49, 64)
    assert_close(latent(tokens), oracle.run(timm_latent, tokens)[0])
    pool2d = jpn.AttentionPool2d(in_features=64, feat_size=(7, 7), num_heads=4,
                                 rngs=nnx.Rngs(0))
    timm_pool2d = oracle.timm_pool2d(64, feat_size=(7, 7), num_heads=4)
    jpn.load_variables(pool2d, torch_compat.attention_pool_2d_variables(timm_pool2d))
    assert_close(pool2d(x), oracle.run(timm_pool2d, x)[0])


def test_initialised_weights_run_in_the_linen_twin_and_under_nnx_jit():
    head = jpn.AttentionPoolLatent(C, num_heads=4, qk_norm=True, rngs=nnx.Rngs(3))
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 8, C)), jnp.float32)
    mask = jnp.arange(8) < 5
    jitted = nnx.jit(lambda module, x, mask: module(x, mask=mask))(head, x, mask)
    linen = jaxpool.AttentionPoolLatent(num_heads=4, qk_norm=True)
    assert_twins_agree(jitted, linen.apply(jpn.variables(head), x, mask=mask))

    def loss(module, x):
        return jnp.sum(module(x) ** 2)

    grads = jax.tree.leaves(nnx.grad(loss)(head, x))
    assert len(grads) == len(jax.tree.leaves(jpn.variables(head)))
    assert all(bool(jnp.all(jnp.isfinite(grad))) and bool(jnp.any(grad != 0)) for grad in grads)


def test_refusals_at_construction_and_call():
    with pytest.raises(ValueError, match=r"initialises parameters randomly: pass rngs"):
        jpn.AttentionPoolLatent(C, num_heads=4)
    with pytest.raises(ValueError, match=r"embed_dim=64 must be divisible by num_heads=5"):
        jpn.AttentionPoolLatent(C, num_heads=5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"drop_rate=0\.2: dropout is not supported"):
        jpn.AttentionPool2d(C, drop_rate=0.2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features must be at least 1"):
        jpn.AttentionPool2d(0, rngs=nnx.Rngs(0))
    head = jpn.AttentionPool2d(C, feat_size=4, num_heads=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"expected an input with in_features=64 channels"):
        head(jnp.ones((1, 4, 4, 32)))
