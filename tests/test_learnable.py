"""Tests of jaxpool._learnable (and the seed's block): Flax modules against the seed's PyTorch.

The seed article's modules are defined below in PyTorch, as the article writes them
(with ``C // 4`` made ``max(1, C // 4)`` and a projection shortcut when the block's
channel count changes, where the article's code fails). Their weights are copied
into the Flax modules with :mod:`jaxpool.torch_compat`; outputs and gradients (for the
input and every parameter) must agree within 1e-5, and in training mode the updated
BatchNorm running statistics too.
"""

import pathlib
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import jaxpool
from jaxpool import torch_compat
from jaxpool.models import HybridResNetBlock
from tests.oracle import (
    TOLERANCE,
    HybridPooling,
    HybridPoolingWithAttention,
    TorchHybridResNetBlock,
    nhwc,
    run_torch,
    torch_grads_as_flax,
)


def assert_parameter_gradients_close(actual, expected):
    """Parameter gradients within 1e-5 of torch's, relative to each leaf's largest entry.

    A convolution's or a Dense layer's kernel gradient sums a product over every batch
    element and position; float32 summation order (which XLA releases change, e.g.
    jax 0.4.36's against 0.10's) moves such sums by a few 1e-6 of the largest of them,
    so a fixed absolute tolerance would test XLA's summation order, not the formula.
    """
    chex.assert_trees_all_equal_structs(actual, expected)
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(actual),
                                 jax.tree.leaves(expected), strict=True):
        scale = max(1.0, float(np.max(np.abs(np.asarray(want)))))
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5 * scale,
                                   err_msg=jax.tree_util.keystr(path))


# ----------------------------------------------------------------------------------
# Helpers


def _run_flax(module, variables, x, cotangent, **kwargs):
    """Output, input gradient, params gradient (and the updated batch stats, if any)."""
    mutable = ["batch_stats"] if "batch_stats" in variables else False
    rest = {k: v for k, v in variables.items() if k != "params"}

    def forward(params, inputs):
        result = module.apply({"params": params, **rest}, inputs, mutable=mutable, **kwargs)
        return result if mutable else (result, {})

    out, vjp, updates = jax.vjp(forward, variables["params"], jnp.asarray(x), has_aux=True)
    params_grad, x_grad = vjp(jnp.asarray(cotangent))
    return out, x_grad, params_grad, updates


# ----------------------------------------------------------------------------------
# HybridPool


def test_hybrid_pool_matches_the_seed_module():
    torch.manual_seed(0)
    seed = HybridPooling()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 10, 3)).astype(np.float32)
    cotangent = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    t_out, t_gx, t_grads = run_torch(seed, x, cotangent)
    variables = torch_compat.hybrid_pool_variables(seed)
    pool = jaxpool.HybridPool(kernel_size=(2, 2), stride=(2, 2))
    out, gx, gparams, _ = _run_flax(pool, variables, x, cotangent)
    chex.assert_trees_all_close(out, nhwc(t_out), **TOLERANCE)
    chex.assert_trees_all_close(gx, nhwc(t_gx), **TOLERANCE)
    chex.assert_trees_all_close(gparams["mix_logit"], t_grads["weight"].numpy()[0], **TOLERANCE)


def test_hybrid_pool_per_channel_matches_a_per_channel_seed():
    torch.manual_seed(1)
    seed = HybridPooling(3, 2)
    seed.weight = nn.Parameter(torch.randn(4).view(1, 4, 1, 1))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 9, 4)).astype(np.float32)
    cotangent = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    t_out, t_gx, t_grads = run_torch(seed, x, cotangent)
    variables = torch_compat.hybrid_pool_variables(seed, per_channel=True)
    pool = jaxpool.HybridPool(kernel_size=(3, 3), stride=(2, 2), per_channel=True)
    chex.assert_trees_all_equal_shapes(pool.init(jax.random.key(0), x), variables)
    out, gx, gparams, _ = _run_flax(pool, variables, x, cotangent)
    chex.assert_trees_all_close(out, nhwc(t_out), **TOLERANCE)
    chex.assert_trees_all_close(gx, nhwc(t_gx), **TOLERANCE)
    chex.assert_trees_all_close(gparams["mix_logit"], t_grads["weight"].numpy().reshape(-1), **TOLERANCE)


