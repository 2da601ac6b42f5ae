"""Tests of jaxpool.models: the torch-exact BatchNorm and the seed's HybridResNetBlock.

(The block's parity with the seed's PyTorch block is in tests/test_learnable.py.)
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxpool.models
from jaxpool.models import BatchNorm, HybridResNetBlock


def test_models_is_a_public_submodule():
    assert set(jaxpool.models.__all__) >= {"BatchNorm", "HybridResNetBlock"}
    for name in ("BatchNorm", "HybridResNetBlock"):
        assert ">>>" in getattr(jaxpool.models, name).__doc__


# ----------------------------------------------------------------------------------
# BatchNorm


@pytest.mark.parametrize("shape", [(4, 5, 5, 3), (6, 3)])
def test_batch_norm_matches_torch_in_train_and_eval(shape):
    rng = np.random.default_rng(0)
    x = (2 * rng.standard_normal(shape) + 1).astype(np.float32)
    channels = shape[-1]
    torch_bn = {4: torch.nn.BatchNorm2d, 2: torch.nn.BatchNorm1d}[len(shape)](channels)
    with torch.no_grad():
        torch_bn.weight.uniform_(0.5, 1.5)
        torch_bn.bias.uniform_(-0.5, 0.5)
    params = {"scale": torch_bn.weight.detach().numpy().copy(), "bias": torch_bn.bias.detach().numpy().copy()}
    stats = {"mean": np.zeros(channels, np.float32), "var": np.ones(channels, np.float32)}
    t_x = torch.tensor(np.moveaxis(x, -1, 1))
    torch_bn.train()
    t_train = torch_bn(t_x)
    bn = BatchNorm()
    y, updates = bn.apply({"params": params, "batch_stats": stats}, x, use_running_average=False,
                          mutable=["batch_stats"])
    chex.assert_trees_all_close(y, np.moveaxis(t_train.detach().numpy(), 1, -1), rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(updates["batch_stats"]["mean"], torch_bn.running_mean.numpy(), rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(updates["batch_stats"]["var"], torch_bn.running_var.numpy(), rtol=1e-6, atol=1e-7)
    torch_bn.eval()
    t_eval = torch_bn(t_x)
    y_eval = bn.apply({"params": params, **updates}, x, use_running_average=True)
    chex.assert_trees_all_close(y_eval, np.moveaxis(t_eval.detach().numpy(), 1, -1), rtol=1e-5, atol=1e-5)


def test_batch_norm_variables_are_flax_batch_norms():
    import flax.linen as nn

    x = jnp.ones((2, 4, 4, 3))
    ours = BatchNorm().init(jax.random.key(0), x, use_running_average=False)
    flax_bn = nn.BatchNorm().init(jax.random.key(0), x, use_running_average=False)
    chex.assert_trees_all_equal(ours, flax_bn)


def test_batch_norm_refuses_a_single_value_per_channel_when_training():
    variables = BatchNorm().init(jax.random.key(0), jnp.ones((1, 3)), use_running_average=False)
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input shape \(1, 3\)"):
        BatchNorm().apply(variables, jnp.ones((1, 3)), use_running_average=False, mutable=["batch_stats"])


# ----------------------------------------------------------------------------------
# HybridResNetBlock


def _variables(module, x, seed=0):
    """Random variables of the right shapes, without compiling the initialisers."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "'var'" in name or "'scale'" in name:
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
        return jnp.asarray(0.3 * rng.standard_normal(leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.mark.parametrize(
    "in_channels, features, pool, size, expected",
    [
        (16, 16, {}, 8, (3, 4, 4, 16)),
        (3, 8, {}, 9, (3, 4, 4, 8)),
        (8, 8, {"pool_kernel_size": (3, 3), "pool_stride": (2, 2)}, 9, (3, 4, 4, 8)),
    ],
)
def test_block_shapes_and_variables(in_channels, features, pool, size, expected):
    block = HybridResNetBlock(features=features, **pool)
    x = jnp.ones((3, size, size, in_channels))
    variables = jax.eval_shape(block.init, jax.random.key(0), x)
    chex.assert_shape(jax.eval_shape(block.apply, variables, x), expected)
    params = variables["params"]
    chex.assert_shape(params["conv1"]["kernel"], (3, 3, in_channels, features))
    chex.assert_shape(params["conv2"]["bias"], (features,))
    chex.assert_shape(params["pool"]["squeeze"]["kernel"], (features, max(1, features // 4)))
    projected = in_channels != features
    assert ("shortcut_conv" in params) == projected
    if projected:
        chex.assert_shape(params["shortcut_conv"]["kernel"], (1, 1, in_channels, features))
        assert "bias" not in params["shortcut_conv"]
    assert set(variables["batch_stats"]) == {"bn1", "bn2"} | ({"shortcut_bn"} if projected else set())


class BlockTransformTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_train_step_variants(self):
        block = HybridResNetBlock(features=8)
        x = jax.random.normal(jax.random.key(1), (2, 8, 8, 8))
        variables = _variables(block, x)

        def step(params, stats, v):
            def loss(p):
                y, updates = block.apply({"params": p, "batch_stats": stats}, v, train=True,
                                         mutable=["batch_stats"])
                return jnp.mean(y**2), updates

            (value, updates), grads = jax.value_and_grad(loss, has_aux=True)(params)
            return value, grads, updates["batch_stats"]

        value, grads, stats = self.variant(step)(variables["params"], variables["batch_stats"], x)
        chex.assert_trees_all_equal_shapes(grads, variables["params"])
        chex.assert_tree_all_finite((value, grads, stats))
        assert not np.allclose(stats["bn1"]["mean"], variables["batch_stats"]["bn1"]["mean"])

    def test_no_retracing(self):
        block = HybridResNetBlock(features=4)
        x = jnp.ones((2, 8, 8, 4))
        variables = _variables(block, x)

        @jax.jit
        @chex.assert_max_traces(n=1)
        def forward(v, inputs):
            return block.apply(v, inputs)

        for scale in (1.0, 2.0, 3.0):
            chex.assert_shape(forward(variables, x * scale), (2, 4, 4, 4))

    def test_bfloat16_run(self):
        block = HybridResNetBlock(features=8, dtype=jnp.bfloat16)
        x = jax.random.normal(jax.random.key(2), (2, 8, 8, 8)).astype(jnp.bfloat16)
        shapes = jax.eval_shape(block.init, jax.random.key(0), x)
        jax.tree_util.tree_map(lambda leaf: self.assertEqual(leaf.dtype, jnp.float32), shapes)
        variables = _variables(block, x)
        out, updates = jax.jit(lambda v, inputs: block.apply(v, inputs, train=True, mutable=["batch_stats"]))(
            variables, x
        )
        assert out.dtype == jnp.bfloat16
        chex.assert_shape(out, (2, 4, 4, 8))
        chex.assert_tree_all_finite((out.astype(jnp.float32), updates))
        reference = jax.jit(HybridResNetBlock(features=8).apply)(variables, x.astype(jnp.float32))
        evaluated = jax.jit(block.apply)(variables, x)
        chex.assert_trees_all_close(evaluated.astype(jnp.float32), reference, rtol=0.1, atol=0.1)
