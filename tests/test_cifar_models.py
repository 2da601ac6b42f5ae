"""Tests of jaxpool._cifar_models (public in jaxpool.models): the CIFAR ResNet-18, the
network of HybridResNetBlocks with a pooling choice, and make_pooling / make_model.

Every pooling in HybridResNet, and ResNet-18 with three heads, takes two real optimizer
steps on a tiny batch (width 2, 16x16 images: jit compile time dominates, so the shapes
are the smallest that reach every path). Shapes and parameter counts are checked with ``jax.eval_shape`` (no compute).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxpool
from jaxpool import _cifar_models, models
from tests.helpers import FAST_COMPILE

# 16x16: both models reach their head with a 2x2 map, so head poolings have something to
# pool (on a 1x1 map max, mean, GeM and the mixes agree and their parameters get no
# gradient).
IMAGES = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
LABELS = jnp.array([0, 1, 2, 1])


def _two_train_steps(model):
    """Initialises ``model`` and takes two SGD steps, all in one jitted program.

    Returns:
      The variables before and after, and the losses and gradients of both steps.
    """
    optimizer = optax.sgd(0.1, momentum=0.9)

    def program(key):
        variables = model.init(key, IMAGES)

        def step(carry, _):
            params, batch_stats, opt_state = carry

            def loss_fn(params):
                logits, updates = model.apply({"params": params, "batch_stats": batch_stats},
                                              IMAGES, train=True, mutable=["batch_stats"])
                loss = optax.softmax_cross_entropy_with_integer_labels(logits, LABELS).mean()
                return loss, updates["batch_stats"]

            (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), batch_stats, opt_state), (loss, grads)

        start = (variables["params"], variables["batch_stats"],
                 optimizer.init(variables["params"]))
        (params, batch_stats, _), (losses, grads) = jax.lax.scan(step, start, length=2)
        return variables, {"params": params, "batch_stats": batch_stats}, losses, grads

    return jax.jit(program, compiler_options=FAST_COMPILE)(jax.random.key(1))


# Both models end in classifier_head(make_pooling(pool, kind="global")), and HybridResNet
# also pools with its choice at every block: every pooling trains there, in both forms.
# ResNet-18 (the slowest to compile) trains with its default head, the head that
# doubles the classifier's inputs, and a learnable one.
TRAINED = [("hybrid_resnet", pool) for pool in models.POOLING_NAMES] + [
    ("resnet18", pool) for pool in ("avg", "catavgmax", "hybrid")
]


def test_the_trained_pairs_cover_every_model_and_pooling():
    assert {model for model, _ in TRAINED} == set(models.MODEL_NAMES)
    assert {pool for _, pool in TRAINED} == set(models.POOLING_NAMES)


@pytest.mark.parametrize(("model_name", "pool"), TRAINED)
def test_every_model_and_pooling_trains(model_name, pool):
    model = models.make_model(model_name, pool=pool, width=2, num_classes=3)
    before, after, losses, grads = _two_train_steps(model)
    assert losses.shape == (2,) and bool(jnp.all(jnp.isfinite(losses)))
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    # Learnable poolings get a gradient and move (max, avg, softpool, avgmax, catavgmax
    # have no parameters).
    pool_names = [name for name in before["params"] if "pool" in name]
    pool_params = {name: before["params"][name] for name in pool_names}
    if pool in ("hybrid", "attention", "gated", "gem"):
        assert jax.tree.leaves(pool_params), f"{pool}: no pooling parameters in {sorted(before['params'])}"
        moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), pool_params,
                             {name: after["params"][name] for name in pool_names})
        assert any(jax.tree.leaves(moved)), f"{pool}: pooling parameters did not change"
    # BatchNorm running statistics were updated by the train-mode steps.
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before["batch_stats"],
                           after["batch_stats"])
    assert all(jax.tree.leaves(changed))


def test_hybrid_resnet_pools_at_every_block():
    model = models.HybridResNet(width=2, pool="hybrid")
    variables = jax.eval_shape(model.init, jax.random.key(0), IMAGES)
    params = variables["params"]
    assert sorted(params) == ["block1", "block2", "block3", "classifier", "head_pool"]
    for block in ("block1", "block2", "block3"):
        assert params[block]["pool"]["mix_logit"].shape == ()  # the seed's single mix
    _, intermediates = jax.eval_shape(lambda v: model.apply(
        v, IMAGES, train=False, mutable=["intermediates"],
        capture_intermediates=lambda module, _: isinstance(module, models.PoolingResNetBlock),
    ), variables)
    shapes = {name: value["__call__"][0].shape for name, value in intermediates["intermediates"].items()}
    assert shapes == {"block1": (4, 8, 8, 2), "block2": (4, 4, 4, 4), "block3": (4, 2, 2, 8)}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_attention_block_is_the_hybrid_resnet_block(dtype):
    """PoolingResNetBlock(pool='attention') computes exactly HybridResNetBlock, in its
    computation dtype too (make_pooling hands the dtype to the attention's layers)."""
    x = IMAGES[:, :8, :8].astype(dtype)
    seed_block = models.HybridResNetBlock(features=6, dtype=dtype)
    block = models.PoolingResNetBlock(features=6, pool="attention", dtype=dtype)

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def both(key):
        seed_variables, variables = seed_block.init(key, x), block.init(key, x)
        outputs = [(module.apply(seed_variables, x, train=train, mutable=["batch_stats"]))
                   for module in (seed_block, block) for train in (False, True)]
        return seed_variables, variables, outputs

    seed_variables, variables, (seed_eval, seed_train, block_eval, block_train) = both(
        jax.random.key(3))
    for got, expected in ((variables, seed_variables), (block_eval, seed_eval),
                          (block_train, seed_train)):
        assert jax.tree.structure(got) == jax.tree.structure(expected)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(a, b)


def test_resnet18_has_the_standard_size_and_layout():
    model = models.CifarResNet18()
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    params = variables["params"]
    # kuangliu/pytorch-cifar's ResNet18 has 11,173,962 parameters.
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == 11_173_962
    assert params["stem_conv"]["kernel"].shape == (3, 3, 3, 64)
    assert params["stage4_block2"]["conv2"]["kernel"].shape == (3, 3, 512, 512)
    assert params["stage2_block1"]["shortcut_conv"]["kernel"].shape == (1, 1, 64, 128)
    assert "shortcut_conv" not in params["stage1_block1"]
    assert params["classifier"]["kernel"].shape == (512, 10)


def test_width_scales_every_stage():
    params = jax.eval_shape(models.CifarResNet18(width=4).init, jax.random.key(0), IMAGES)["params"]
    widths = [params[f"stage{s}_block1"]["conv1"]["kernel"].shape[-1] for s in range(1, 5)]
    assert widths == [4, 8, 16, 32]


@pytest.mark.parametrize("model_name", models.MODEL_NAMES)
def test_bfloat16_compute_keeps_float32_parameters_and_logits(model_name):
    model = models.make_model(model_name, pool="hybrid", width=2, dtype=jnp.bfloat16)
    variables = jax.eval_shape(model.init, jax.random.key(0), IMAGES)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, IMAGES)
    assert logits.dtype == jnp.float32 and logits.shape == (4, 10)


