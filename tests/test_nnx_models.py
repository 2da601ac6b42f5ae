"""Tests of jaxpool/nnx/_models.py: the NNX twins of jaxpool.models.

Given the same variables, BatchNorm, the blocks and the models give their linen twins'
outputs, gradients and running statistics (training and evaluation mode, under
``nnx.jit``); the seed's PyTorch block is reproduced within 1e-5; every ``--model`` x
``--pool`` pair builds with linen's variable names; a model trains with
``nnx.Optimizer`` and survives ``nnx.split`` / ``nnx.merge`` and an orbax checkpoint.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxpool.nnx as jpn
from jaxpool import models, torch_compat
from tests.nnx_helpers import (
    assert_twins_agree,
    linen_run,
    make_optimizer,
    nnx_run,
    nnx_twin,
    optimizer_update,
    random_variables,
)
from tests.oracle import (
    TOLERANCE,
    TorchHybridResNetBlock,
    nhwc,
    run_torch,
    torch_grads_as_flax,
)

RNG = np.random.default_rng(0)


def _cotangent(shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _assert_twins(module, linen, variables, x, linen_kwargs, tolerance=1e-6):
    """Output, input and parameter gradients, and updated batch stats agree."""
    y = jax.eval_shape(lambda v, x: linen.apply(v, x, mutable=["batch_stats"], **linen_kwargs)[0],
                       variables, x)
    cotangent = _cotangent(y.shape)
    got = nnx_run(module, x, cotangent)
    expected = linen_run(linen, variables, x, cotangent, **linen_kwargs)
    assert_twins_agree(got, expected, x.dtype, tolerance)
    return got


# ----------------------------------------------------------------------------------
# BatchNorm


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_batch_norm_is_its_linen_twin_in_both_modes(dtype):
    x = jnp.asarray(2 * RNG.standard_normal((4, 3, 3, 5)) + 1, dtype)
    linen = models.BatchNorm()
    variables = random_variables(linen, x, use_running_average=False)
    bn = nnx_twin(lambda: jpn.BatchNorm(5), variables)
    assert bn.use_running_average is False  # built in training mode, as nnx.BatchNorm
    out, _, _, stats = _assert_twins(bn, linen, variables, x, {"use_running_average": False})
    assert out.dtype == dtype
    assert not np.allclose(stats["var"], variables["batch_stats"]["var"])  # updated
    # Evaluation: the running statistics normalise and stay as they are.
    bn.eval()
    evaluated = {"params": variables["params"], "batch_stats": stats}
    _, _, _, kept = _assert_twins(bn, linen, evaluated, x, {"use_running_average": True})
    chex.assert_trees_all_equal(kept, stats)


def test_batch_norm_call_argument_overrides_the_mode():
    x = jnp.asarray(RNG.standard_normal((4, 2)), jnp.float32)
    bn = jpn.BatchNorm(2, use_running_average=True)
    chex.assert_trees_all_close(bn(x), x / jnp.sqrt(1 + 1e-5))  # mean 0, var 1: running stats
    bn(x, use_running_average=False)
    assert not np.array_equal(bn.mean[...], np.zeros(2))


def test_batch_norm_options_and_errors():
    bn = jpn.BatchNorm(3, use_scale=False, use_bias=False)
    assert jpn.variables(bn) == {"batch_stats": {"mean": bn.mean[...], "var": bn.var[...]}}
    with pytest.raises(ValueError, match=r"BatchNorm: expected an input of shape \(..., C\) with "
                                         r"C = num_features = 3, but got shape \(2, 4\)"):
        bn(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got "
                                         r"input shape \(1, 3\)"):
        bn(jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="the initialiser of scale is random: pass rngs"):
        jpn.BatchNorm(3, scale_init=jax.nn.initializers.normal())


# ----------------------------------------------------------------------------------
# The seed's block


@pytest.mark.parametrize("train, in_features, out_features, dtype",
                         [(True, 3, 8, jnp.float32), (False, 4, 4, jnp.bfloat16)])
def test_hybrid_resnet_block_is_its_linen_twin(train, in_features, out_features, dtype):
    x = jnp.asarray(RNG.standard_normal((2, 8, 8, in_features)), dtype)
    linen = models.HybridResNetBlock(features=out_features, dtype=dtype)
    variables = random_variables(linen, x)
    block = nnx_twin(lambda: jpn.HybridResNetBlock(in_features, out_features, dtype=dtype,
                                                   rngs=nnx.Rngs(0)), variables)
    block.train() if train else block.eval()
    _assert_twins(block, linen, variables, x, {"train": train})


@pytest.mark.parametrize("train, in_features, out_features", [(True, 3, 8), (False, 4, 4)])
def test_hybrid_resnet_block_matches_the_seed_block(train, in_features, out_features):
    import torch

    torch.manual_seed(in_features * 10 + out_features)
    seed = TorchHybridResNetBlock(in_features, out_features)
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for module in seed.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    seed.train(train)
    x = RNG.standard_normal((2, 8, 8, in_features)).astype(np.float32)
    cotangent = _cotangent((2, 4, 4, out_features))
    variables = torch_compat.hybrid_resnet_block_variables(seed)  # before the torch step
    t_out, t_gx, t_grads = run_torch(seed, x, cotangent)
    block = nnx_twin(lambda: jpn.HybridResNetBlock(in_features, out_features, rngs=nnx.Rngs(0)),
                     variables)
    block.train() if train else block.eval()
    out, gx, gparams, stats = nnx_run(block, x, cotangent)
    chex.assert_trees_all_close(out, nhwc(t_out), **TOLERANCE)
    chex.assert_trees_all_close(gx, nhwc(t_gx), **TOLERANCE)
    expected = torch_grads_as_flax(torch_compat.hybrid_resnet_block_variables, seed, t_grads)
    chex.assert_trees_all_equal_structs(gparams, expected)
    chex.assert_trees_all_close(gparams, expected, **TOLERANCE)
    stats_after = torch_compat.hybrid_resnet_block_variables(seed)["batch_stats"]
    chex.assert_trees_all_close(stats, stats_after, **TOLERANCE)


def test_the_issue_s_block_constructor_and_its_modes():
    block = jpn.HybridResNetBlock(in_features=4, out_features=4, rngs=nnx.Rngs(0))
    assert block.shortcut_conv is None and block.shortcut_bn is None
    x = jnp.asarray(RNG.standard_normal((2, 8, 8, 4)), jnp.float32)
    forward = nnx.jit(lambda module, x: module(x))
    before = jpn.variables(block)["batch_stats"]
    chex.assert_shape(forward(block, x), (2, 4, 4, 4))  # training mode: the stats move
    assert not np.array_equal(block.bn1.mean[...], before["bn1"]["mean"])
    block.eval()
    assert block.bn1.use_running_average and block.bn2.use_running_average
    evaluated = jpn.variables(block)["batch_stats"]
    forward(block, x)
    chex.assert_trees_all_equal(jpn.variables(block)["batch_stats"], evaluated)
    block.train()
    assert not block.bn1.use_running_average


# ----------------------------------------------------------------------------------
# make_pooling, the blocks and the models


@pytest.mark.parametrize("kind", ["global", "downsample"])
def test_every_pooling_is_its_linen_twin(kind):
    x = jnp.asarray(RNG.standard_normal((2, 4, 6, 3)), jnp.float32)
    names = models.POOLING_NAMES
    linens = [models.make_pooling(name, kind=kind) for name in names]
    variables = [random_variables(linen, x, seed=i) for i, linen in enumerate(linens)]
    twins = [nnx_twin(lambda name=name: jpn.make_pooling(name, kind=kind, num_features=3,
                                                          map_size=(4, 6), rngs=nnx.Rngs(0)), v)
             for name, v in zip(names, variables, strict=True)]
    cotangents = [_cotangent(jax.eval_shape(linen.apply, v, x).shape)
                  for linen, v in zip(linens, variables, strict=True)]

    def loss(outputs):
        return sum(jnp.sum(y * c) for y, c in zip(outputs, cotangents, strict=True))

    @nnx.jit
    def nnx_grads(twins, x):
        return nnx.value_and_grad(lambda t, x: loss([m(x) for m in t]), argnums=(0, 1))(twins, x)

    @jax.jit
    def linen_grads(params, x):
        return jax.value_and_grad(
            lambda p, x: loss([m.apply({"params": q}, x) for m, q in zip(linens, p, strict=True)]),
            argnums=(0, 1))(params, x)

    (value, (grads, x_grad)) = nnx_grads(twins, x)
    params = [v.get("params", {}) for v in variables]
    expected_value, (expected_grads, expected_x_grad) = linen_grads(params, x)
    assert_twins_agree((value, x_grad), (expected_value, expected_x_grad))
    for got, expected in zip(grads, expected_grads, strict=True):
        assert_twins_agree(jax.tree.leaves(got), jax.tree.leaves(expected))


@pytest.mark.parametrize("pool", models.POOLING_NAMES)
@pytest.mark.parametrize("model_name", models.MODEL_NAMES)
def test_every_model_and_pooling_has_linen_s_variables(model_name, pool):
    x = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)
    linen = models.make_model(model_name, pool=pool, width=2, num_classes=3)
    expected = jax.eval_shape(linen.init, jax.random.key(0), x)
    model = nnx.eval_shape(lambda: jpn.make_model(model_name, in_features=3, pool=pool, width=2,
                                                  num_classes=3, image_size=(16, 16),
                                                  rngs=nnx.Rngs(0)))
    got = jpn.variables(model)
    chex.assert_trees_all_equal_structs(got, expected)
    chex.assert_trees_all_equal_shapes_and_dtypes(got, expected)
    assert model.pool_name == pool and model.width == 2
    out = nnx.eval_shape(lambda m, x: m(x), model, x)
    assert out.shape == (2, 3) and out.dtype == jnp.float32


def test_hybrid_resnet_is_its_linen_twin():
    # One block and 4x4 images keep it small; the gated head pools a 2x2 map.
    x = jnp.asarray(RNG.standard_normal((2, 4, 4, 3)), jnp.float32)
    linen = models.HybridResNet(num_classes=3, width=2, stage_multipliers=(1,), pool="gated")
    variables = random_variables(linen, x)
    model = nnx_twin(lambda: jpn.HybridResNet(3, 3, 2, (1,), "gated", image_size=(4, 4),
                                              rngs=nnx.Rngs(0)), variables)
    _assert_twins(model, linen, variables, x, {"train": True})


def test_resnet18_is_its_linen_twin():
    x = jnp.asarray(RNG.standard_normal((2, 8, 8, 3)), jnp.float32)
    linen = models.CifarResNet18(num_classes=3, width=2, pool="catavgmax")
    variables = random_variables(linen, x, scale=0.2)
    model = nnx_twin(lambda: jpn.CifarResNet18(3, 3, 2, "catavgmax", rngs=nnx.Rngs(0)), variables)
    model.eval()
    # Eighteen layers: the two programs' roundings may add up to more than a few ulps.
    _assert_twins(model, linen, variables, x, {"train": False}, tolerance=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_pooling_block_with_attention_is_the_hybrid_resnet_block(dtype):
    x = jnp.asarray(RNG.standard_normal((2, 8, 8, 3)), dtype)
    variables = random_variables(models.HybridResNetBlock(features=6), x)
    hybrid_block = nnx_twin(lambda: jpn.HybridResNetBlock(3, 6, dtype=dtype, rngs=nnx.Rngs(0)),
                            variables)
    block = nnx_twin(lambda: jpn.PoolingResNetBlock(3, 6, "attention", dtype=dtype,
                                                    rngs=nnx.Rngs(0)), variables)
    forward = nnx.jit(lambda m, v: m(v))
    chex.assert_trees_all_equal(forward(block, x), forward(hybrid_block, x))


BAD = [
    (lambda: jpn.make_model("resnet50", in_features=3, rngs=nnx.Rngs(0)), ValueError,
     "unknown model 'resnet50'; expected one of resnet18, hybrid_resnet"),
    (lambda: jpn.make_model("resnet18", in_features=3, width=0, rngs=nnx.Rngs(0)), ValueError,
     "width must be >= 1, but got 0"),
    (lambda: jpn.CifarResNet18(3, pool="mean", rngs=nnx.Rngs(0)), ValueError, "unknown pool 'mean'"),
    (lambda: jpn.HybridResNet(3, pool="gated", rngs=nnx.Rngs(0)), ValueError,
     r"HybridResNet: pool='gated' learns one gate weight per position .* pass image_size=\(H, W\)"),
    (lambda: jpn.HybridResNet(3, image_size=(4, 4), rngs=nnx.Rngs(0)), ValueError,
     r"images of 4x4 are too small for 3 blocks.*at least 8x8"),
    (lambda: jpn.HybridResNetBlock(3, 8, rngs=None), ValueError,
     r"HybridResNetBlock initialises parameters randomly: pass rngs=nnx.Rngs\(0\)"),
    (lambda: jpn.BasicBlock(3, 0, rngs=nnx.Rngs(0)), ValueError, "out_features must be at least 1"),
    (lambda: jpn.make_pooling("maxx"), ValueError, "unknown pooling 'maxx'"),
    (lambda: jpn.make_pooling("max", kind="downsample", stride=1.5), TypeError, "stride must be an int"),
    (lambda: jpn.make_pooling("attention", num_features=4), ValueError,
     "AttentionHybridPool initialises parameters randomly"),
    (lambda: jpn.make_pooling("attention", rngs=nnx.Rngs(0)), ValueError, "pass num_features=C"),
    (lambda: jpn.make_pooling("gated"), ValueError, r"'gated' pools the whole map .* pass map_size=\(H, W\)"),
]


@pytest.mark.parametrize("make, error, message", BAD)
def test_bad_configuration_fails_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        nnx.eval_shape(make)


def test_call_errors():
    model = nnx.eval_shape(lambda: jpn.HybridResNet(3, width=2, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"images of 4x4 are too small for 3 blocks"):
        nnx.eval_shape(lambda m: m(jnp.ones((1, 4, 4, 3))), model)
    head = jpn.make_pooling("gated", map_size=(4, 4))
    with pytest.raises(ValueError, match=r"the gated head was built for 4x4 maps .* \(1, 2, 2, 3\)"):
        head(jnp.ones((1, 2, 2, 3)))


# ----------------------------------------------------------------------------------
# Training, graph operations and checkpoints


def test_optimizer_step_under_nnx_jit_changes_the_learnable_parameters():
    model = jpn.HybridResNetBlock(in_features=4, out_features=8, rngs=nnx.Rngs(0))
    # The pool's input is a ReLU's output: with a non-negative squeeze kernel the
    # attention's hidden ReLU units start alive (a dead one gets no gradient, in any
    # framework, and some seeds start one dead).
    weights = jpn.variables(model)
    squeeze = weights["params"]["pool"]["squeeze"]
    squeeze["kernel"] = jnp.abs(squeeze["kernel"])
    jpn.load_variables(model, weights)
    optimizer = make_optimizer(model, optax.sgd(0.1))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 4)), jnp.float32)
    target = jnp.asarray(np.random.default_rng(1).standard_normal((4, 4, 4, 8)), jnp.float32)

    @nnx.jit
    def train_step(model, optimizer, x, target):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - target) ** 2))(model)
        optimizer_update(optimizer, model, grads)
        return loss

    before = jpn.variables(model)
    losses = [float(train_step(model, optimizer, x, target)) for _ in range(2)]
    after = jpn.variables(model)
    assert losses[1] < losses[0]
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before, after)
    assert all(jax.tree.leaves(moved["params"])), moved["params"]  # every parameter learns
    assert all(jax.tree.leaves(moved["batch_stats"]))


def test_split_merge_and_orbax_checkpoint_round_trip(tmp_path):
    import orbax.checkpoint as ocp

    x = jnp.asarray(RNG.standard_normal((2, 8, 8, 3)), jnp.float32)

    def make():
        return jpn.HybridResNet(3, width=2, pool="hybrid", rngs=nnx.Rngs(0))

    model = nnx_twin(make, random_variables(models.HybridResNet(width=2, pool="hybrid"), x))
    model.eval()
    expected = model(x)
    graphdef, state = nnx.split(model)
    chex.assert_trees_all_equal(nnx.merge(graphdef, state)(x), expected)

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "state", nnx.state(model))
    checkpointer.wait_until_finished()
    abstract_graphdef, abstract_state = nnx.split(nnx.eval_shape(make))
    # Where the arrays go (orbax warns when it must read that from the checkpoint).
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract_state = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device), abstract_state)
    restored = nnx.merge(abstract_graphdef, checkpointer.restore(tmp_path / "state", abstract_state))
    chex.assert_trees_all_equal(jpn.variables(restored), jpn.variables(model))
    restored.eval()
    chex.assert_trees_all_equal(restored(x), expected)
