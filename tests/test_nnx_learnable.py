"""Tests of jaxpool/nnx/_learnable.py: the NNX twins of the learnable pooling modules.

Given the same variables, each NNX module gives its linen twin's outputs and gradients
(input and every parameter; float32 and bfloat16; under ``nnx.jit``), its parameters
have the linen names, shapes and default values, and the seed's PyTorch modules,
converted with :mod:`jaxpool.torch_compat`, are reproduced within 1e-5.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxpool
import jaxpool.nnx as jpn
from jaxpool import torch_compat
from tests.nnx_helpers import assert_twins_agree, linen_run, nnx_run, nnx_twin, random_variables
from tests.oracle import (
    TOLERANCE,
    HybridPooling,
    HybridPoolingWithAttention,
    nhwc,
    run_torch,
    torch_grads_as_flax,
)

X = np.random.default_rng(0).standard_normal((2, 7, 6, 3)).astype(np.float32)
X_FIRST = np.moveaxis(X, -1, 1)

# (linen module, its NNX twin, input)
CASES = [
    (jaxpool.HybridPool(kernel_size=(2, 2)), lambda: jpn.HybridPool(kernel_size=(2, 2)), X),
    (jaxpool.HybridPool(per_channel=True, channels_first=True, keepdims=True),
     lambda: jpn.HybridPool(per_channel=True, num_features=3, channels_first=True, keepdims=True),
     X_FIRST),
    (jaxpool.HybridPool(kernel_size=(3, 3), stride=(2, 1), padding=1, per_channel=True,
                        count_include_pad=False),
     lambda: jpn.HybridPool(kernel_size=(3, 3), stride=(2, 1), padding=1, per_channel=True,
                            num_features=3, count_include_pad=False), X),
    (jaxpool.AttentionHybridPool(kernel_size=(2, 2), stride=(2, 2)),
     lambda: jpn.AttentionHybridPool(3, kernel_size=(2, 2), stride=(2, 2), rngs=nnx.Rngs(0)), X),
    (jaxpool.AttentionHybridPool(reduction=2, channels_first=True, keepdims=True),
     lambda: jpn.AttentionHybridPool(3, reduction=2, channels_first=True, keepdims=True,
                                     rngs=nnx.Rngs(0)), X_FIRST),
    (jaxpool.GatedPool(kernel_size=(2, 2), per_channel=True),
     lambda: jpn.GatedPool(kernel_size=(2, 2), per_channel=True, num_features=3), X),
    (jaxpool.GatedPool(kernel_size=(2, 3)), lambda: jpn.GatedPool(kernel_size=(2, 3)), X),
    (jaxpool.GeMPool(initial_p=2.5), lambda: jpn.GeMPool(initial_p=2.5), X),
    (jaxpool.GeMPool(kernel_size=(2, 2), count_include_pad=False, padding=1),
     lambda: jpn.GeMPool(kernel_size=(2, 2), count_include_pad=False, padding=1), X),
    (jaxpool.GeMPool(learn_p=False, keepdims=True), lambda: jpn.GeMPool(learn_p=False, keepdims=True), X),
    (jaxpool.SoftPool(kernel_size=(2, 2), ceil_mode=True),
     lambda: jpn.SoftPool(kernel_size=(2, 2), ceil_mode=True), X),
    (jaxpool.SoftPool(), lambda: jpn.SoftPool(), X),
    (jaxpool.AvgMaxPool(), lambda: jpn.AvgMaxPool(), X),
    (jaxpool.CatAvgMaxPool(keepdims=True, channels_first=True),
     lambda: jpn.CatAvgMaxPool(keepdims=True, channels_first=True), X_FIRST),
]
IDS = [f"{type(case[0]).__name__}{i}" for i, case in enumerate(CASES)]
# bfloat16 for one configuration of each module (compiling every one twice is slow).
BFLOAT16 = {0, 3, 6, 7, 10, 12, 13}
DTYPE_CASES = [
    pytest.param(*case, dtype, id=f"{name}-{jnp.dtype(dtype).name}")
    for index, (case, name) in enumerate(zip(CASES, IDS, strict=True))
    for dtype in ((jnp.float32, jnp.bfloat16) if index in BFLOAT16 else (jnp.float32,))
]


@pytest.mark.parametrize("linen, make, x, dtype", DTYPE_CASES)
def test_nnx_module_is_its_linen_twin(linen, make, x, dtype):
    x = jnp.asarray(x, dtype)
    variables = random_variables(linen, x)
    module = nnx_twin(make, variables)
    y = jax.eval_shape(linen.apply, variables, x)
    cotangent = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    out, x_grad, params_grad, _ = nnx_run(module, x, cotangent)
    expected = linen_run(linen, variables, x, cotangent)
    assert out.dtype == dtype
    assert_twins_agree((out, x_grad, params_grad), expected[:3], dtype)


@pytest.mark.parametrize("linen, make, x", CASES, ids=IDS)
def test_parameters_have_the_linen_names_shapes_and_dtypes(linen, make, x):
    expected = jax.eval_shape(linen.init, jax.random.key(0), x)
    got = jpn.variables(nnx.eval_shape(make))
    chex.assert_trees_all_equal_structs(got, expected)
    chex.assert_trees_all_equal_shapes_and_dtypes(got, expected)


def test_deterministic_defaults_are_linen_s_and_need_no_rngs():
    x = jnp.asarray(X)
    for linen, twin in ((jaxpool.HybridPool(kernel_size=(2, 2)), jpn.HybridPool(kernel_size=(2, 2))),
                        (jaxpool.GatedPool(kernel_size=(2, 2), per_channel=True),
                         jpn.GatedPool(kernel_size=(2, 2), per_channel=True, num_features=3)),
                        (jaxpool.GeMPool(), jpn.GeMPool())):
        chex.assert_trees_all_equal(jpn.variables(twin), linen.init(jax.random.key(0), x))


def test_the_issue_s_constructor_calls():
    x = jnp.ones((2, 8, 8, 4))
    chex.assert_shape(jpn.HybridPool(kernel_size=(2, 2), stride=(2, 2))(x), (2, 4, 4, 4))
    pool = jpn.AttentionHybridPool(num_features=4, kernel_size=(2, 2), stride=(2, 2), rngs=nnx.Rngs(0))
    chex.assert_shape(pool(x), (2, 4, 4, 4))
    # The Linear layers start as linen's Dense: zero biases, LeCun-normal kernels.
    chex.assert_trees_all_equal(jpn.variables(pool)["params"]["squeeze"]["bias"], jnp.zeros(1))
    assert float(jnp.abs(pool.excite.kernel[...]).sum()) > 0


def test_random_initialisers_take_the_params_stream():
    uniform = jax.nn.initializers.uniform(1.0)  # the seed's torch.rand(1)
    logits = [float(jpn.HybridPool(mix_logit_init=uniform, rngs=nnx.Rngs(seed)).mix_logit[...])
              for seed in range(5)]
    assert all(0.0 <= v < 1.0 for v in logits) and len(set(logits)) == 5
    normal = jpn.GatedPool(kernel_size=(2, 2), gate_init=jax.nn.initializers.normal(0.5),
                           rngs=nnx.Rngs(params=1))
    assert float(jnp.abs(normal.gate_weight[...]).sum()) > 0


BAD = [
    (lambda: jpn.HybridPool(mix_logit_init=jax.nn.initializers.uniform(1.0)), ValueError,
     r"HybridPool: the initialiser of mix_logit is random: pass rngs=nnx.Rngs\(0\)"),
    (lambda: jpn.GatedPool(kernel_size=(2, 2), gate_init=jax.nn.initializers.normal()), ValueError,
     "GatedPool: the initialiser of gate_weight is random: pass rngs"),
    (lambda: jpn.HybridPool(rngs=0), TypeError, "HybridPool: rngs must be an nnx.Rngs, but got int: 0"),
    (lambda: jpn.HybridPool(per_channel=True), ValueError,
     r"HybridPool: per_channel=True makes mix_logit of shape \(C,\); pass num_features=C"),
    (lambda: jpn.GatedPool(kernel_size=(2, 2), per_channel=True), ValueError,
     r"GatedPool: per_channel=True makes gate_weight .*; pass num_features=C"),
    (lambda: jpn.HybridPool(per_channel=1, num_features=3), TypeError, "per_channel must be a bool"),
    (lambda: jpn.HybridPool(kernel_size=2), TypeError, "HybridPool: kernel_size must be a tuple"),
    (lambda: jpn.HybridPool(spatial_dims=4), ValueError, "HybridPool: spatial_dims must be 1, 2 or 3"),
    (lambda: jpn.HybridPool(kernel_size=(2, 2), keepdims=True), ValueError,
     "keepdims=True only applies to the global form"),
    (lambda: jpn.HybridPool(kernel_size=(2, 2), stride=(0, 1)), ValueError, "stride should be greater than zero"),
    (lambda: jpn.AttentionHybridPool(8, rngs=None), ValueError,
     r"AttentionHybridPool initialises parameters randomly: pass rngs=nnx.Rngs\(0\)"),
    (lambda: jpn.AttentionHybridPool(None, rngs=nnx.Rngs(0)), ValueError,
     "AttentionHybridPool: the attention's layers have C inputs; pass num_features=C"),
    (lambda: jpn.AttentionHybridPool(0, rngs=nnx.Rngs(0)), ValueError,
     "num_features must be at least 1, but got num_features=0"),
    (lambda: jpn.AttentionHybridPool(8, reduction=0, rngs=nnx.Rngs(0)), ValueError,
     "AttentionHybridPool: reduction must be at least 1, but got reduction=0"),
    (lambda: jpn.AttentionHybridPool(8, reduction=2.5, rngs=nnx.Rngs(0)), TypeError,
     "reduction must be an int, but got 2.5"),
    (lambda: jpn.GeMPool(eps=-1.0), ValueError, "eps must be positive, but got eps=-1.0"),
    (lambda: jpn.SoftPool(kernel_size=(2, 2), padding=(3, 3)), ValueError, "pad should be at most half"),
    (lambda: jpn.CatAvgMaxPool(spatial_dims=0), ValueError, "spatial_dims must be 1, 2 or 3"),
]


@pytest.mark.parametrize("make, error, message", BAD)
def test_bad_configuration_fails_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_input_errors_at_the_call():
    pool = nnx.eval_shape(lambda: jpn.AttentionHybridPool(8, kernel_size=(2, 2), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"AttentionHybridPool: expected an input with num_features=8 "
                                         r"channels, but got shape \(1, 4, 4, 3\) \(3 channels\)"):
        pool(jnp.ones((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="Output size is too small"):
        jpn.GatedPool(kernel_size=(7, 7))(jnp.ones((1, 6, 6, 4)))


# ----------------------------------------------------------------------------------
# The seed's PyTorch modules -> torch_compat -> NNX


def test_hybrid_pool_matches_the_seed_module():
    import torch

    torch.manual_seed(0)
    seed = HybridPooling()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 10, 3)).astype(np.float32)
    cotangent = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    t_out, t_gx, t_grads = run_torch(seed, x, cotangent)
    pool = jpn.HybridPool(kernel_size=(2, 2), stride=(2, 2))
    jpn.load_variables(pool, torch_compat.hybrid_pool_variables(seed))
    out, gx, gparams, _ = nnx_run(pool, x, cotangent)
    chex.assert_trees_all_close(out, nhwc(t_out), **TOLERANCE)
    chex.assert_trees_all_close(gx, nhwc(t_gx), **TOLERANCE)
    chex.assert_trees_all_close(gparams["mix_logit"], t_grads["weight"].numpy()[0], **TOLERANCE)


@pytest.mark.parametrize("channels", [2, 8])
def test_attention_hybrid_pool_matches_the_seed_module(channels):
    import torch

    torch.manual_seed(channels)
    seed = HybridPoolingWithAttention(channels)
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((3, 6, 8, channels)).astype(np.float32)
    cotangent = rng.standard_normal((3, 3, 4, channels)).astype(np.float32)
    t_out, t_gx, t_grads = run_torch(seed, x, cotangent)
    pool = nnx_twin(lambda: jpn.AttentionHybridPool(channels, kernel_size=(2, 2), stride=(2, 2),
                                                    rngs=nnx.Rngs(0)),
                    torch_compat.attention_hybrid_pool_variables(seed))
    out, gx, gparams, _ = nnx_run(pool, x, cotangent)
    chex.assert_trees_all_close(out, nhwc(t_out), **TOLERANCE)
    chex.assert_trees_all_close(gx, nhwc(t_gx), **TOLERANCE)
    expected = torch_grads_as_flax(torch_compat.attention_hybrid_pool_variables, seed, t_grads)
    chex.assert_trees_all_close(gparams, expected, **TOLERANCE)


def test_split_merge_round_trip_keeps_parameters():
    x = jnp.asarray(X)
    pool = nnx_twin(lambda: jpn.AttentionHybridPool(3, kernel_size=(2, 2), rngs=nnx.Rngs(0)),
                    random_variables(jaxpool.AttentionHybridPool(kernel_size=(2, 2)), x))
    graphdef, params = nnx.split(pool, nnx.Param)
    restored = nnx.merge(graphdef, params)
    chex.assert_trees_all_equal(jpn.variables(restored), jpn.variables(pool))
    chex.assert_trees_all_equal(restored(x), pool(x))