def test_hybrid_pool_initialisation():
    x = jnp.ones((1, 4, 4, 2))
    default = jaxpool.HybridPool(kernel_size=(2, 2)).init(jax.random.key(0), x)
    chex.assert_trees_all_equal(default["params"]["mix_logit"], jnp.float32(0.0))
    seeded = jaxpool.HybridPool(kernel_size=(2, 2), mix_logit_init=jax.nn.initializers.uniform(1.0))
    logits = [seeded.init(jax.random.key(k), x)["params"]["mix_logit"] for k in range(20)]
    assert all(0.0 <= float(v) < 1.0 for v in logits)  # torch.rand(1)
    assert len({float(v) for v in logits}) == 20


def test_hybrid_pool_global_form_and_channels_first():
    x = jax.random.normal(jax.random.key(2), (2, 3, 6, 6))
    variables = {"params": {"mix_logit": jnp.array([0.5, -1.0, 2.0])}}
    pool = jaxpool.HybridPool(per_channel=True, channels_first=True)
    out = pool.apply(variables, x)
    alpha = jax.nn.sigmoid(variables["params"]["mix_logit"]).reshape(1, 3)
    expected = alpha * jnp.max(x, axis=(2, 3)) + (1 - alpha) * jnp.mean(x, axis=(2, 3))
    chex.assert_trees_all_close(out, expected, rtol=1e-6)
    kept = jaxpool.HybridPool(per_channel=True, channels_first=True, keepdims=True).apply(variables, x)
    chex.assert_shape(kept, (2, 3, 1, 1))
    windowed = jaxpool.HybridPool(kernel_size=(2, 2), per_channel=True, channels_first=True)
    last = jaxpool.HybridPool(kernel_size=(2, 2), per_channel=True)
    chex.assert_trees_all_close(
        windowed.apply(variables, x), jnp.moveaxis(last.apply(variables, jnp.moveaxis(x, 1, -1)), -1, 1)
    )


# ----------------------------------------------------------------------------------
# AttentionHybridPool


@pytest.mark.parametrize("channels", [2, 8])
def test_attention_hybrid_pool_matches_the_seed_module(channels):
    torch.manual_seed(channels)
    seed = HybridPoolingWithAttention(channels)
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((3, 6, 8, channels)).astype(np.float32)
    cotangent = rng.standard_normal((3, 3, 4, channels)).astype(np.float32)
    t_out, t_gx, t_grads = run_torch(seed, x, cotangent)
    variables = torch_compat.attention_hybrid_pool_variables(seed)
    pool = jaxpool.AttentionHybridPool(kernel_size=(2, 2), stride=(2, 2))
    chex.assert_trees_all_equal_shapes(jax.eval_shape(pool.init, jax.random.key(0), x), variables)
    out, gx, gparams, _ = _run_flax(pool, variables, x, cotangent)
    chex.assert_trees_all_close(out, nhwc(t_out), **TOLERANCE)
    chex.assert_trees_all_close(gx, nhwc(t_gx), **TOLERANCE)
    expected = torch_grads_as_flax(torch_compat.attention_hybrid_pool_variables, seed, t_grads)
    assert_parameter_gradients_close(gparams, expected)