@pytest.mark.parametrize("name", models.POOLING_NAMES)
def test_make_pooling_shapes(name):
    x = jax.ShapeDtypeStruct((2, 4, 6, 5), jnp.float32)
    channels = models.pooled_channels(name, 5)
    for kind, expected in (("global", (2, channels)), ("downsample", (2, 2, 3, channels))):
        pool = models.make_pooling(name, kind=kind)
        variables = jax.eval_shape(pool.init, jax.random.key(0), x)
        assert jax.eval_shape(pool.apply, variables, x).shape == expected, (name, kind)


def test_make_pooling_builds_jaxpool_modules():
    assert isinstance(models.make_pooling("hybrid"), jaxpool.HybridPool)
    assert models.make_pooling("hybrid").kernel_size is None  # the global form
    window = models.make_pooling("attention", kind="downsample", kernel_size=3, stride=2)
    assert isinstance(window, jaxpool.AttentionHybridPool)
    assert (window.kernel_size, window.stride, window.reduction) == ((3, 3), (2, 2), 4)
    assert isinstance(models.make_pooling("max", kind="downsample"), jaxpool.MaxPool)


def test_errors_name_the_argument_and_the_valid_values():
    with pytest.raises(ValueError, match=r"unknown pooling 'maxx'; expected one of max, avg, "
                                         r"hybrid, attention, gated, gem, softpool, avgmax, catavgmax"):
        models.make_pooling("maxx")
    with pytest.raises(ValueError, match="unknown kind 'local'; expected one of global, downsample"):
        models.make_pooling("max", kind="local")
    with pytest.raises(ValueError, match="kernel_size must be >= 1, but got 0"):
        models.make_pooling("max", kind="downsample", kernel_size=0)
    with pytest.raises(TypeError, match="stride must be an int"):
        models.make_pooling("max", kind="downsample", stride=1.5)
    with pytest.raises(ValueError, match="unknown model 'resnet50'; expected one of resnet18, hybrid_resnet"):
        models.make_model("resnet50")
    with pytest.raises(ValueError, match="width must be >= 1, but got 0"):
        models.make_model("resnet18", width=0)
    with pytest.raises(ValueError, match="unknown pool 'mean'"):
        jax.eval_shape(models.CifarResNet18(pool="mean").init, jax.random.key(0), IMAGES)
    with pytest.raises(ValueError, match=r"images of 4x4 are too small for 3 blocks.*at least 8x8"):
        jax.eval_shape(models.HybridResNet().init, jax.random.key(0), jnp.zeros((1, 4, 4, 3)))


def test_public_names():
    for name in ("CifarResNet18", "HybridResNet", "PoolingResNetBlock", "BasicBlock",
                 "make_model", "make_pooling", "pooled_channels", "POOLING_NAMES", "MODEL_NAMES"):
        assert name in models.__all__
        assert getattr(models, name) is getattr(_cifar_models, name)