def test_attention_hybrid_pool_global_form_and_layouts():
    x = jax.random.normal(jax.random.key(3), (2, 5, 5, 8))
    pool = jaxpool.AttentionHybridPool(reduction=2)
    variables = pool.init(jax.random.key(0), x)
    assert variables["params"]["squeeze"]["kernel"].shape == (8, 4)
    out = pool.apply(variables, x)
    chex.assert_shape(out, (2, 8))
    context = jnp.mean(x, axis=(1, 2))
    hidden = jax.nn.relu(context @ variables["params"]["squeeze"]["kernel"]
                         + variables["params"]["squeeze"]["bias"].reshape(1, -1))
    attention = jax.nn.sigmoid(hidden @ variables["params"]["excite"]["kernel"]
                               + variables["params"]["excite"]["bias"].reshape(1, -1))
    expected = attention * jnp.max(x, axis=(1, 2)) + (1 - attention) * context
    chex.assert_trees_all_close(out, expected, rtol=1e-5, atol=1e-6)
    first = jaxpool.AttentionHybridPool(reduction=2, channels_first=True, keepdims=True)
    kept = first.apply(variables, jnp.moveaxis(x, -1, 1))
    chex.assert_shape(kept, (2, 8, 1, 1))
    chex.assert_trees_all_close(kept[:, :, 0, 0], out, rtol=1e-5, atol=1e-6)
    windowed_first = jaxpool.AttentionHybridPool(kernel_size=(2, 2), reduction=2, channels_first=True)
    windowed_last = jaxpool.AttentionHybridPool(kernel_size=(2, 2), reduction=2)
    chex.assert_trees_all_close(
        jnp.moveaxis(windowed_first.apply(variables, jnp.moveaxis(x, -1, 1)), 1, -1),
        windowed_last.apply(variables, x), rtol=1e-5, atol=1e-6,
    )


# ----------------------------------------------------------------------------------
# HybridResNetBlock against the seed's block


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("in_channels, out_channels", [(4, 4), (3, 8)])
def test_hybrid_resnet_block_matches_the_seed_block(train, in_channels, out_channels):
    torch.manual_seed(in_channels * 10 + out_channels)
    seed = TorchHybridResNetBlock(in_channels, out_channels)
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for module in seed.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    seed.train(train)
    rng = np.random.default_rng(in_channels + out_channels)
    x = rng.standard_normal((2, 8, 8, in_channels)).astype(np.float32)
    cotangent = rng.standard_normal((2, 4, 4, out_channels)).astype(np.float32)
    variables = torch_compat.hybrid_resnet_block_variables(seed)  # before the torch step
    t_out, t_gx, t_grads = run_torch(seed, x, cotangent)

    block = HybridResNetBlock(features=out_channels)
    chex.assert_trees_all_equal_shapes(jax.eval_shape(block.init, jax.random.key(0), x), variables)
    out, gx, gparams, updates = _run_flax(block, variables, x, cotangent, train=train)
    chex.assert_trees_all_close(out, nhwc(t_out), **TOLERANCE)
    chex.assert_trees_all_close(gx, nhwc(t_gx), **TOLERANCE)
    expected = torch_grads_as_flax(torch_compat.hybrid_resnet_block_variables, seed, t_grads)
    assert_parameter_gradients_close(gparams, expected)
    stats_after = torch_compat.hybrid_resnet_block_variables(seed)["batch_stats"]
    if train:
        chex.assert_trees_all_close(updates["batch_stats"], stats_after, **TOLERANCE)
    else:
        chex.assert_trees_all_close(updates["batch_stats"], variables["batch_stats"], rtol=0, atol=0)


# ----------------------------------------------------------------------------------
# GatedPool, GeMPool, SoftPool, heads


@pytest.mark.parametrize("per_channel", [False, True])
def test_gated_pool_module_is_the_functional_op(per_channel):
    x = jax.random.normal(jax.random.key(4), (2, 7, 7, 3))
    pool = jaxpool.GatedPool(kernel_size=(3, 3), stride=(2, 2), padding=1, per_channel=per_channel,
                             gate_init=jax.nn.initializers.normal(0.5))
    variables = pool.init(jax.random.key(1), x)
    weight = variables["params"]["gate_weight"]
    chex.assert_shape(weight, (3, 3, 3) if per_channel else (3, 3))
    expected = jaxpool.gated_pool(x, weight, 3, 2, 1)
    chex.assert_trees_all_equal(pool.apply(variables, x), expected)
    zero = jaxpool.GatedPool(kernel_size=(2, 2)).init(jax.random.key(0), x)
    chex.assert_trees_all_equal(zero["params"]["gate_weight"], jnp.zeros((2, 2)))


class TorchGeM(nn.Module):
    """timm's GeM (generalised mean) head."""

    def __init__(self, p=3.0, eps=1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x):
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p).flatten(1)


def test_gem_pool_matches_timm_gem():
    torch.manual_seed(5)
    seed = TorchGeM(p=2.5)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 5, 4)).astype(np.float32)
    t_x = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
    cotangent = rng.standard_normal((3, 4)).astype(np.float32)
    t_out = seed(t_x)
    t_out.backward(torch.tensor(cotangent))
    pool = jaxpool.GeMPool(initial_p=2.5)
    variables = pool.init(jax.random.key(0), x)
    chex.assert_trees_all_close(variables["params"]["p"], jnp.float32(2.5))
    out, gx, gparams, _ = _run_flax(pool, variables, x, cotangent)
    chex.assert_trees_all_close(out, t_out.detach().numpy(), **TOLERANCE)
    chex.assert_trees_all_close(gx, nhwc(t_x.grad), **TOLERANCE)
    chex.assert_trees_all_close(gparams["p"], seed.p.grad.numpy()[0], rtol=1e-4, atol=1e-5)
    fixed = jaxpool.GeMPool(initial_p=2.5, learn_p=False)
    assert fixed.init(jax.random.key(0), x) == {}
    chex.assert_trees_all_close(fixed.apply({}, x), out, rtol=1e-6)
    windowed = jaxpool.GeMPool(kernel_size=(2, 2))
    chex.assert_shape(windowed.apply(variables, x), (3, 2, 2, 4))


def test_soft_pool_and_heads_are_their_functional_ops():
    x = jax.random.normal(jax.random.key(6), (2, 6, 6, 3))
    chex.assert_trees_all_equal(jaxpool.SoftPool(kernel_size=(2, 2)).apply({}, x), jaxpool.soft_pool(x, 2))
    chex.assert_trees_all_equal(jaxpool.SoftPool().apply({}, x), jaxpool.soft_pool(x))
    chex.assert_trees_all_equal(jaxpool.AvgMaxPool().apply({}, x), jaxpool.global_avg_max_pool(x))
    chex.assert_trees_all_equal(
        jaxpool.CatAvgMaxPool(keepdims=True).apply({}, x), jaxpool.global_cat_avg_max_pool(x, keepdims=True)
    )
    chex.assert_shape(jaxpool.CatAvgMaxPool(spatial_dims=1).apply({}, x[:, 0]), (2, 6))


# ----------------------------------------------------------------------------------
# Transformations and dtypes


class ModuleTransformTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_modules_under_variants(self):
        x = jax.random.normal(jax.random.key(7), (2, 8, 8, 4))
        modules = [
            jaxpool.HybridPool(kernel_size=(2, 2), per_channel=True),
            jaxpool.AttentionHybridPool(kernel_size=(2, 2)),
            jaxpool.GatedPool(kernel_size=(2, 2), per_channel=True),
            jaxpool.GeMPool(kernel_size=(2, 2)),
            jaxpool.SoftPool(kernel_size=(2, 2)),
        ]
        for module in modules:
            variables = module.init(jax.random.key(0), x)
            out = self.variant(module.apply)(variables, x)
            chex.assert_shape(out, (2, 4, 4, 4))
            chex.assert_tree_all_finite(out)

    def test_no_retracing_and_gradients_reach_every_parameter(self):
        x = jax.random.normal(jax.random.key(8), (2, 8, 8, 4))
        pool = jaxpool.AttentionHybridPool(kernel_size=(2, 2))
        variables = pool.init(jax.random.key(0), x)

        @jax.jit
        @chex.assert_max_traces(n=1)
        def loss(params, v):
            return jnp.sum(pool.apply({"params": params}, v) ** 2)

        for scale in (1.0, 2.0):
            grads = jax.grad(loss)(variables["params"], x * scale)
        assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree_util.tree_leaves(grads))

    def test_bfloat16(self):
        x = jax.random.normal(jax.random.key(9), (2, 8, 8, 4)).astype(jnp.bfloat16)
        for module in (jaxpool.HybridPool(kernel_size=(2, 2)), jaxpool.GeMPool(), jaxpool.SoftPool(),
                       jaxpool.AttentionHybridPool(kernel_size=(2, 2), dtype=jnp.bfloat16),
                       jaxpool.GatedPool(kernel_size=(2, 2)), jaxpool.CatAvgMaxPool()):
            variables = jax.jit(module.init)(jax.random.key(0), x)
            out = jax.jit(module.apply)(variables, x)
            assert out.dtype == jnp.bfloat16, type(module).__name__
            reference = jax.jit(module.apply)(variables, x.astype(jnp.float32))
            chex.assert_trees_all_close(out.astype(jnp.float32), reference, rtol=2e-2, atol=2e-2)


# ----------------------------------------------------------------------------------
# Bad configuration


X = jnp.zeros((1, 6, 6, 4))

# Refused at construction, with the rules of the ops and of the NNX twins.
BAD_CONFIGURATIONS = [
    (lambda: jaxpool.HybridPool(kernel_size=2), TypeError, "HybridPool: kernel_size must be a tuple with one entry per spatial dimension.*kernel_size=2"),
    (lambda: jaxpool.HybridPool(kernel_size=(2, 2, 2, 2)), ValueError, r"kernel_size must have 1 or 2 or 3 entries.*kernel_size=\(2, 2, 2, 2\)"),
    (lambda: jaxpool.HybridPool(spatial_dims=4), ValueError, "HybridPool: spatial_dims must be 1, 2 or 3, but got spatial_dims=4"),
    (lambda: jaxpool.HybridPool(kernel_size=(2, 2), keepdims=True), ValueError, "keepdims=True only applies to the global form"),
    (lambda: jaxpool.HybridPool(per_channel=1), TypeError, "HybridPool: per_channel must be a bool, but got 1"),
    (lambda: jaxpool.GatedPool(kernel_size=(2, 2), per_channel="yes"), TypeError, "GatedPool: per_channel must be a bool"),
    (lambda: jaxpool.GeMPool(learn_p=0), TypeError, "GeMPool: learn_p must be a bool"),
    (lambda: jaxpool.HybridPool(kernel_size=(2, 2), stride=(0, 1)), ValueError, "HybridPool: stride should be greater than zero"),
    (lambda: jaxpool.SoftPool(ceil_mode=True), ValueError, "SoftPool: ceil_mode only applies to windowed pooling"),
    (lambda: jaxpool.AttentionHybridPool(reduction=0), ValueError, "AttentionHybridPool: reduction must be at least 1, but got reduction=0"),
    (lambda: jaxpool.AttentionHybridPool(reduction=2.5), TypeError, "reduction must be an int, but got 2.5"),
    (lambda: jaxpool.GeMPool(eps=-1.0), ValueError, "eps must be positive, but got eps=-1.0"),
]


@pytest.mark.parametrize("make, error, message", BAD_CONFIGURATIONS)
def test_bad_configuration_fails_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


# Refused at the call: what needs the input.
BAD_CALLS = [
    (jaxpool.GatedPool(kernel_size=(7, 7)), X, ValueError, "Output size is too small"),
    (jaxpool.HybridPool(kernel_size=(2, 2, 2)), X[0], ValueError, r"expected an input of shape .* with at least 4 dimensions, but got shape \(6, 6, 4\)"),
]


@pytest.mark.parametrize("module, x, error, message", BAD_CALLS)
def test_bad_input_fails_at_the_call(module, x, error, message):
    with pytest.raises(error, match=message):
        module.init(jax.random.key(0), x)


def test_spatial_dims_is_ignored_by_the_windowed_form():
    variables = jaxpool.AttentionHybridPool(kernel_size=(2, 2), spatial_dims=3).init(
        jax.random.key(0), X)
    chex.assert_shape(variables["params"]["squeeze"]["kernel"], (4, 1))


# ----------------------------------------------------------------------------------
# The documentation's example runs


def test_docs_examples_run():
    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "learnable.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/learnable.md has no python block"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/learnable.md", "exec"), namespace)
